"""With no image or audio, the omni model's text logits are the wrapped Hugging Face model's logits."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from omni.model import Message, OmniModel, collate
from omni.model.backbone import BackboneConfig
from omni.model.tiny import tiny_config, tiny_model, tiny_tokenizer
from tests.helpers.threads import one_torch_thread  # noqa: F401

ARCHS = ["qwen2", "llama", "qwen3", "qwen3_moe"]


def _reference(model: OmniModel) -> torch.nn.Module:
    """A fresh transformers model of the same config holding the same weights."""
    ref = AutoModelForCausalLM.from_config(copy.deepcopy(model.backbone.config)).eval()
    ref.load_state_dict(model.backbone.state_dict())
    return ref


@pytest.mark.parametrize("arch", ARCHS)
def test_text_logits_equal_hf_model(arch):
    model = tiny_model(arch, vision=False)
    assert type(model.backbone).__name__.lower().startswith(arch.replace("_", ""))
    ref = _reference(model)
    rows = [model.encode([Message("user", "What is two plus three?")], add_generation_prompt=True),
            model.encode([Message("system", "Be brief."), Message("user", "Hello!"),
                          Message("assistant", "Two plus three is five.")])]
    batch = collate(rows, model.token_ids.pad)  # right padding, two lengths
    assert batch.attention_mask.min() == 0
    with torch.no_grad():
        ours = model(batch).text_logits
        theirs = ref(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     position_ids=batch.position_ids).logits
    real = batch.attention_mask.bool()
    torch.testing.assert_close(ours[real], theirs[real])
    # and without the explicit position ids / mask (plain HF call on one row)
    with torch.no_grad():
        one = collate(rows[:1], model.token_ids.pad)
        torch.testing.assert_close(model(one).text_logits, ref(input_ids=one.input_ids).logits)


def test_backbone_from_local_directory_matches(tmp_path):
    """A backbone loaded from a saved HF checkpoint (path) gives that checkpoint's logits."""
    tok = tiny_tokenizer()
    built = tiny_model("qwen2", vision=False, tokenizer=tok)
    built.backbone.save_pretrained(tmp_path / "llm")
    tok.save_pretrained(tmp_path / "llm")  # the backbone's own tokenizer, already with the special tokens
    cfg = tiny_config("qwen2", vision=False)
    cfg.backbone = BackboneConfig(path=str(tmp_path / "llm"))
    loaded = OmniModel.from_config(cfg).eval()
    assert loaded.token_ids == built.token_ids
    batch = collate([loaded.encode([Message("user", "Set a timer.")], add_generation_prompt=True)],
                    loaded.token_ids.pad)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).text_logits, built(batch).text_logits)
        ref = AutoModelForCausalLM.from_pretrained(tmp_path / "llm", local_files_only=True).eval()
        torch.testing.assert_close(loaded(batch).text_logits, ref(input_ids=batch.input_ids).logits)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_last_hidden_state_request_returns_the_normed_final_state(arch):
    """The model and the decode loop read ``hidden_states[-1]`` of ``output_hidden_states=LAST_HIDDEN_STATE``:
    ``[-1]`` on transformers >= 5.23, ``True`` before (5.13-5.22 fail on a list: issue 19, point 3). Both must give
    the base model's final, normed state; the request the installed release gets is checked the same way."""
    from omni.model.backbone import LAST_HIDDEN_STATE

    model = tiny_model(arch, vision=False)
    batch = collate([model.encode([Message("user", "What is two plus three?")], add_generation_prompt=True)],
                    model.token_ids.pad)
    kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
              "position_ids": batch.position_ids}
    with torch.no_grad():
        final = model.backbone.get_decoder()(**kwargs).last_hidden_state  # (1, T, D) after the final norm
        for request in [True] + ([LAST_HIDDEN_STATE] if LAST_HIDDEN_STATE is not True else []):
            got = model.backbone(**kwargs, output_hidden_states=request).hidden_states[-1]
            torch.testing.assert_close(got, final, atol=0, rtol=0)

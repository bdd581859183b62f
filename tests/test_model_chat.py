"""Special tokens, the chat template's layout and targets, Qwen3 think blocks, collate and pack."""

from __future__ import annotations

import torch

from omni.model import IGNORE, Audio, Message, Text, collate, pack
from omni.model.special_tokens import SpecialTokens, add_special_tokens
from omni.model.tiny import tiny_model, tiny_tokenizer
from tests.helpers.threads import one_torch_thread  # noqa: F401

TOK = SpecialTokens()


def _render(model, ids) -> str:
    return "".join(model.tokenizer.convert_ids_to_tokens(ids.tolist())).replace("Ċ", "\n").replace("Ġ", " ")


def test_special_tokens_are_added_once_and_never_split():
    tok = tiny_tokenizer()
    n = len(tok)
    ids = add_special_tokens(tok)
    assert len(tok) == n + len(TOK.all()) - 2  # <|im_start|>, <|im_end|> already exist
    assert add_special_tokens(tok) == ids and len(tok) == n + len(TOK.all()) - 2
    assert tok("<|audio_gen_start|><|audio|><|audio_end|>", add_special_tokens=False)["input_ids"] == [
        ids.audio_gen_start, ids.audio, ids.audio_end]
    assert ids.eos[0] == ids.im_end and ids.pad == tok.pad_token_id


def test_text_ids_remember_per_tokenizer_and_see_added_tokens():
    from omni.model.chat import text_ids

    tok = tiny_tokenizer()
    text = "Hi <|audio|> there."
    before = text_ids(tok, text)
    assert before == tok(text, add_special_tokens=False)["input_ids"]
    before.append(-1)  # the caller's list is its own
    assert text_ids(tok, text) == tok(text, add_special_tokens=False)["input_ids"]
    ids = add_special_tokens(tok)  # a token added after the first call: the text now holds it whole
    after = text_ids(tok, text)
    assert after == tok(text, add_special_tokens=False)["input_ids"] and ids.audio in after
    assert ids.audio not in before


def test_model_embedding_covers_the_special_tokens():
    model = tiny_model("qwen2", vision=False)
    assert model.backbone.get_input_embeddings().weight.shape[0] == len(model.tokenizer)
    assert max(model.token_ids.audio, model.token_ids.video_end) < len(model.tokenizer)


def test_conversation_layout_and_targets():
    model = tiny_model("qwen2", vision=False)
    user_codes = torch.arange(16).reshape(2, 8)
    reply_codes = torch.arange(24).reshape(3, 8) % 16
    ex = model.encode([
        Message("system", "Be brief."),
        Message("user", [Text("Hi"), Audio(user_codes)]),
        Message("assistant", [Text("Hello."), Audio(reply_codes)]),
    ])
    text = _render(model, ex.input_ids)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|audio_start|><|audio|><|audio|><|audio_end|><|im_end|>\n"
        "<|im_start|>assistant\nHello.<|audio_gen_start|><|audio|><|audio|><|audio|><|audio_end|><|im_end|>\n"
    )
    targets = ex.labels != IGNORE
    assert _render(model, ex.input_ids[targets]) == \
        "Hello.<|audio_gen_start|><|audio|><|audio|><|audio|><|audio_end|><|im_end|>"
    assert torch.equal(ex.labels[targets], ex.input_ids[targets])
    assert torch.equal(ex.audio_codes, torch.cat([user_codes, reply_codes]))
    assert ex.audio_target.tolist() == [False, False, True, True, True]
    # a turn kept as context only
    ctx = model.encode([Message("user", "Hi"), Message("assistant", "Hello.", train=False)])
    assert (ctx.labels == IGNORE).all()
    prompt = model.encode([Message("user", "Hi")], add_generation_prompt=True)
    assert _render(model, prompt.input_ids).endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_qwen3_think_flags():
    model = tiny_model("qwen3", vision=False)
    assert model.cfg.think_block
    ex = model.encode([Message("user", "Hi /no_think"), Message("assistant", "Hello."),
                       Message("user", "And now? /think"), Message("assistant", "<think>hmm</think>Sure.")],
                      add_generation_prompt=True)
    text = _render(model, ex.input_ids)
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\nHello.<|im_end|>" in text  # empty block kept
    assert "<|im_start|>assistant\n<think>hmm</think>Sure.<|im_end|>" in text  # reasoning on again
    assert text.endswith("<|im_start|>assistant\n")
    no_think = model.encode([Message("user", "Hi /no_think")], add_generation_prompt=True)
    assert _render(model, no_think.input_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    labelled = model.encode([Message("user", "Hi /no_think"), Message("assistant", "Hello.")])
    assert _render(model, labelled.input_ids[labelled.labels != IGNORE]) == "<think>\n\n</think>\n\nHello.<|im_end|>"
    off = model.encode([Message("user", "Hi")], add_generation_prompt=True, enable_thinking=False)
    assert _render(model, off.input_ids).endswith("<think>\n\n</think>\n\n")


def test_collate_left_and_right_padding():
    model = tiny_model("qwen2", vision=False)
    short = model.encode([Message("user", [Audio(torch.ones(1, 8, dtype=torch.long))])])
    long = model.encode([Message("user", "What is two plus three?")])
    for side in ("right", "left"):
        b = collate([long, short], pad_id=model.token_ids.pad, padding_side=side)
        n = len(short)
        row = b.input_ids[1, :n] if side == "right" else b.input_ids[1, -n:]
        assert torch.equal(row, short.input_ids)
        assert b.attention_mask[1].sum() == n
        pos = b.position_ids[1][b.attention_mask[1].bool()]
        assert pos.tolist() == list(range(n))
        assert b.audio_codes.shape == (1, 8) and b.num_target_tokens == 0


def test_pack_resets_positions_and_keeps_examples_apart():
    model = tiny_model("qwen2", vision=False)
    a = model.encode([Message("user", "Hi"), Message("assistant", [Text("Hello."), Audio(torch.ones(2, 8).long())])])
    b = model.encode([Message("user", "What is two plus three?"), Message("assistant", "Five.")])
    packed = pack([a, b])
    assert packed.attention_mask is None and packed.input_ids.shape == (1, len(a) + len(b))
    assert packed.position_ids[0].tolist() == list(range(len(a))) + list(range(len(b)))
    with torch.no_grad():
        together = model(packed)
        alone_a, alone_b = model(collate([a], 0)), model(collate([b], 0))
    torch.testing.assert_close(together.text_logits[0, :len(a)], alone_a.text_logits[0])
    torch.testing.assert_close(together.text_logits[0, len(a):], alone_b.text_logits[0])  # no cross-attention
    for k in range(8):
        torch.testing.assert_close(together.audio_logits[k], alone_a.audio_logits[k])

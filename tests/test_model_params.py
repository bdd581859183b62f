"""Parameter groups: every parameter in exactly one group; set_trainable freezes the rest."""

from __future__ import annotations

import pytest
import torch

from omni.model.params import GROUPS, parameter_groups, set_trainable
from omni.model.tiny import tiny_model
from tests.helpers.threads import one_torch_thread  # noqa: F401


@pytest.mark.parametrize("arch", ["qwen2", "qwen3_moe"])
def test_every_parameter_in_exactly_one_group(arch):
    model = tiny_model(arch)
    groups = parameter_groups(model)
    assert tuple(groups) == GROUPS
    names = [n for params in groups.values() for n, _ in params]
    assert len(names) == len(set(names)) == len(list(model.named_parameters()))
    assert all(groups[g] for g in GROUPS)  # untied: every group holds parameters
    assert [n for n, _ in groups["embeddings"]] == ["backbone.model.embed_tokens.weight"]
    assert [n for n, _ in groups["lm_head"]] == ["backbone.lm_head.weight"]
    assert all(n.startswith("vision.tower.merger.") for n, _ in groups["vision_projector"])
    assert all(n.startswith(("vision.tower.blocks.", "vision.tower.patch_embed.")) for n, _ in groups["vision_encoder"])
    assert all(".layers." in n or n.endswith("model.norm.weight") for n, _ in groups["llm"])


def test_set_trainable_stage_audio_pretrain_1():
    model = tiny_model("qwen2")
    summary = set_trainable(model, ["audio_embed", "audio_head"])
    for group, params in parameter_groups(model).items():
        for name, p in params:
            assert p.requires_grad == (group in ("audio_embed", "audio_head")), name
    expected = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("audio_embed.", "audio_head.")))
    assert summary.trainable == expected and summary.total == sum(p.numel() for p in model.parameters())
    assert "audio_head" in summary.table()
    set_trainable(model, ["all"])
    assert all(p.requires_grad for p in model.parameters())


def test_bad_group_names_and_tied_heads_are_errors():
    model = tiny_model("qwen2", vision=False)
    with pytest.raises(ValueError, match=r"unknown parameter groups \['audio'\]"):
        set_trainable(model, ["audio"])
    tied = tiny_model("llama", vision=False, tie_word_embeddings=True)
    groups = parameter_groups(tied)
    assert groups["lm_head"] == [] and len(groups["embeddings"]) == 1
    with pytest.raises(ValueError, match="tied"):
        set_trainable(tied, ["lm_head", "llm"])
    set_trainable(tied, ["lm_head", "embeddings"])
    assert tied.backbone.lm_head.weight.requires_grad


def test_frozen_groups_get_no_gradient():
    model = tiny_model("qwen2", vision=False).train()
    set_trainable(model, ["audio_head"])
    from omni.model import Audio, Message, collate
    from omni.model.losses import audio_loss

    codes = torch.ones(3, 8, dtype=torch.long)
    batch = collate([model.encode([Message("user", "Hi"), Message("assistant", [Audio(codes)])])], 0)
    out = model(batch)
    audio_loss(out.audio_logits, batch.audio_codes[batch.audio_target]).total.backward()
    assert model.audio_head.heads[0].weight.grad is not None
    assert model.backbone.model.layers[0].mlp.up_proj.weight.grad is None


def test_every_trainable_parameter_gets_a_gradient_from_any_batch():
    """DDP without find_unused_parameters needs every trainable parameter in the graph, even when a
    text-only batch leaves the audio and vision branches unused."""
    from omni.model import Message, collate
    from omni.model.losses import text_loss

    model = tiny_model("qwen2").train()
    batch = collate([model.encode([Message("user", "Hi"), Message("assistant", "Hello.")])], 0)
    out = model(batch)
    text_loss(out.text_logits, batch.labels).total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    assert model.audio_head.heads[0].weight.grad.abs().sum() == 0  # zero-weighted: the update is unchanged
    # frozen branches are left out: nothing extra runs for them
    model.zero_grad(set_to_none=True)
    set_trainable(model, ["llm", "embeddings", "lm_head"])
    text_loss(model(batch).text_logits, batch.labels).total.backward()
    assert model.audio_head.heads[0].weight.grad is None

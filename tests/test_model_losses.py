"""Loss and log-prob functions against hand-worked numbers and a brute-force reference."""

from __future__ import annotations

import math

import pytest
import torch

from omni.model import IGNORE, Audio, Message, Text, collate
from omni.model.losses import audio_loss, position_logprobs, sequence_logprobs, text_loss
from omni.model.tiny import tiny_model
from tests.helpers.threads import one_torch_thread  # noqa: F401


def test_text_loss_hand_worked():
    logits = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, math.log(2.0)], [5.0, 1.0, 2.0]]])  # (1, 3, 3)
    labels = torch.tensor([[IGNORE, 1, 2]])
    # position 0 predicts 1 with p = 1/3; position 1 predicts 2 with p = 2/4; position 2 predicts nothing
    loss = text_loss(logits, labels)
    assert loss.count == 2
    assert loss.total.item() == pytest.approx(math.log(3) + math.log(2), abs=1e-6)
    assert loss.mean().item() == pytest.approx((math.log(3) + math.log(2)) / 2, abs=1e-6)


def test_audio_loss_per_level_weights_hand_worked():
    logits = [torch.zeros(1, 2), torch.zeros(1, 4)]  # uniform: CE ln 2 and ln 4
    codes = torch.tensor([[1, 3]])
    loss = audio_loss(logits, codes, level_weights=[2.0, 0.5])
    assert loss.total.item() == pytest.approx(2 * math.log(2) + 0.5 * math.log(4), abs=1e-6)  # = 3 ln 2
    torch.testing.assert_close(loss.per_level, torch.tensor([math.log(2), math.log(4)]))
    assert loss.count == 1
    # a confident, right level-0 prediction costs ~0
    sharp = audio_loss([torch.tensor([[-20.0, 20.0]]), torch.zeros(1, 4)], codes)
    assert sharp.per_level[0].item() < 1e-6
    with pytest.raises(ValueError, match="2 values"):
        audio_loss(logits, codes, level_weights=[1.0])
    empty = audio_loss([torch.zeros(0, 2), torch.zeros(0, 4)], torch.zeros(0, 2, dtype=torch.long))
    assert empty.total.item() == 0 and empty.count == 0


def test_sequence_logprobs_match_brute_force():
    model = tiny_model("qwen2", vision=False)
    g = torch.Generator().manual_seed(0)
    reply = torch.stack([torch.randint(0, v, (3,), generator=g) for v in model.cfg.codebook_sizes], -1)
    spoken = model.encode([Message("user", "Say hi."), Message("assistant", [Text("Hi."), Audio(reply)])])
    written = model.encode([Message("user", "What is two plus three?"), Message("assistant", "Five.")])
    batch = collate([spoken, written], model.token_ids.pad)
    with torch.no_grad():
        out = model(batch)
    got = sequence_logprobs(out, batch)

    # brute force: log_softmax at every target, frame by frame with the head's 8 distributions
    logp = torch.log_softmax(out.text_logits.float(), -1)
    for row in range(2):
        text = sum(logp[row, t - 1, batch.labels[row, t]] for t in range(1, batch.labels.shape[1])
                   if batch.labels[row, t] != IGNORE)
        assert got.text[row].item() == pytest.approx(float(text), abs=1e-4)
    frame_lp = 0.0
    for i in range(3):
        for k, lg in enumerate(out.audio_logits):
            frame_lp += float(torch.log_softmax(lg[i], -1)[reply[i, k]])
    assert got.audio.tolist() == pytest.approx([frame_lp, 0.0], abs=1e-4)
    assert got.num_frames.tolist() == [3, 0]
    assert got.num_tokens.tolist() == [int((spoken.labels != IGNORE).sum()), int((written.labels != IGNORE).sum())]
    # per-position log-probs sum to the same totals and are zero off-target
    pos = position_logprobs(out, batch)
    torch.testing.assert_close(pos.sum(-1), got.total)
    assert (pos[batch.labels == IGNORE] == 0).all()
    # the response log-prob does not depend on padding: the written row alone gives the same number
    with torch.no_grad():
        alone = sequence_logprobs(model(collate([written], 0)), collate([written], 0))
    assert alone.total.item() == pytest.approx(got.total[1].item(), abs=1e-4)


def test_losses_backpropagate_into_every_trained_module():
    model = tiny_model("qwen2", vision=False).train()
    reply = torch.ones(2, 8, dtype=torch.long)
    batch = collate([model.encode([Message("user", [Audio(reply)]), Message("assistant", [Audio(reply)])])], 0)
    out = model(batch)
    loss = text_loss(out.text_logits, batch.labels).total + audio_loss(out.audio_logits,
                                                                        batch.audio_codes[batch.audio_target]).total
    loss.backward()
    for name in ("audio_embed.proj.weight", "audio_head.heads.7.weight", "audio_head.in_proj.weight",
                 "backbone.model.layers.0.self_attn.q_proj.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_forward_fills_the_losses_when_labels_are_given():
    model = tiny_model("qwen2", vision=False)
    reply = torch.ones(2, 8, dtype=torch.long)
    batch = collate([model.encode([Message("user", "Hi"), Message("assistant", [Text("Ok."), Audio(reply)])])], 0)
    with torch.no_grad():
        out = model(batch, audio_level_weights=[2.0] + [1.0] * 7)
        bare = model(batch, return_loss=False)
    ref_text = text_loss(out.text_logits, batch.labels)
    ref_audio = audio_loss(out.audio_logits, reply, [2.0] + [1.0] * 7)
    assert out.text_loss.total.item() == pytest.approx(ref_text.total.item())
    assert out.audio_loss.total.item() == pytest.approx(ref_audio.total.item()) and out.audio_loss.count == 2
    assert out.loss.item() == pytest.approx(ref_text.mean().item() + ref_audio.mean().item(), rel=1e-6)
    assert bare.loss is None and bare.text_loss is None

"""Tokenizer parts against hand-worked numbers and peers: losses, codebook statistics, conv stacks, RVQ, LM inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from audio_tokenizer.conv import ConvDownsampler, ConvStackConfig, ConvUpsampler
from audio_tokenizer.losses import multiscale_mel_loss
from audio_tokenizer.quantizer import (
    QuantizerConfig,
    ResidualQuantizer,
    code_counts,
    codebook_perplexity,
    codebook_usage,
)
from audio_tokenizer.transcription import build_lm_inputs
from omni.text.losses import next_token_nll, token_nll
from tests.helpers.speech_data import one_thread  # noqa: F401 (fixture: run on one thread)


def test_multiscale_mel_loss_worked_by_hand():
    # one mel bin, frames [1, 2, 3] vs target [0, 0, 0]; lengths 3 (a 4th predicted frame is ignored)
    pred = torch.tensor([[[1.0, 2.0, 3.0, 9.0]]])
    target = torch.zeros(1, 1, 3)
    lengths = torch.tensor([3])
    # scale 1: L1 mean 2, L2 mean (1 + 4 + 9) / 3 = 14/3
    assert multiscale_mel_loss(pred, target, lengths, scales=[1]).item() == pytest.approx(2 + 14 / 3)
    # scale 2: windows [1, 2] -> 1.5 and [3] -> 3 (one valid frame): L1 (1.5 + 3) / 2, L2 (2.25 + 9) / 2
    assert multiscale_mel_loss(pred, target, lengths, scales=[2]).item() == pytest.approx(2.25 + 5.625)
    both = multiscale_mel_loss(pred, target, lengths, scales=[1, 2], l2_weight=0.0).item()
    assert both == pytest.approx((2 + 2.25) / 2)


def test_multiscale_mel_loss_ignores_padding_and_is_per_utterance():
    torch.manual_seed(0)
    a, b = torch.randn(1, 4, 10), torch.randn(1, 4, 7)
    ta, tb = torch.randn(1, 4, 10), torch.randn(1, 4, 7)
    pred = torch.cat([a, F.pad(b, (0, 3), value=50.0)])  # junk in b's padding
    target = torch.cat([ta, F.pad(tb, (0, 3), value=-50.0)])
    batch = multiscale_mel_loss(pred, target, torch.tensor([10, 7]))
    alone = [multiscale_mel_loss(a, ta, torch.tensor([10])), multiscale_mel_loss(b, tb, torch.tensor([7]))]
    torch.testing.assert_close(batch, torch.cat(alone))
    with pytest.raises(ValueError, match="fewer than the target"):
        multiscale_mel_loss(torch.zeros(1, 4, 5), torch.zeros(1, 4, 6), torch.tensor([6]))


def test_token_nll_matches_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[3, 4, 5, -100, -100], [1, 2, 3, 4, 5]])
    nll, count = token_nll(logits, labels)
    assert count.tolist() == [2, 4]
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
    torch.testing.assert_close(nll.sum(), ref)
    torch.testing.assert_close(nll[0], -(logits[0, 0].log_softmax(-1)[4] + logits[0, 1].log_softmax(-1)[5]))


def test_next_token_nll_gradient_and_low_precision_match_sliced_reference():
    """The shifted targets give the sliced reference's values and logits gradient, in float32 and bfloat16."""
    torch.manual_seed(0)
    labels = torch.tensor([[-100, 4, 5, -100, 2], [1, 2, 3, 4, 5]])
    for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 1e-2)):
        logits = torch.randn(2, 5, 11).to(dtype).requires_grad_()
        ref_logits = logits.detach().clone().requires_grad_()
        got = next_token_nll(logits, labels)
        ref = F.cross_entropy(ref_logits[:, :-1].float().reshape(-1, 11), labels[:, 1:].reshape(-1),
                              ignore_index=-100, reduction="none").view(2, 4)
        assert got.dtype == torch.float32 and got.shape == (2, 4)
        torch.testing.assert_close(got, ref, atol=tol, rtol=tol)
        assert got[0, 2].item() == 0.0  # an ignored target costs nothing
        weights = torch.arange(8.0).view(2, 4)  # a different weight per position catches a misplaced gradient
        (got * weights).sum().backward()
        (ref * weights).sum().backward()
        torch.testing.assert_close(logits.grad.float(), ref_logits.grad.float(), atol=tol, rtol=tol)
        assert logits.grad[:, -1].abs().sum().item() == 0.0  # the last position predicts nothing
    assert next_token_nll(torch.zeros(0, 5, 11), torch.zeros(0, 5, dtype=torch.long)).shape == (0, 4)


def test_codebook_statistics_worked_by_hand():
    codes = torch.tensor([[[0, 1], [0, 1], [1, 1], [-1, -1]]])  # (B=1, T=4, K=2), last frame padding
    counts = code_counts(codes, (4, 2))
    assert [c.tolist() for c in counts] == [[2, 1, 0, 0], [0, 3]]
    assert codebook_usage(counts[0]) == 0.5 and codebook_usage(counts[1]) == 0.5
    p = torch.tensor([2 / 3, 1 / 3])
    assert codebook_perplexity(counts[0]) == pytest.approx(math.exp(-(p * p.log()).sum().item()))
    assert codebook_perplexity(counts[1]) == pytest.approx(1.0)
    assert codebook_perplexity(torch.ones(64)) == pytest.approx(64.0)


@pytest.mark.parametrize("cls", [ConvDownsampler, ConvUpsampler])
def test_conv_stacks_are_padding_exact(cls):
    torch.manual_seed(0)
    stack = cls(8, ConvStackConfig(dim=16, strides=[2, 2], blocks_per_stage=2)).eval()
    x = torch.randn(3, 23, 8)
    lengths = torch.tensor([23, 13, 5])
    out, out_lengths = stack(x, lengths)
    factor = 4
    expected = [math.ceil(n / factor) for n in lengths] if cls is ConvDownsampler else [n * factor for n in lengths]
    assert out_lengths.tolist() == expected
    for i, n in enumerate(lengths.tolist()):
        alone, alone_len = stack(x[i:i + 1, :n], lengths[i:i + 1])
        torch.testing.assert_close(out[i, : int(alone_len)], alone[0, : int(alone_len)], atol=1e-5, rtol=1e-5)
        assert torch.all(out[i, int(alone_len):] == 0)


def test_quantizer_follows_the_library_and_masks_padding():
    torch.manual_seed(0)
    q = ResidualQuantizer(QuantizerConfig(codebook_sizes=[8, 4, 4], dim=6, kmeans_iters=2))
    assert not q.initialised
    z = torch.randn(2, 12, 6)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    q.train()
    out = q(z, mask)
    assert q.initialised and out.codes.shape == (2, 12, 3) and out.commitment.shape == (3,)
    assert torch.all(out.codes[1, 7:] == -1) and torch.all(out.quantized[1, 7:] == 0)
    q.eval()
    out = q(z, mask)
    # decoding the codes gives the quantized vectors; residual structure: each level quantizes what is left
    torch.testing.assert_close(q.decode_codes(out.codes), out.quantized, atol=1e-5, rtol=1e-5)
    books = q.rvq.codebooks
    level0 = books[0][out.codes[0, :, 0]]
    dist = torch.cdist(z[0], books[0])
    assert torch.equal(out.codes[0, :, 0], dist.argmin(dim=1))
    residual = z[0] - level0
    assert torch.equal(out.codes[0, :, 1], torch.cdist(residual, books[1]).argmin(dim=1))


def test_commitment_loss_is_the_masked_frame_mean():
    torch.manual_seed(0)
    q = ResidualQuantizer(QuantizerConfig(codebook_sizes=[4], dim=3, kmeans_iters=1, commitment_weight=0.5,
                                          decay=0.999, threshold_ema_dead_code=0))
    z = torch.randn(1, 10, 3)
    mask = torch.ones(1, 10, dtype=torch.bool)
    q.train()
    q(z, mask)  # k-means init
    mask[0, 6:] = False
    out = q(z, mask)
    q.eval()
    chosen = q.decode_codes(out.codes)[0, :6]
    expected = 0.5 * ((chosen - z[0, :6]) ** 2).mean()
    torch.testing.assert_close(out.commitment[0], expected, atol=1e-3, rtol=1e-2)  # EMA moved the book a little


def test_lm_inputs_layout_matches_the_docstring():
    audio = torch.arange(1, 4).float()[None, :, None].expand(2, 3, 1).clone()  # frames valued 1, 2, 3
    text_ids = torch.tensor([[7, 8, 9], [5, 9, 0]])
    text_embeds = -text_ids[..., None].float()
    context = torch.tensor([[100.0]])
    embeds, mask, labels = build_lm_inputs(audio, torch.tensor([2, 1]), text_embeds, text_ids, torch.tensor([3, 2]),
                                           context)
    assert embeds[..., 0].tolist() == [[1, 2, 100, -7, -8, -9], [1, 100, -5, -9, 0, 0]]
    assert labels.tolist() == [[-100, -100, -100, 7, 8, 9], [-100, -100, 5, 9, -100, -100]]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]
    embeds, mask, labels = build_lm_inputs(audio, torch.tensor([2, 1]), text_embeds, text_ids, torch.tensor([3, 2]))
    assert labels.tolist() == [[-100, -100, 7, 8, 9], [-100, 5, 9, -100, -100]]


def test_transcription_nll_with_no_audio_equals_the_lm_on_text(tmp_path_factory):
    """With zero audio frames and the separator as context, the objective is the LM's own text NLL."""
    from transformers import AutoModelForCausalLM

    from audio_tokenizer.transcription import transcription_nll
    from tests.helpers.speech_data import tiny_lm

    lm = AutoModelForCausalLM.from_pretrained(str(tiny_lm(tmp_path_factory)), local_files_only=True).eval()
    ids = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
    lengths = torch.tensor([4, 3])
    audio = torch.zeros(2, 1, lm.config.hidden_size)
    nll, count = transcription_nll(lm, audio, torch.tensor([0, 0]), ids, lengths, context_ids=(2,))
    full = torch.tensor([[2, 5, 6, 7, 2], [2, 8, 9, 2, 2]])
    logits = lm(input_ids=full, attention_mask=torch.tensor([[1] * 5, [1, 1, 1, 1, 0]])).logits
    labels = full.clone()
    labels[0, 0] = labels[1, 0] = labels[1, 4] = -100
    ref, ref_count = token_nll(logits, labels)
    assert count.tolist() == ref_count.tolist() == [4, 3]
    torch.testing.assert_close(nll, ref, atol=1e-4, rtol=1e-4)

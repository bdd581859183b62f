"""Auxiliary CTC objective of the tokenizer: the loss by hand, its gradient path, training and export."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from audio_tokenizer.ctc import CTCHead, ctc_per_token
from audio_tokenizer.data import SpeechDataset, collate_speech, manifest_speech
from audio_tokenizer.model import AudioTokenizer
from audio_tokenizer.train import TokenizerTask, TokenizerTrainModel, train_tokenizer
from audio_tokenizer.transcription import FrozenLM, TranscriptionAdapter
from omni.config.fields import FieldError
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.speech_data import one_thread  # noqa: F401 (one_thread: fixture)
from tests.helpers.speech_fixtures import corpus, lm_dir  # noqa: F401 (fixtures)
from tests.test_tokenizer_training import make_config, scalars


def test_ctc_by_hand():
    """Two frames, one target token 'a' (class 0), blank = class 1: the alignments are (a,a), (a,-), (-,a), so
    p = pa0*pa1 + pa0*pb1 + pb0*pa1; one token, so the per-token loss is -log p. The end-of-text id is dropped."""
    probs = torch.tensor([[[0.7, 0.3], [0.4, 0.6]]])  # (B=1, T=2, V+1=2)
    p = 0.7 * 0.4 + 0.7 * 0.6 + 0.3 * 0.4
    res = ctc_per_token(probs.log(), torch.tensor([2]), torch.tensor([[0, 5]]), torch.tensor([2]), blank=1)
    assert res.infeasible == 0 and float(res.loss[0]) == pytest.approx(-math.log(p), rel=1e-6)
    # a transcript longer than the frames cannot align: scored 0 and counted; an empty one scores 0
    res = ctc_per_token(probs.log(), torch.tensor([1]), torch.tensor([[0, 0, 5]]), torch.tensor([3]), blank=1)
    assert res.infeasible == 1 and float(res.loss[0]) == 0.0
    res = ctc_per_token(probs.log(), torch.tensor([2]), torch.tensor([[5]]), torch.tensor([1]), blank=1)
    assert float(res.loss[0]) == 0.0


def test_padding_does_not_change_a_clip_loss():
    torch.manual_seed(0)
    head = CTCHead(4, vocab_size=6, hidden=8)
    q = torch.randn(2, 9, 4)
    q[1, 6:] = 1e3  # padding frames of the second clip hold garbage
    lengths = torch.tensor([9, 6])
    lp = head(q, lengths)  # (2, 9, 7)
    ids = torch.tensor([[1, 2, 3, 9], [4, 5, 9, 0]])  # end-of-text 9; second row padded
    both = ctc_per_token(lp, lengths, ids, torch.tensor([4, 3]), blank=6).loss.detach()
    alone = ctc_per_token(head(q[1:, :6]), torch.tensor([6]), ids[1:, :3], torch.tensor([3]), blank=6).loss.detach()
    assert float(both[1]) == pytest.approx(float(alone[0]), rel=1e-5)


def test_ctc_gradient_reaches_the_encoder(corpus, lm_dir):
    cfg = make_config(corpus, lm_dir, Path("/unused"))
    cfg.mel_weight, cfg.transcription.weight, cfg.ctc_weight = 0.0, 0.0, 1.0
    lm = FrozenLM(lm_dir)
    torch.manual_seed(0)
    model = TokenizerTrainModel(AudioTokenizer(cfg.model), TranscriptionAdapter(16, lm.hidden_size),
                                CTCHead(16, len(lm.tokenizer), 32)).train()
    data = SpeechDataset(manifest_speech(cfg.train_manifests)[:4], 16000, lambda t: lm.encode_text(t, 64))
    out = TokenizerTask(cfg, lm).compute_loss(model, collate_speech([data[i] for i in range(4)]), "main")
    assert out.sums["loss/ctc"] > 0
    out.loss.backward()
    conv = model.tokenizer.encoder.whisper.conv1.weight.grad
    assert conv is not None and float(conv.abs().sum()) > 0
    assert float(model.ctc_head.out.weight.grad.abs().sum()) > 0


def test_ctc_alone_fits_a_batch(corpus, lm_dir):
    """A few optimizer steps on the CTC term alone lower it on that batch: the loss and its gradient agree."""
    cfg = make_config(corpus, lm_dir, Path("/unused"))
    cfg.mel_weight, cfg.transcription.weight, cfg.ctc_weight = 0.0, 0.0, 1.0
    lm = FrozenLM(lm_dir)
    torch.manual_seed(0)
    model = TokenizerTrainModel(AudioTokenizer(cfg.model), None, CTCHead(16, len(lm.tokenizer), 32)).train()
    data = SpeechDataset(manifest_speech(cfg.train_manifests)[:4], 16000, lambda t: lm.encode_text(t, 64))
    batch = collate_speech([data[i] for i in range(4)])
    task = TokenizerTask(cfg, lm)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        out = task.compute_loss(model, batch, "main")
        losses.append(float(out.sums["loss/ctc"]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert losses[0] > 0 and losses[-1] < 0.7 * losses[0], losses


def test_training_with_ctc_logs_it_and_exports_the_head_beside_the_tokenizer(corpus, lm_dir, tmp_path):
    """Both CTC heads train; the BPE head is saved in <tokenizer>/ctc (the codes' gate reads with it) and the
    tokenizer itself loads without it; dev metrics hold the greedy CTC WER and the phoneme CTC loss."""
    from audio_tokenizer.ctc import CTC_DIR, CodesTranscriber

    cfg = make_config(corpus, lm_dir, tmp_path / "run")
    cfg.ctc_weight, cfg.ctc_hidden, cfg.phoneme_ctc_weight = 1.0, 32, 1.0
    run = train_tokenizer(cfg)
    for tag in ("loss/ctc", "loss/phoneme_ctc"):
        values = scalars(tmp_path / "run", tag)
        assert len(values) == 6 and all(math.isfinite(v) and v > 0 for v in values), tag
    assert 0.0 <= run.metrics["ctc_wer"] and run.metrics["phoneme_ctc_loss"] > 0
    saved = AudioTokenizer.from_pretrained(run.final_dir)
    assert not any("ctc" in n for n, _ in saved.named_parameters())
    assert (run.final_dir / CTC_DIR / "model.safetensors").is_file()
    trained_head = run.tokenizer  # the in-memory tokenizer equals the saved one
    reader = CodesTranscriber.from_pretrained(run.final_dir)
    assert torch.equal(reader.tokenizer.pre_quant.weight, trained_head.pre_quant.weight)


def test_ctc_needs_the_lm_tokenizer(corpus, tmp_path):
    with pytest.raises(FieldError, match="ctc_weight"):
        cfg = make_config(corpus, None, tmp_path)
        cfg.ctc_weight = 1.0
        cfg.__post_init__()


def test_ctc_without_the_transcription_loss(corpus, lm_dir, tmp_path):
    """transcription.weight=0 drops the frozen-LM loss and its adapter but keeps the CTC head, whose targets are
    the LM tokenizer's: the head trains, its WER is reported, no transcription NLL is (nothing computes it)."""
    cfg = make_config(corpus, lm_dir, tmp_path / "run")
    cfg.transcription.weight, cfg.ctc_weight, cfg.ctc_hidden = 0.0, 1.0, 32
    run = train_tokenizer(cfg)
    values = scalars(tmp_path / "run", "loss/ctc")
    assert values and all(math.isfinite(v) and v > 0 for v in values)
    assert all(v == 0 for v in scalars(tmp_path / "run", "loss/text"))
    assert "ctc_wer" in run.metrics and "text_nll" not in run.metrics
    assert not any(t.startswith("lr/main/adapter") for t in _tags(tmp_path / "run"))


def _tags(run_dir: Path) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(next((run_dir / "tensorboard").rglob("events*"))))
    acc.Reload()
    return acc.Tags()["scalars"]

"""Tokenizer training on the shared loop: losses fall, only tokenizer-side weights learn, resume, export, 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

from audio_tokenizer.data import collate_speech
from audio_tokenizer.model import AudioTokenizer
from audio_tokenizer.train import (
    TokenizerTask,
    TokenizerTrainConfig,
    TokenizerTrainModel,
    train_tokenizer,
)
from audio_tokenizer.transcription import FrozenLM, TranscriptionAdapter
from omni.config import from_data, save_config, to_data
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.speech_data import one_thread, tiny_config  # noqa: F401 (one_thread: fixture)
from tests.helpers.speech_fixtures import corpus, lm_dir  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent


def make_config(corpus: Path, lm_dir: Path | None, out: Path, **loop) -> TokenizerTrainConfig:
    model = to_data(tiny_config(codebook_sizes=(8,) * 8))
    return from_data(TokenizerTrainConfig, {
        "train_manifests": [str(corpus / "asr_train.jsonl"), str(corpus / "spoken_qa_train.jsonl")],
        "dev_manifests": [str(corpus / "asr_dev.jsonl")],
        "model": model,
        "transcription": {"lm_path": str(lm_dir) if lm_dir else None},
        "optim": {"lr": 5e-3, "warmup_steps": 2},
        "loop": {"output_dir": str(out), "max_steps": 12, "batch_size": 4, "log_every": 2, "eval_every": 6,
                 "save_every": 4, "progress": False, **loop},
    })


def scalars(run: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((run / "tensorboard").rglob("events*"))))
    events.Reload()
    return [e.value for e in events.Scalars(tag)]


def test_only_tokenizer_side_parameters_get_gradients(corpus, lm_dir):
    cfg = make_config(corpus, lm_dir, Path("/unused"))
    lm = FrozenLM(lm_dir)
    torch.manual_seed(0)
    model = TokenizerTrainModel(AudioTokenizer(cfg.model), TranscriptionAdapter(16, lm.hidden_size)).train()
    from audio_tokenizer.data import SpeechDataset, manifest_speech

    data = SpeechDataset(manifest_speech(cfg.train_manifests)[:4], 16000, lambda t: lm.encode_text(t, 64))
    batch = collate_speech([data[i] for i in range(4)])
    out = TokenizerTask(cfg, lm).compute_loss(model, batch, "main")
    assert out.sums["loss/text"] > 0 and out.sums["loss/mel"] > 0
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in lm.model.parameters())
    for prefix in ("adapter.", "tokenizer.encoder.whisper.layers.0.", "tokenizer.downsampler.", "tokenizer.pre_quant.",
                   "tokenizer.decoder."):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(prefix)]
        assert grads and all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0, prefix


def test_transcription_gradient_reaches_the_encoder_through_the_quantizer(corpus, lm_dir):
    cfg = make_config(corpus, lm_dir, Path("/unused"))
    cfg.mel_weight = 0.0
    lm = FrozenLM(lm_dir)
    torch.manual_seed(0)
    model = TokenizerTrainModel(AudioTokenizer(cfg.model), TranscriptionAdapter(16, lm.hidden_size)).train()
    from audio_tokenizer.data import SpeechDataset, manifest_speech

    data = SpeechDataset(manifest_speech(cfg.train_manifests)[:4], 16000, lambda t: lm.encode_text(t, 64))
    out = TokenizerTask(cfg, lm).compute_loss(model, collate_speech([data[i] for i in range(4)]), "main")
    out.loss.backward()
    conv = model.tokenizer.encoder.whisper.conv1.weight.grad
    assert conv is not None and float(conv.abs().sum()) > 0
    dec = model.tokenizer.decoder.out.weight.grad  # the mel decoder has no say without the mel loss
    assert dec is None or float(dec.abs().sum()) == 0


def test_losses_fall_resume_equals_uninterrupted_and_the_tokenizer_is_exported(corpus, lm_dir, tmp_path, monkeypatch):
    ref = train_tokenizer(make_config(corpus, lm_dir, tmp_path / "ref"))
    assert ref.result.complete and ref.final_dir == tmp_path / "ref" / "tokenizer"
    mel, text = scalars(tmp_path / "ref", "loss/mel"), scalars(tmp_path / "ref", "loss/text")
    assert len(mel) == 6 and sum(mel[-2:]) < 0.9 * sum(mel[:2]) and sum(text[-2:]) < sum(text[:2])
    dev_mel = scalars(tmp_path / "ref", "eval/loss_mel")  # the same dev clips at steps 6 and 12
    assert len(dev_mel) == 2 and dev_mel[1] < dev_mel[0]
    assert scalars(tmp_path / "ref", "loss/commitment") and scalars(tmp_path / "ref", "codebook/perplexity_7")
    report = json.loads((tmp_path / "ref" / "eval_report.json").read_text())
    assert report["step"] == 12 and len(report["levels"]) == 8 and report["metrics"]["bitrate"] == 12.5 * 24
    assert all(0 < lv["usage"] <= 1 and 1 <= lv["perplexity"] <= 8 for lv in report["levels"])
    assert "text_nll" in report["metrics"] and "text_nll_without_audio" in report["metrics"]
    assert scalars(tmp_path / "ref", "eval/usage_0")[-1] == report["metrics"]["usage_0"]
    assert {p.name for p in (tmp_path / "ref" / "figures").iterdir()} == {"codebook_usage.png", "mel_reconstruction.png"}
    exported = AudioTokenizer.from_pretrained(ref.final_dir)
    clip = torch.randn(8000) * 0.1
    assert exported.encode(clip.numpy(), 16000).shape == (7, 8)

    # a crash during step 7 (after the checkpoint of step 4); rerunning the same command resumes
    calls = {"n": 0}
    original = TokenizerTask.compute_loss

    def crash(self, model, batch, phase):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return original(self, model, batch, phase)

    AcceleratorState._reset_state(reset_partial_state=True)
    monkeypatch.setattr(TokenizerTask, "compute_loss", crash)
    with pytest.raises(KeyboardInterrupt):
        train_tokenizer(make_config(corpus, lm_dir, tmp_path / "run"))
    monkeypatch.setattr(TokenizerTask, "compute_loss", original)
    AcceleratorState._reset_state(reset_partial_state=True)
    again = train_tokenizer(make_config(corpus, lm_dir, tmp_path / "run"))
    assert again.result.complete
    resumed = AudioTokenizer.from_pretrained(again.final_dir).state_dict()
    for k, v in exported.state_dict().items():
        torch.testing.assert_close(resumed[k], v, atol=1e-5, rtol=1e-4, msg=k)

    # a finished run is not trained again and keeps its export
    AcceleratorState._reset_state(reset_partial_state=True)
    stamp = (again.final_dir / "model.safetensors").stat().st_mtime_ns
    done = train_tokenizer(make_config(corpus, lm_dir, tmp_path / "run"))
    assert done.result.complete and done.metrics["usage_0"] == report["metrics"]["usage_0"]
    assert (again.final_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_missing_pretrained_directories_are_clear_errors(corpus, tmp_path):
    cfg = make_config(corpus, tmp_path / "no-lm", tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no-lm: language model directory not found"):
        train_tokenizer(cfg)
    AcceleratorState._reset_state(reset_partial_state=True)
    cfg = make_config(corpus, None, tmp_path / "run")
    cfg.model.encoder.pretrained_path = str(tmp_path / "whisper-large-v3")
    with pytest.raises(FileNotFoundError, match="whisper-large-v3: Whisper directory not found"):
        train_tokenizer(cfg)


def test_two_processes_train_with_synchronised_codebooks(corpus, tmp_path):
    """torchrun with 2 processes: the ranks end with identical weights and codebooks (the library all-reduces
    k-means and EMA statistics), and the 2-process run is a real one (its codebooks differ from the untrained init)."""
    cfg = make_config(corpus, None, tmp_path / "ddp", max_steps=3, eval_every=0, save_every=3)
    save_config(cfg, tmp_path / "ddp.yaml")
    script = ("import os, sys\n"
              "from safetensors.torch import save_file\n"
              "from omni.config import load_config\n"
              "from audio_tokenizer.train import TokenizerTrainConfig, train_tokenizer\n"
              "run = train_tokenizer(load_config(sys.argv[1], TokenizerTrainConfig))\n"
              "state = {k: v.contiguous() for k, v in run.tokenizer.state_dict().items()}\n"
              "save_file(state, sys.argv[2] + f\"/rank{os.environ['RANK']}.safetensors\")\n")
    (tmp_path / "run.py").write_text(script)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--nproc_per_node", "2", "--standalone",
           str(tmp_path / "run.py"), str(tmp_path / "ddp.yaml"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from safetensors.torch import load_file

    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in range(2)]
    for k, v in ranks[0].items():
        torch.testing.assert_close(ranks[1][k], v, atol=1e-6, rtol=1e-6, msg=k)
    book = "quantizer.rvq.layers.0._codebook.embed"
    assert ranks[0]["quantizer.rvq.layers.0._codebook.initted"].item() and ranks[0][book].abs().sum() > 0
    state = json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())
    assert state["complete"] and state["step"] == 3
    assert AudioTokenizer.from_pretrained(tmp_path / "ddp" / "tokenizer").quantizer.initialised


def test_the_frozen_lm_learns_to_read_frames_through_the_adapter(lm_dir):
    """Two different frame sequences with different transcripts: training only the adapter (the LM stays frozen),
    each transcript becomes more likely given its own frames than given the other's."""
    from audio_tokenizer.transcription import transcription_nll

    lm = FrozenLM(lm_dir)
    torch.manual_seed(0)
    adapter = TranscriptionAdapter(16, lm.hidden_size)
    frames = torch.randn(2, 5, 16)  # (B, T, dim_q) stand-ins for two clips' quantized frames
    texts = [lm.encode_text("turn on the kitchen lights", 32), lm.encode_text("what is two plus three", 32)]
    width = max(len(x) for x in texts)
    ids = torch.tensor([x + [0] * (width - len(x)) for x in texts])
    text_lengths, frame_lengths = torch.tensor([len(x) for x in texts]), torch.tensor([5, 5])
    separator = (lm.tokenizer.eos_token_id,)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    opt = torch.optim.AdamW(adapter.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nll, _ = transcription_nll(lm.model, adapter(frames), frame_lengths, ids, text_lengths, separator)
        nll.sum().backward()
        opt.step()
    with torch.no_grad():
        own, _ = transcription_nll(lm.model, adapter(frames), frame_lengths, ids, text_lengths, separator)
        swapped, _ = transcription_nll(lm.model, adapter(frames.flip(0)), frame_lengths, ids, text_lengths, separator)
    assert torch.all(own < swapped - 0.2), (own, swapped)
    assert all(torch.equal(before[k], v) for k, v in lm.model.state_dict().items())

"""Whisper front end: parity with transformers.WhisperFeatureExtractor on random and real audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audio_tokenizer.frontend import FrontendConfig, WhisperFrontend
from omni.audio.io import load_audio
from omni.data.manifest import load_manifest
from tests.helpers.speech_data import mini_corpus, one_thread  # noqa: F401 (one_thread: fixture)

TOL = 1e-4


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[np.ndarray]:
    """Random noise, a chirp, near-silence, and three real corpus utterances (two voices), 16 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(23457) / 16000
    synthetic = [
        (0.1 * rng.standard_normal(16000)).astype(np.float32),
        (0.5 * np.sin(2 * np.pi * (200 + 3000 * t) * t)).astype(np.float32),
        (1e-4 * rng.standard_normal(5001)).astype(np.float32),
    ]
    corpus = mini_corpus(tmp_path_factory)
    rows = load_manifest(corpus / "asr_train.jsonl")[:3]
    real = [load_audio(corpus / r.audio, 16000).samples for r in rows]
    return synthetic + real


def reference(fe, clip: np.ndarray, **kwargs) -> np.ndarray:
    return fe(clip, sampling_rate=16000, return_tensors="np", **kwargs)["input_features"][0]


@pytest.mark.parametrize("n_mels", [80, 128])
def test_matches_the_feature_extractor_clip_by_clip(clips, n_mels):
    cfg = FrontendConfig(n_mels=n_mels)
    fe, frontend = cfg.feature_extractor(), WhisperFrontend(cfg)
    for clip in clips:
        ref = reference(fe, clip, padding="longest")  # the extractor on the clip alone: len // 160 frames
        out = frontend(torch.from_numpy(clip)[None])
        assert out.mel.shape == (1, n_mels, len(clip) // 160) == (1, *ref.shape)
        assert int(out.lengths[0]) == len(clip) // 160
        assert np.abs(out.mel[0].numpy() - ref).max() <= TOL


def test_matches_the_extractor_on_its_own_30_second_padding(clips):
    cfg = FrontendConfig(n_mels=80)
    fe, frontend = cfg.feature_extractor(), WhisperFrontend(cfg)
    for clip in (clips[0], clips[-1]):
        ref = reference(fe, clip)  # default: zero-padded to 30 s, 3000 frames
        padded = np.zeros(480000, np.float32)
        padded[: len(clip)] = clip
        out = frontend(torch.from_numpy(padded)[None]).mel[0].numpy()
        assert ref.shape == out.shape == (80, 3000)
        assert np.abs(out - ref).max() <= TOL


def test_matches_the_extractors_numpy_implementation(clips):
    """An independent reference: the extractor's numpy STFT path (not torch.stft)."""
    cfg = FrontendConfig(n_mels=128)
    fe, frontend = cfg.feature_extractor(), WhisperFrontend(cfg)
    for clip in clips:
        ref = fe._np_extract_fbank_features(clip[None].astype(np.float32), "cpu")[0]
        out = frontend(torch.from_numpy(clip)[None]).mel[0].numpy()
        assert np.abs(out - ref).max() <= TOL


def test_a_padded_batch_gives_each_clip_its_own_features(clips):
    cfg = FrontendConfig(n_mels=80)
    fe, frontend = cfg.feature_extractor(), WhisperFrontend(cfg)
    lengths = torch.tensor([len(c) for c in clips])
    wav = torch.full((len(clips), int(lengths.max())), 0.3)  # junk past each end must not matter
    for i, c in enumerate(clips):
        wav[i, : len(c)] = torch.from_numpy(c)
    out = frontend(wav, lengths)
    assert out.lengths.tolist() == [len(c) // 160 for c in clips]
    for i, clip in enumerate(clips):
        n = len(clip) // 160
        assert np.abs(out.mel[i, :, :n].numpy() - reference(fe, clip, padding="longest")).max() <= TOL
        assert torch.all(out.mel[i, :, n:] == 0)
    assert out.mask.sum(dim=1).tolist() == out.lengths.tolist()


def test_amp_does_not_change_the_features(clips):
    frontend = WhisperFrontend(FrontendConfig())
    wav = torch.from_numpy(clips[-1])[None]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = frontend(wav).mel
    assert amp.dtype == torch.float32 and torch.equal(amp, frontend(wav).mel)


def test_bad_shapes_and_short_clips_are_clear_errors():
    frontend = WhisperFrontend(FrontendConfig())
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        frontend(torch.zeros(100))
    with pytest.raises(ValueError, match="at least 201 samples"):
        frontend(torch.zeros(1, 150))
    from omni.config import ConfigError, from_data

    with pytest.raises(ConfigError, match="n_fft"):
        from_data(FrontendConfig, {"n_fft": 401})

"""AudioTokenizer public API: round trip, determinism, batching, long audio, persistence, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audio_tokenizer.model import AudioTokenizer, AudioTokenizerConfig, pad_batch
from omni.audio.io import AudioError, load_audio
from omni.config import ConfigError, from_data
from omni.data.manifest import load_manifest
from tests.helpers.speech_data import initialised_tokenizer, mini_corpus, one_thread, tiny_config  # noqa: F401 (one_thread: fixture)


@pytest.fixture(scope="module")
def dev_clips(tmp_path_factory) -> list[np.ndarray]:
    corpus = mini_corpus(tmp_path_factory)
    rows = load_manifest(corpus / "asr_dev.jsonl") + load_manifest(corpus / "asr_test.jsonl")
    return [load_audio(corpus / r.audio, 16000).samples for r in rows]


@pytest.fixture(scope="module")
def tok(dev_clips) -> AudioTokenizer:
    return initialised_tokenizer(clips=dev_clips)


def test_facts_other_components_read(tok):
    assert tok.codebook_sizes == (16,) * 8 and tok.num_codebooks == 8
    assert tok.frame_rate == 12.5 and tok.samples_per_frame == 1280 and tok.sample_rate == 16000
    assert tok.bitrate == pytest.approx(12.5 * 8 * 4)
    mixed = AudioTokenizer(tiny_config(codebook_sizes=(1024, 512, 256, 128)))
    assert mixed.codebook_sizes == (1024, 512, 256, 128) and mixed.bitrate == pytest.approx(12.5 * (10 + 9 + 8 + 7))


def test_round_trip_on_dev_audio(tok, dev_clips):
    for clip in dev_clips:
        codes = tok.encode(clip, 16000)
        frames = int(np.ceil((len(clip) // 160) / 8))
        assert codes.shape == (frames, 8) and codes.dtype == torch.int64 and frames == tok.num_frames(len(clip))
        assert int(codes.min()) >= 0 and int(codes.max()) < 16
        mel = tok.decode(codes)
        assert mel.shape == (80, 8 * frames) and torch.isfinite(mel).all()
        assert tok.decode(codes, mel_frames=len(clip) // 160).shape == (80, len(clip) // 160)


def test_codes_are_deterministic_and_batch_independent(tok, dev_clips):
    alone = [tok.encode(c, 16000) for c in dev_clips]
    assert all(torch.equal(a, tok.encode(c, 16000)) for a, c in zip(alone, dev_clips))
    many = tok.encode_many(dev_clips, 16000, batch_size=3)
    assert all(torch.equal(a, m) for a, m in zip(alone, many))
    wav, lengths = pad_batch(dev_clips)
    batch = tok.encode_batch(wav, lengths)
    assert batch.lengths.tolist() == [len(a) for a in alone]
    assert all(torch.equal(a, b) for a, b in zip(alone, batch.unbatch()))
    assert torch.all(batch.codes[1, int(batch.lengths[1]):] == -1) or int(batch.lengths[1]) == batch.codes.shape[1]


def test_encode_does_not_touch_the_codebooks_and_keeps_the_training_flag(tok, dev_clips):
    before = {k: v.clone() for k, v in tok.state_dict().items()}
    tok.train()
    tok.encode(dev_clips[0], 16000)
    assert tok.training
    tok.eval()
    assert all(torch.equal(before[k], v) for k, v in tok.state_dict().items())


def test_long_audio_is_encoded_window_by_window(tok, dev_clips):
    long = np.concatenate([dev_clips[0]] * 40)[: 16000 * 31 + 300]  # 31 s + 300 samples
    codes = tok.encode(long, 16000)
    assert codes.shape == (375 + 13, 8) == (tok.num_frames(len(long)), 8)
    first, rest = tok.encode(long[:480000], 16000), tok.encode(long[480000:], 16000)
    assert torch.equal(codes, torch.cat([first, rest]))  # windows are independent 30 s clips


def test_save_and_load_give_the_same_codes_without_the_whisper_dir(tok, dev_clips, tmp_path):
    tok.save_pretrained(tmp_path / "tok")
    assert {"config.json", "model.safetensors", "whisper_config.json", "preprocessor_config.json"} <= {
        p.name for p in (tmp_path / "tok").iterdir()}
    again = AudioTokenizer.from_pretrained(tmp_path / "tok")
    assert not again.training
    for clip in dev_clips[:3]:
        codes = tok.encode(clip, 16000)
        assert torch.equal(again.encode(clip, 16000), codes)
        torch.testing.assert_close(again.decode(codes), tok.decode(codes))
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor.from_pretrained(str(tmp_path / "tok"))  # HF reads the same front-end settings
    assert fe.feature_size == 80 and fe.hop_length == 160
    tok.save_pretrained(tmp_path / "tok")  # overwriting is atomic and leaves no temp dirs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]
    with pytest.raises(FileNotFoundError, match="not a saved audio tokenizer"):
        AudioTokenizer.from_pretrained(tmp_path / "missing")


def test_bad_input_is_handled_or_named(tok, dev_clips):
    clip = dev_clips[0]
    ref = tok.encode(clip, 16000)
    with pytest.raises(AudioError, match="no samples"):
        tok.encode(np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"too short: 50.0 ms .*one 80 ms frame"):
        tok.encode(np.zeros(800, np.float32), 16000)
    bad = clip.copy()
    bad[100] = np.nan
    with pytest.raises(AudioError, match="1 NaN or Inf"):
        tok.encode(bad, 16000)
    # stereo in both layouts is downmixed: identical channels give the mono codes
    assert torch.equal(tok.encode(np.stack([clip, clip], axis=1), 16000), ref)
    assert torch.equal(tok.encode(torch.from_numpy(np.stack([clip, clip])), 16000), ref)
    # other rates are resampled (soxr): 8 kHz and 48 kHz versions of the clip give nearly the same codes
    import soxr

    for rate in (8000, 48000):
        codes = tok.encode(soxr.resample(clip, 16000, rate), rate)
        assert abs(codes.shape[0] - ref.shape[0]) <= 1
        n = min(len(codes), len(ref))
        assert (codes[:n, 0] == ref[:n, 0]).float().mean() > 0.5
    int16 = (clip * 32767).astype(np.int16)
    assert (tok.encode(int16, 16000) == ref).float().mean() > 0.9
    with pytest.raises(AudioError, match="cannot tell channels"):
        tok.encode(np.zeros((20, 20), np.float32), 16000)
    with pytest.raises(AudioError, match="sample rate"):
        tok.encode(clip, 0)
    with pytest.raises(ValueError, match="codes of level 0 must be in 0..15"):
        tok.decode(torch.full((3, 8), 16))
    with pytest.raises(ValueError, match=r"shape \(T, 8\)"):
        tok.decode(torch.zeros(3, 4, dtype=torch.long))


def test_an_untrained_quantizer_refuses_to_encode():
    fresh = AudioTokenizer(tiny_config())
    with pytest.raises(RuntimeError, match="not initialised"):
        fresh.encode(np.zeros(4000, np.float32), 16000)


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="decoder.upsampler.strides"):
        from_data(AudioTokenizerConfig, {"decoder": {"upsampler": {"strides": [2]}}})
    with pytest.raises(ConfigError, match="chunk_seconds"):
        from_data(AudioTokenizerConfig, {"chunk_seconds": 0.1})
    with pytest.raises(ConfigError, match="quantizer.codebook_sizes"):
        from_data(AudioTokenizerConfig, {"quantizer": {"codebook_sizes": [1024, 1]}})
    with pytest.raises(ValueError, match="longer than the Whisper encoder's window"):
        AudioTokenizer(tiny_config().__class__(**{**tiny_config().__dict__, "chunk_seconds": 40.0}))

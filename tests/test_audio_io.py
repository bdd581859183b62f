"""Audio I/O: formats, downmix, resampling, segments and every error case."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from omni.audio.io import (
    AudioError,
    AudioLimits,
    check_waveform,
    level_stats,
    load_audio,
    probe_audio,
    resample,
    save_audio,
)


def tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3"])
def test_common_formats_load_resampled(tmp_path, suffix):
    path = tmp_path / f"a.{suffix}"
    sf.write(path, tone(1.0, 22050), 22050)
    audio = load_audio(path, 16000)
    assert audio.sample_rate == 16000 and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(audio.duration - 1.0) < 0.06  # lossy codecs pad a little
    assert abs(dominant_freq(audio.samples, 16000) - 440) < 3


def test_ffmpeg_fallback_for_other_containers(tmp_path):
    import imageio_ffmpeg

    path = tmp_path / "a.m4a"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=f=300:d=1.5",
                    "-ac", "2", "-ar", "44100", str(path)], check=True)
    info = probe_audio(path)
    assert (info.sample_rate, info.channels) == (44100, 2) and abs(info.duration - 1.5) < 0.05
    audio = load_audio(path, 16000)
    assert abs(audio.duration - 1.5) < 0.06 and abs(dominant_freq(audio.samples, 16000) - 300) < 3


def test_stereo_is_downmixed_by_averaging(tmp_path):
    left, right = tone(0.5, 16000, 440, 0.4), tone(0.5, 16000, 440, 0.2)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    audio = load_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(audio.samples, (left + right) / 2, atol=1e-6)
    both = load_audio(tmp_path / "s.wav", mono=False)
    assert both.samples.shape == (8000, 2)


@pytest.mark.parametrize("sr", [8000, 48000])
def test_resampling_keeps_length_and_pitch(tmp_path, sr):
    sf.write(tmp_path / "x.wav", tone(2.0, sr, 1000), sr)
    audio = load_audio(tmp_path / "x.wav", 16000)
    assert len(audio.samples) == 32000
    assert abs(dominant_freq(audio.samples, 16000) - 1000) < 2
    np.testing.assert_allclose(resample(tone(1.0, 16000), 16000, 16000), tone(1.0, 16000))


def test_segment_by_offset_and_duration(tmp_path):
    x = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    sf.write(tmp_path / "r.wav", x, 16000, subtype="FLOAT")
    seg = load_audio(tmp_path / "r.wav", offset=0.25, duration=0.5)
    np.testing.assert_allclose(seg.samples, x[4000:12000])
    with pytest.raises(AudioError, match="past the end"):
        load_audio(tmp_path / "r.wav", offset=0.8, duration=0.5)
    with pytest.raises(AudioError, match="past the end"):
        load_audio(tmp_path / "r.wav", offset=2.0)


def write_bytes(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_error_cases_name_file_and_problem(tmp_path):
    sf.write(tmp_path / "ok.wav", tone(1.0, 16000), 16000)
    full = (tmp_path / "ok.wav").read_bytes()
    sf.write(tmp_path / "ok.flac", tone(1.0, 16000), 16000)
    cases = {
        tmp_path / "missing.wav": "file not found",
        write_bytes(tmp_path, "empty.wav", b""): "empty file",
        write_bytes(tmp_path, "garbage.wav", b"\x00\x01not audio at all" * 50): "unreadable audio",
        write_bytes(tmp_path, "trunc.wav", full[: len(full) // 2]): "truncated",
        write_bytes(tmp_path, "header_only.wav", full[:44]): "file holds 0",
        write_bytes(tmp_path, "trunc.flac", (tmp_path / "ok.flac").read_bytes()[:3000]): "truncated",
    }
    for path, fragment in cases.items():
        with pytest.raises(AudioError) as info:
            load_audio(path, 16000)
        assert str(path) in str(info.value)
        assert fragment in info.value.problem, (path.name, info.value.problem)


def test_nan_inf_silence_and_length_limits(tmp_path):
    bad = tone(0.5, 16000)
    bad[100] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="1 NaN or Inf"):
        load_audio(tmp_path / "nan.wav")
    bad[100] = np.inf
    sf.write(tmp_path / "inf.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or Inf"):
        load_audio(tmp_path / "inf.wav")
    sf.write(tmp_path / "quiet.wav", tone(0.5, 16000, amp=1e-4), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="silent: peak -80.0 dBFS"):
        load_audio(tmp_path / "quiet.wav")
    assert load_audio(tmp_path / "quiet.wav", limits=AudioLimits(allow_silence=True)).duration == 0.5
    sf.write(tmp_path / "long.wav", tone(3.0, 8000), 8000)
    with pytest.raises(AudioError, match="too long: 3.0 s > limit 2 s"):
        load_audio(tmp_path / "long.wav", limits=AudioLimits(max_seconds=2))
    assert load_audio(tmp_path / "long.wav", offset=1.0, duration=1.5, limits=AudioLimits(max_seconds=2)).duration == 1.5
    with pytest.raises(AudioError, match="too short"):
        load_audio(tmp_path / "long.wav", duration=0.1, limits=AudioLimits(min_seconds=0.5))


def test_a_file_too_short_to_survive_resampling_is_an_error(tmp_path):
    """Two samples at 73.5 kHz resample to none at 16 kHz (a header bit flip found by the fuzz test)."""
    sf.write(tmp_path / "two.wav", np.array([0.0, 0.05], np.float32), 73536)
    assert load_audio(tmp_path / "two.wav", limits=AudioLimits(allow_silence=True)).samples.shape == (2,)
    with pytest.raises(AudioError, match="too short: 2 samples at 73536 Hz give no samples at 16000 Hz"):
        load_audio(tmp_path / "two.wav", 16000, limits=AudioLimits(allow_silence=True))


def test_length_limit_is_checked_before_reading(tmp_path, monkeypatch):
    sf.write(tmp_path / "long.wav", tone(3.0, 8000), 8000)
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("read samples of an over-long file"))
    with pytest.raises(AudioError, match="too long"):
        load_audio(tmp_path / "long.wav", limits=AudioLimits(max_seconds=2))


def test_check_waveform_and_levels():
    with pytest.raises(AudioError, match="<array>: no samples"):
        check_waveform(np.zeros(0, np.float32), 16000, AudioLimits())
    stats = level_stats(np.array([0.5, -0.5, 0.5, -0.5], np.float32))
    assert stats.peak_dbfs == pytest.approx(-6.0206, abs=1e-3) and stats.rms_dbfs == pytest.approx(-6.0206, abs=1e-3)
    assert level_stats(np.array([1.0, 0.0], np.float32)).clipped_fraction == 0.5
    with pytest.raises(ValueError, match="silence_dbfs"):
        AudioLimits(silence_dbfs=3)


def test_save_audio_round_trip_and_refusals(tmp_path):
    x = tone(0.25, 24000)
    save_audio(tmp_path / "o.flac", x, 24000)
    back = load_audio(tmp_path / "o.flac")
    assert back.sample_rate == 24000
    np.testing.assert_allclose(back.samples, x, atol=1 / 32767 + 1e-6)
    with pytest.raises(AudioError, match="NaN"):
        save_audio(tmp_path / "n.wav", np.array([np.nan], np.float32), 16000)
    with pytest.raises(AudioError, match="0-length"):
        save_audio(tmp_path / "z.wav", np.zeros(0, np.float32), 16000)
    assert not (tmp_path / "n.wav").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["o.flac"]

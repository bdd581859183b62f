"""Audio input/output used by every part of the stack.

``load_audio(path, sample_rate)`` reads any common format (wav, flac, ogg,
mp3 through libsndfile; anything else ffmpeg decodes, through the binary that
``imageio-ffmpeg`` ships), downmixes to mono, resamples with soxr and checks
the signal. Every problem is an :class:`AudioError` that names the file and
the problem: missing, empty, unreadable, truncated, NaN/Inf samples,
silent-only, or longer than the configured limit (checked from the header,
before any samples are read, so an absurdly long file cannot exhaust memory).

Waveforms are float32 numpy arrays of shape (T,) in [-1, 1] (mono) or (T, C)
(soundfile's channel-last layout) before downmixing.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from omni.config import check, option

#: Formats libsndfile reads losslessly, where the frame count in the header is exact.
_PCM_FORMATS = {"WAV", "WAVEX", "RF64", "W64", "FLAC", "AIFF", "AU", "CAF"}


class AudioError(ValueError):
    """Audio that cannot be used: ``str(e)`` is ``"<path>: <problem>"``."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = str(path) if path is not None else "<array>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class AudioLimits:
    """Checks applied to every loaded waveform."""

    max_seconds: float = option(
        600.0, help="Longest accepted input in seconds; longer files are an error, checked from the header before reading."
    )
    min_seconds: float = option(
        0.0, help="Shortest accepted input in seconds (after offset/duration); 0 accepts anything non-empty."
    )
    silence_dbfs: float = option(
        -60.0, help="A waveform whose peak is below this level (dB full scale) counts as silent-only."
    )
    allow_silence: bool = option(False, help="Accept silent-only audio instead of raising an error.")

    def __post_init__(self) -> None:
        check(self.max_seconds > 0, "max_seconds", f"must be > 0, got {self.max_seconds}")
        check(0 <= self.min_seconds < self.max_seconds, "min_seconds", "must be >= 0 and below max_seconds")
        check(self.silence_dbfs < 0, "silence_dbfs", f"must be negative (dB below full scale), got {self.silence_dbfs}")


@dataclass(frozen=True)
class AudioInfo:
    """Header facts about an audio file, read without decoding it."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


@dataclass
class Audio:
    """A mono waveform.

    Attributes:
        samples: float32 array of shape (T,), values in [-1, 1].
        sample_rate: samples per second.
    """

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class LevelStats:
    """Signal levels of a waveform, in dB full scale (-inf for digital silence)."""

    peak_dbfs: float
    rms_dbfs: float
    clipped_fraction: float
    dc_offset: float


def _dbfs(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


def level_stats(samples: np.ndarray) -> LevelStats:
    """Peak and RMS level, fraction of samples at full scale (|x| >= 0.999), and mean.

    Args:
        samples: (T,) or (T, C) float waveform.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return LevelStats(-math.inf, -math.inf, 0.0, 0.0)
    peak = float(np.max(np.abs(x)))
    rms = float(np.sqrt(np.mean(x * x)))
    clipped = float(np.mean(np.abs(x) >= 0.999))
    return LevelStats(_dbfs(peak), _dbfs(rms), clipped, float(np.mean(x)))


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Downmix (T, C) to (T,) by averaging channels; (T,) passes through."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise ValueError(f"expected a (T,) or (T, C) waveform, got shape {samples.shape}")
    return samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a (T,) or (T, C) waveform with soxr (high quality); float32 out."""
    if orig_sr == target_sr:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def _truncation(info: sf._SoundFileInfo) -> str | None:
    """libsndfile notes '(should be N)' on a data chunk larger than the file."""
    match = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", info.extra_info, re.M)
    if match:
        return f"truncated: header declares {match.group(1)} bytes of audio data, file holds {match.group(2)}"
    return None


def probe_audio(path: str | os.PathLike) -> AudioInfo:
    """Read the header of an audio file.

    Raises:
        AudioError: missing, empty, unreadable or truncated file.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        return _probe_with_ffmpeg(path, str(e))
    problem = _truncation(info)
    if problem:
        raise AudioError(path, problem)
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(path, f"invalid header: {info.samplerate} Hz, {info.channels} channels")
    return AudioInfo(str(path), info.samplerate, info.channels, info.frames, info.format, info.subtype)


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _decode_with_ffmpeg(path: Path, max_seconds: float, first_error: str) -> tuple[np.ndarray, int]:
    """Decode a format libsndfile cannot read through ffmpeg; returns ((T, C), sr)."""
    with tempfile.TemporaryDirectory(prefix="omni-audio-") as tmp:
        out = Path(tmp) / "decoded.wav"
        cmd = [_ffmpeg(), "-nostdin", "-v", "error", "-i", str(path), "-t", f"{max_seconds:.3f}",
               "-vn", "-c:a", "pcm_f32le", "-f", "wav", str(out)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise AudioError(path, f"unreadable audio ({first_error}; ffmpeg: {e})") from None
        if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            msg = detail[-1] if detail else f"exit code {proc.returncode}"
            raise AudioError(path, f"unreadable audio: not a format libsndfile or ffmpeg can decode ({msg})")
        data, sr = sf.read(str(out), dtype="float32", always_2d=True)
    return data, sr


def _probe_with_ffmpeg(path: Path, first_error: str) -> AudioInfo:
    """Parse ``ffmpeg -i`` output (Duration, first audio stream) without decoding."""
    try:
        proc = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)],
                              capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise AudioError(path, f"unreadable audio ({first_error}; ffmpeg: {e})") from None
    text = proc.stderr.decode("utf-8", "replace")
    stream = re.search(r"Stream #\S+.*?: Audio: ([^,]+), (\d+) Hz, ([^,]+)", text)
    if stream is None:
        if "Input #0" in text:
            raise AudioError(path, "no audio stream in the file")
        raise AudioError(path, "unreadable audio: not a format libsndfile or ffmpeg can decode")
    dur = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    if dur is None:
        raise AudioError(path, "unreadable audio: ffmpeg reports no duration")
    seconds = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3))
    sr = int(stream.group(2))
    layout = stream.group(3).strip()
    channels = {"mono": 1, "stereo": 2}.get(layout, int(m.group(1)) if (m := re.match(r"(\d+) channels", layout)) else 2)
    return AudioInfo(str(path), sr, channels, int(round(seconds * sr)), "FFMPEG", stream.group(1).strip())


def check_waveform(samples: np.ndarray, sample_rate: int, limits: AudioLimits, path: str | os.PathLike | None = None) -> None:
    """Raise AudioError unless a (T,) or (T, C) waveform is finite, non-empty, within limits and not silent."""
    if samples.size == 0:
        raise AudioError(path, "no samples (0-length audio)")
    if not np.all(np.isfinite(samples)):
        bad = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
        raise AudioError(path, f"contains {bad} NaN or Inf samples")
    duration = samples.shape[0] / sample_rate
    if duration > limits.max_seconds:
        raise AudioError(path, f"too long: {duration:.1f} s > limit {limits.max_seconds:g} s")
    if duration < limits.min_seconds:
        raise AudioError(path, f"too short: {duration:.3f} s < minimum {limits.min_seconds:g} s")
    if not limits.allow_silence:
        peak = level_stats(samples).peak_dbfs
        if peak < limits.silence_dbfs:
            raise AudioError(path, f"silent: peak {peak:.1f} dBFS is below {limits.silence_dbfs:g} dBFS")


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    limits: AudioLimits | None = None,
    mono: bool = True,
) -> Audio:
    """Load, downmix, resample and check an audio file.

    Args:
        path: any format libsndfile or ffmpeg reads.
        sample_rate: target rate in Hz; None keeps the file's rate.
        offset: start of the segment in seconds.
        duration: length of the segment in seconds; None reads to the end.
        limits: checks to apply (defaults: :class:`AudioLimits`).
        mono: downmix to (T,); False keeps (T, C).

    Returns:
        Audio with float32 samples (T,) (or (T, C) with ``mono=False``).

    Raises:
        AudioError: for every problem, naming the file.
    """
    limits = limits or AudioLimits()
    path = Path(path)
    if offset < 0 or (duration is not None and duration <= 0):
        raise AudioError(path, f"invalid segment: offset={offset}, duration={duration}")
    info = probe_audio(path)
    end = info.duration if duration is None else offset + duration
    if end - offset > limits.max_seconds:
        raise AudioError(path, f"too long: {end - offset:.1f} s > limit {limits.max_seconds:g} s")
    if offset >= info.duration:
        raise AudioError(path, f"offset {offset:g} s is past the end of the file ({info.duration:.3f} s)")
    tolerance = 2.0 / info.sample_rate if info.format in _PCM_FORMATS else 0.05
    if duration is not None and end > info.duration + tolerance:
        raise AudioError(path, f"segment {offset:g}+{duration:g} s runs past the end of the file ({info.duration:.3f} s)")
    data, sr = _read(path, info, offset, duration, limits)
    check_waveform(data, sr, limits, path)
    if mono:
        data = to_mono(data)
    if sample_rate is not None and sample_rate != sr:
        n = data.shape[0]
        data = resample(data, sr, sample_rate)
        if data.shape[0] == 0:
            raise AudioError(path, f"too short: {n} samples at {sr} Hz give no samples at {sample_rate} Hz")
        sr = sample_rate
    return Audio(np.ascontiguousarray(data, dtype=np.float32), sr)


def _read(path: Path, info: AudioInfo, offset: float, duration: float | None, limits: AudioLimits) -> tuple[np.ndarray, int]:
    if info.format == "FFMPEG":
        data, sr = _decode_with_ffmpeg(path, offset + (duration or limits.max_seconds), "")
        start = int(round(offset * sr))
        stop = None if duration is None else start + int(round(duration * sr))
        return data[start:stop], sr
    sr = info.sample_rate
    start = int(round(offset * sr))
    stop = info.frames if duration is None else min(info.frames, start + int(round(duration * sr)))
    try:
        data, _ = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"corrupt or truncated audio: {e}") from None
    if info.format in _PCM_FORMATS and data.shape[0] < stop - start:
        raise AudioError(path, f"truncated: expected {stop - start} frames, file holds {data.shape[0]}")
    return data, sr


def save_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write a waveform atomically (temp file + rename); format from the suffix (.wav, .flac, .ogg, .mp3).

    Args:
        samples: (T,) or (T, C) float waveform in [-1, 1]; values outside are clipped.
        subtype: libsndfile subtype, default PCM_16 for wav/flac.
    """
    path = Path(path)
    x = np.asarray(samples, dtype=np.float32)
    if x.size == 0:
        raise AudioError(path, "refusing to write 0-length audio")
    if not np.all(np.isfinite(x)):
        raise AudioError(path, "refusing to write NaN or Inf samples")
    x = np.clip(x, -1.0, 1.0)
    fmt = path.suffix.lstrip(".").upper()
    if fmt not in sf.available_formats():
        raise AudioError(path, f"unknown audio format '.{path.suffix.lstrip('.')}'")
    if subtype is None and fmt in ("WAV", "FLAC"):
        subtype = "PCM_16"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        sf.write(tmp, x, sample_rate, subtype=subtype, format=fmt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

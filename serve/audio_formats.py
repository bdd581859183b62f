"""Reply audio as bytes: WAV (also as a stream of unknown length), raw PCM16, FLAC, and ffmpeg-encoded formats."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess

import numpy as np
import soundfile as sf

from serve.errors import InputError

#: response_format -> (media type, streamable chunk by chunk)
FORMATS: dict[str, tuple[str, bool]] = {
    "wav": ("audio/wav", True),
    "pcm": ("audio/pcm", True),
    "flac": ("audio/flac", False),
    "mp3": ("audio/mpeg", False),
    "opus": ("audio/ogg", False),
    "aac": ("audio/aac", False),
}
_FFMPEG_ARGS = {"mp3": ["-f", "mp3", "-c:a", "libmp3lame"], "opus": ["-f", "ogg", "-c:a", "libopus"],
                "aac": ["-f", "adts", "-c:a", "aac"]}


def pcm16(samples: np.ndarray) -> bytes:
    """(n,) float in [-1, 1] -> signed 16-bit little-endian bytes (values outside are clipped)."""
    x = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return (x * 32767.0).round().astype("<i2").tobytes()


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """44-byte PCM16 mono WAV header; ``data_bytes=None`` writes the 0xFFFFFFFF sizes of a stream of unknown length
    (browsers, ffmpeg and libsndfile read such a stream to its end)."""
    size = 0xFFFFFFFF if data_bytes is None else data_bytes
    riff = 0xFFFFFFFF if data_bytes is None else 36 + data_bytes
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", riff, b"WAVE", b"fmt ", 16, 1, 1, sample_rate,
                       sample_rate * 2, 2, 16, b"data", size)


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A complete PCM16 WAV file."""
    data = pcm16(samples)
    return wav_header(sample_rate, len(data)) + data


def check_format(fmt: str, param: str = "response_format") -> str:
    if fmt not in FORMATS:
        raise InputError(f"{param} must be one of {', '.join(FORMATS)}, got {fmt!r}", param=param,
                         code="unsupported_format")
    if fmt in _FFMPEG_ARGS and not shutil.which("ffmpeg"):
        raise InputError(f"{param} {fmt!r} needs ffmpeg on the server's PATH; use wav, pcm or flac", param=param,
                         code="unsupported_format")
    return fmt


def encode_audio(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """A whole utterance in ``fmt`` (see :data:`FORMATS`)."""
    if fmt == "wav":
        return wav_bytes(samples, sample_rate)
    if fmt == "pcm":
        return pcm16(samples)
    if fmt == "flac":
        buf = io.BytesIO()
        sf.write(buf, np.clip(samples, -1, 1), sample_rate, format="FLAC", subtype="PCM_16")
        return buf.getvalue()
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
           *_FFMPEG_ARGS[fmt], "pipe:1"]
    result = subprocess.run(cmd, input=pcm16(samples), capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode {fmt}: {result.stderr.decode(errors='replace')[-300:]}")
    return result.stdout

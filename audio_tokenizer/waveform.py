"""Turning whatever waveform a caller hands the tokenizer into checked mono float32 at the model's rate.

Accepted: numpy arrays or torch tensors, float (values in [-1, 1]) or integer
PCM (int16 / int32, scaled to [-1, 1]), mono ``(S,)`` or multi-channel
``(S, C)`` (soundfile's layout) / ``(C, S)`` (torch's layout), the channel axis
being the short one (at most 8 channels). Multi-channel audio is downmixed by
averaging, other rates are resampled with soxr. Empty input, NaN/Inf samples
and clips shorter than one token frame are an :class:`~omni.audio.io.AudioError`
naming the problem.
"""

from __future__ import annotations

import numpy as np
import torch

from omni.audio.io import AudioError, AudioLimits, check_waveform, resample, to_mono

#: channels the layout guess accepts on the short axis
MAX_CHANNELS = 8


def _as_numpy(wav: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().numpy()
    wav = np.asarray(wav)
    if wav.dtype == np.int16:
        return wav.astype(np.float32) / 32768.0
    if wav.dtype == np.int32:
        return wav.astype(np.float32) / 2147483648.0
    if not np.issubdtype(wav.dtype, np.floating):
        raise AudioError(None, f"expected float or int16/int32 samples, got dtype {wav.dtype}")
    return wav.astype(np.float32, copy=False)


def _channels_last(wav: np.ndarray) -> np.ndarray:
    """(S,) stays; (S, C) stays; (C, S) becomes (S, C)."""
    if wav.ndim == 1:
        return wav
    if wav.ndim != 2:
        raise AudioError(None, f"expected a waveform of shape (S,), (S, C) or (C, S), got {tuple(wav.shape)}")
    rows, cols = wav.shape
    if cols <= MAX_CHANNELS and cols < rows:
        return wav
    if rows <= MAX_CHANNELS and rows < cols:
        return wav.T
    if rows == 1 or cols == 1:
        return wav.reshape(-1)
    raise AudioError(None, f"cannot tell channels from samples in a waveform of shape {tuple(wav.shape)} "
                     f"(pass (S,), (S, C) or (C, S) with at most {MAX_CHANNELS} channels)")


def prepare_waveform(wav: np.ndarray | torch.Tensor, sample_rate: int, target_rate: int, min_samples: int) -> np.ndarray:
    """Checked mono float32 (S,) at ``target_rate``.

    Args:
        wav: the caller's waveform (see the module docstring for accepted layouts).
        sample_rate: its rate in Hz.
        target_rate: the tokenizer's rate.
        min_samples: shortest accepted length at ``target_rate`` (one token frame).

    Raises:
        AudioError: empty, NaN/Inf, bad layout, bad rate, or shorter than ``min_samples`` after resampling.
    """
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(None, f"sample rate must be a positive integer in Hz, got {sample_rate!r}")
    x = _channels_last(_as_numpy(wav))
    check_waveform(x, int(sample_rate), AudioLimits(max_seconds=1e9, allow_silence=True))  # empty, NaN/Inf
    x = to_mono(x)
    if sample_rate != target_rate:
        x = resample(x, int(sample_rate), target_rate)
    if len(x) < min_samples:
        raise AudioError(None, f"too short: {len(x) / target_rate * 1000:.1f} ms ({len(x)} samples at {target_rate} Hz); "
                         f"the tokenizer needs at least one {min_samples / target_rate * 1000:.0f} ms frame "
                         f"({min_samples} samples)")
    return np.ascontiguousarray(x, dtype=np.float32)

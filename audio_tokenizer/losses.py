"""Losses of the audio tokenizer, as pure functions returning one value per utterance.

The training loop sums per-utterance values and divides by the global number
of utterances (:mod:`omni.training.trainer`), so each clip weighs the same
whatever its length, on any number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _pool_time(x: torch.Tensor, mask: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked mean over windows of ``scale`` frames: x (B, M, F), mask (B, F) -> (B, M, ceil(F/s)), (B, ceil(F/s))."""
    if scale == 1:
        return x, mask
    m = mask[:, None, :].to(x.dtype)  # (B, 1, F)
    extra = (-x.shape[-1]) % scale
    xs = F.pad(x * m, (0, extra))
    ms = F.pad(m, (0, extra))
    total = F.avg_pool1d(xs, scale) * scale  # (B, M, F / s): sum of the valid frames in each window
    count = F.avg_pool1d(ms, scale) * scale  # (B, 1, F / s)
    return total / count.clamp_min(1.0), count[:, 0] > 0


def multiscale_mel_loss(
    pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor, scales: Sequence[int] = (1, 2, 4, 8),
    l2_weight: float = 1.0,
) -> torch.Tensor:
    """Mel reconstruction loss at several time resolutions, one value per utterance.

    At each scale s, prediction and target are averaged over windows of s
    valid frames; the loss is ``mean|p - t| + l2_weight * mean (p - t)^2``
    over the utterance's valid windows and mel bins; the scales are averaged.

    Args:
        pred: (B, M, F') predicted mel, F' >= F (extra frames are ignored).
        target: (B, M, F) reference mel.
        lengths: (B,) valid target frames per utterance.
        scales: window sizes in frames.
        l2_weight: weight of the squared error next to the absolute error.

    Returns:
        (B,) loss per utterance.
    """
    frames = target.shape[-1]
    if pred.shape[-1] < frames:
        raise ValueError(f"prediction has {pred.shape[-1]} frames, fewer than the target's {frames}")
    pred = pred[..., :frames]  # (B, M, F)
    mask = torch.arange(frames, device=target.device)[None, :] < lengths[:, None]  # (B, F)
    total = torch.zeros(target.shape[0], device=target.device, dtype=pred.dtype)
    for s in scales:
        p, valid = _pool_time(pred, mask, s)
        t, _ = _pool_time(target, mask, s)
        w = valid[:, None, :].to(p.dtype)  # (B, 1, F / s)
        denom = (valid.sum(dim=1) * target.shape[1]).clamp_min(1).to(p.dtype)  # (B,)
        diff = (p - t) * w
        total = total + (diff.abs().sum(dim=(1, 2)) + l2_weight * diff.pow(2).sum(dim=(1, 2))) / denom
    return total / len(scales)


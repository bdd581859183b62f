"""Mel spectrogram figures for TensorBoard and for saved samples (matplotlib, headless)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def mel_figure(mels: dict[str, torch.Tensor | np.ndarray], frame_rate: float, title: str = ""):
    """One panel per named log-mel (M, T), shared colour scale, time axis in seconds."""
    arrays = {k: (v.detach().float().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
              for k, v in mels.items()}
    lo = min(float(a.min()) for a in arrays.values())
    hi = max(float(a.max()) for a in arrays.values())
    fig, axes = plt.subplots(len(arrays), 1, figsize=(10, 2.6 * len(arrays)), squeeze=False)
    for ax, (name, a) in zip(axes[:, 0], arrays.items()):
        im = ax.imshow(a, origin="lower", aspect="auto", vmin=lo, vmax=hi, interpolation="nearest",
                       extent=(0, a.shape[1] / frame_rate, 0, a.shape[0]))
        ax.set_title(name)
        ax.set_ylabel("mel bin")
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01, label="log mel")
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_mel_plot(path: str | os.PathLike, mels: dict[str, torch.Tensor | np.ndarray], frame_rate: float,
                  title: str = "") -> Path:
    """Write :func:`mel_figure` as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = mel_figure(mels, frame_rate, title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""Figures of the tokenizer's evaluation (matplotlib, headless): mel reconstruction and codebook usage."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def mel_figure(target: torch.Tensor, recon: torch.Tensor, title: str = "") -> plt.Figure:
    """Reference and reconstructed log-mel, one above the other.

    Args:
        target: (M, F) reference mel; recon: (M, F') reconstruction (cut to F).
    """
    frames = target.shape[-1]
    fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for ax, mel, name in ((axes[0], target, "input"), (axes[1], recon[:, :frames], "decoded from codes")):
        image = ax.imshow(mel.detach().float().cpu().numpy(), origin="lower", aspect="auto", vmin=-1.5, vmax=1.5,
                          interpolation="nearest")
        ax.set_ylabel("mel bin")
        ax.set_title(name, fontsize=9)
        fig.colorbar(image, ax=ax, pad=0.01)
    axes[1].set_xlabel("frame (10 ms)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def usage_figure(counts: list[torch.Tensor], title: str = "") -> plt.Figure:
    """Per level: entries sorted by use (log scale), with the usage fraction and perplexity in the legend."""
    from audio_tokenizer.quantizer import codebook_perplexity, codebook_usage

    fig, ax = plt.subplots(figsize=(8, 4))
    for level, c in enumerate(counts):
        sorted_counts = np.sort(c.numpy())[::-1]
        ax.plot(np.arange(1, len(sorted_counts) + 1), np.maximum(sorted_counts, 0.8),
                label=f"level {level}: {codebook_usage(c):.0%} used, ppl {codebook_perplexity(c):.0f}/{len(c)}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("codebook entry (sorted by use)")
    ax.set_ylabel("uses on the dev set")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig

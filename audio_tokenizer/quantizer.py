"""Residual vector quantizer: ``vector_quantize_pytorch.ResidualVQ`` with per-level codebook sizes.

The library does the work: k-means initialisation of each codebook from the
first batch, EMA codebook updates, dead-code replacement (a code whose EMA
cluster size falls below a threshold is re-seeded from the batch),
commitment loss and the rotation-trick gradient. With several processes the
library all-reduces k-means and EMA statistics itself. The EMA and dead-code
semantics are those of vector-quantize-pytorch 1.20-1.32 (pyproject.toml keeps
it below 1.34, which changed both).

This module only fixes the configuration, masks padded frames, and returns
named results. Codebook usage and perplexity are pure functions of code
counts (:func:`code_counts`, :func:`codebook_usage`, :func:`codebook_perplexity`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from vector_quantize_pytorch import ResidualVQ

from omni.config import check, option


@dataclass
class QuantizerConfig:
    """Residual VQ settings (``vector_quantize_pytorch.ResidualVQ``)."""

    codebook_sizes: list[int] = option(
        default_factory=lambda: [8192, 4096, 2048, 1024, 1024, 1024, 1024, 1024],
        help="Entries of each level's codebook, first level first; the number of levels is the list's length "
        "(8 in the design). Bitrate = frame_rate x sum(log2 K_i).")
    dim: int = option(256, help="Dimension of the quantized vectors (the downsampler projects to it).")
    kmeans_init: bool = option(True, help="Initialise each codebook with k-means on the first training batch.")
    kmeans_iters: int = option(10, help="k-means iterations for the initialisation.")
    decay: float = option(0.99, help="EMA decay of the codebook updates (closer to 1 = slower).")
    threshold_ema_dead_code: float = option(
        2.0, help="Replace a code by a random batch vector when its EMA cluster size falls below this (0 disables).")
    commitment_weight: float = option(1.0, help="Weight of the commitment loss ||z - sg(q)||^2 per level.")
    quantize_dropout: bool = option(
        False, help="Train with a random number of levels (structured dropout) so fewer levels also decode.")

    def __post_init__(self) -> None:
        check(bool(self.codebook_sizes), "codebook_sizes", "needs at least one level")
        check(all(k >= 2 for k in self.codebook_sizes), "codebook_sizes", f"every size must be >= 2, got {self.codebook_sizes}")
        check(max(self.codebook_sizes) <= 65536, "codebook_sizes", "sizes above 65536 are not supported")
        check(self.dim >= 1, "dim", f"must be >= 1, got {self.dim}")
        check(self.kmeans_iters >= 1, "kmeans_iters", "must be >= 1")
        check(0.0 < self.decay < 1.0, "decay", f"must be in (0, 1), got {self.decay}")
        check(self.threshold_ema_dead_code >= 0, "threshold_ema_dead_code", "must be >= 0")
        check(self.commitment_weight >= 0, "commitment_weight", "must be >= 0")

    @property
    def bits_per_frame(self) -> float:
        """sum(log2 K_i) over levels."""
        return sum(math.log2(k) for k in self.codebook_sizes)


@dataclass
class QuantizerOutput:
    """Result of quantizing a padded batch.

    Attributes:
        quantized: (B, T, dim) sum of the chosen codes over levels (0 on padded frames).
        codes: (B, T, K) int64 code indices per level (-1 on padded frames).
        commitment: (K,) weighted commitment loss per level (frame mean over the batch; 0 outside training).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor


class ResidualQuantizer(nn.Module):
    """(B, T, dim) vectors + mask -> :class:`QuantizerOutput`."""

    def __init__(self, cfg: QuantizerConfig):
        super().__init__()
        self.cfg = cfg
        self.rvq = ResidualVQ(
            dim=cfg.dim, codebook_size=tuple(cfg.codebook_sizes), num_quantizers=len(cfg.codebook_sizes),
            kmeans_init=cfg.kmeans_init, kmeans_iters=cfg.kmeans_iters, decay=cfg.decay,
            threshold_ema_dead_code=cfg.threshold_ema_dead_code, commitment_weight=cfg.commitment_weight,
            quantize_dropout=cfg.quantize_dropout,
        )

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Entries per level."""
        return tuple(self.cfg.codebook_sizes)

    @property
    def initialised(self) -> bool:
        """True once every level's codebook holds vectors (after k-means on the first training batch)."""
        return all(bool(layer._codebook.initted) for layer in self.rvq.layers)

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> QuantizerOutput:
        """Quantize z (B, T, dim) on frames where mask (B, T) is True."""
        quantized, codes, losses = self.rvq(z, mask=mask)  # (B, T, dim), (B, T, K), (K,)
        return QuantizerOutput(quantized, codes, losses.reshape(-1))

    def codebook_vectors(self) -> list[torch.Tensor]:
        """Each level's codebook: K tensors, level k of shape (codebook_sizes[k], dim), in the space where a frame's
        quantized vector is the sum over levels of its codes' rows (what :meth:`decode_codes` returns)."""
        if not self.initialised:
            raise RuntimeError("the quantizer's codebooks are not initialised yet (k-means init runs on the first "
                               "training batch)")
        sizes = self.codebook_sizes
        index = torch.stack([torch.arange(max(sizes)).clamp_max(n - 1) for n in sizes], dim=-1)  # (N, K)
        with torch.no_grad():
            per_level = self.rvq.get_codes_from_indices(index[None].to(self.rvq.layers[0]._codebook.embed.device))  # (K, 1, N, dim)
        return [per_level[k, 0, :n].detach().clone() for k, n in enumerate(sizes)]

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, T, K) (-1 allowed on padded frames) -> summed code vectors (B, T, dim)."""
        for level, size in enumerate(self.codebook_sizes):
            bad = (codes[..., level] >= size) | (codes[..., level] < -1)
            if bool(bad.any()):
                raise ValueError(f"codes of level {level} must be in 0..{size - 1} (or -1 for padding), "
                                 f"got {int(codes[..., level][bad][0])}")
        valid = (codes >= 0).all(dim=-1, keepdim=True)  # (B, T, 1)
        out = self.rvq.get_output_from_indices(codes.clamp_min(0))  # (B, T, dim)
        return out * valid.to(out.dtype)


def code_counts(codes: torch.Tensor, codebook_sizes: tuple[int, ...] | list[int]) -> list[torch.Tensor]:
    """How often each entry of each level is used.

    Args:
        codes: (..., K) code indices; negative values (padding) are ignored.

    Returns:
        K tensors, level i of shape (codebook_sizes[i],), int64.
    """
    flat = codes.reshape(-1, codes.shape[-1])  # (N, K)
    out = []
    for level, size in enumerate(codebook_sizes):
        column = flat[:, level]
        out.append(torch.bincount(column[column >= 0], minlength=size)[:size].cpu())
    return out


def codebook_usage(counts: torch.Tensor) -> float:
    """Fraction of a codebook's entries used at least once."""
    return float((counts > 0).sum()) / counts.numel()


def codebook_perplexity(counts: torch.Tensor) -> float:
    """``exp(entropy)`` of the empirical code distribution: K for uniform use of K codes, 1 for one code."""
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0].double() / total
    return float(torch.exp(-(p * p.log()).sum()))

"""Residual 1-D convolution stacks that change the frame rate: 50 Hz -> 12.5 Hz and back.

Every module takes a padded batch with a frame mask and zeroes padded frames
before each temporal convolution, so a clip's valid outputs are those it
would get alone (an unpadded clip's convolutions read zeros past its end).

Down stage (stride s)::

    x (B, T, D) --pad to a multiple of s--> conv(kernel s, stride s) + mean-pool(s)   (residual path)
                 --> residual blocks  -> (B, ceil(T / s), D)

Up stage mirrors it: transposed conv(kernel s, stride s) + repeat(s), then
residual blocks. A residual block is ``x + conv3(gelu(conv3(layernorm(x))))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from omni.config import check, option


@dataclass
class ConvStackConfig:
    """A residual convolution stack that resamples frames by the product of its strides."""

    dim: int = option(384, help="Channels inside the stack.")
    strides: list[int] = option(default_factory=lambda: [2, 2],
                                help="Resampling stride of each stage; their product is the rate factor (50 Hz / 4 = 12.5 Hz).")
    blocks_per_stage: int = option(1, help="Residual conv blocks after each stage's resampling.")
    kernel_size: int = option(3, help="Kernel of the residual blocks' convolutions (odd).")

    def __post_init__(self) -> None:
        check(self.dim >= 1, "dim", f"must be >= 1, got {self.dim}")
        check(bool(self.strides) and all(s >= 1 for s in self.strides), "strides", f"needs strides >= 1, got {self.strides}")
        check(self.blocks_per_stage >= 0, "blocks_per_stage", "must be >= 0")
        check(self.kernel_size >= 1 and self.kernel_size % 2 == 1, "kernel_size", f"must be odd, got {self.kernel_size}")

    @property
    def factor(self) -> int:
        """Total rate factor (product of the strides)."""
        return math.prod(self.strides)


def frame_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, steps) bool, True on the first ``lengths[b]`` frames."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


class ResidualConvBlock(nn.Module):
    """``x + conv(gelu(conv(layernorm(x))))`` over time, padding-exact. (B, T, D) -> (B, T, D)."""

    def __init__(self, dim: int, kernel_size: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv1 = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        h = self.norm(x).transpose(1, 2) * m  # (B, D, T)
        h = F.gelu(self.conv1(h)) * m
        return x + self.conv2(h).transpose(1, 2)  # (B, T, D)


def _pad_to_multiple(x: torch.Tensor, mask: torch.Tensor, multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    extra = (-x.shape[1]) % multiple
    if extra:
        x = F.pad(x, (0, 0, 0, extra))  # (B, T + extra, D)
        mask = F.pad(mask, (0, extra), value=False)
    return x, mask


class ConvDownsampler(nn.Module):
    """(B, T, in_dim) at the input rate -> (B, ceil(T / factor), dim).

    A frame of the output is valid when any input frame it covers is valid, so
    ``lengths_out = ceil(lengths / factor)``.
    """

    def __init__(self, in_dim: int, cfg: ConvStackConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(in_dim, cfg.dim)
        self.down = nn.ModuleList(nn.Conv1d(cfg.dim, cfg.dim, s, stride=s) for s in cfg.strides)
        self.blocks = nn.ModuleList(
            nn.ModuleList(ResidualConvBlock(cfg.dim, cfg.kernel_size) for _ in range(cfg.blocks_per_stage))
            for _ in cfg.strides)
        self.norm = nn.LayerNorm(cfg.dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for ``lengths`` input frames."""
        for s in self.cfg.strides:
            lengths = (lengths + s - 1) // s
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, in_dim), lengths (B,) -> (B, T', dim), lengths (B,)."""
        mask = frame_mask(lengths, x.shape[1])
        x = self.proj(x)  # (B, T, D)
        for stride, down, blocks in zip(self.cfg.strides, self.down, self.blocks):
            x, mask = _pad_to_multiple(x * mask[..., None].to(x.dtype), mask, stride)
            h = x.transpose(1, 2)  # (B, D, T)
            pooled = F.avg_pool1d(h, stride)  # (B, D, T / s): residual path
            x = (down(h) + pooled).transpose(1, 2)  # (B, T / s, D)
            lengths = (lengths + stride - 1) // stride
            mask = frame_mask(lengths, x.shape[1])
            for block in blocks:
                x = block(x, mask)
        return self.norm(x) * mask[..., None].to(x.dtype), lengths


class ConvUpsampler(nn.Module):
    """(B, T, in_dim) -> (B, T * factor, dim): the mirror of :class:`ConvDownsampler`."""

    def __init__(self, in_dim: int, cfg: ConvStackConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(in_dim, cfg.dim)
        self.up = nn.ModuleList(nn.ConvTranspose1d(cfg.dim, cfg.dim, s, stride=s) for s in reversed(cfg.strides))
        self.blocks = nn.ModuleList(
            nn.ModuleList(ResidualConvBlock(cfg.dim, cfg.kernel_size) for _ in range(cfg.blocks_per_stage))
            for _ in cfg.strides)
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, in_dim), lengths (B,) -> (B, T * factor, dim), lengths * factor."""
        mask = frame_mask(lengths, x.shape[1])
        x = self.proj(x) * mask[..., None].to(x.dtype)  # (B, T, D)
        for stride, up, blocks in zip(reversed(self.cfg.strides), self.up, self.blocks):
            h = x.transpose(1, 2)  # (B, D, T)
            x = (up(h) + h.repeat_interleave(stride, dim=2)).transpose(1, 2)  # (B, T * s, D)
            lengths = lengths * stride
            mask = frame_mask(lengths, x.shape[1])
            x = x * mask[..., None].to(x.dtype)
            for block in blocks:
                x = block(x, mask)
        return self.norm(x) * mask[..., None].to(x.dtype), lengths

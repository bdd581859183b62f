"""The flow decoder's velocity estimator: a 1-D U-Net of ResNet-1D + transformer blocks (Matcha-TTS / CosyVoice).

Layout (C = ``channels``)::

    [x_t | mu | speaker | prompt]  (B, 4M, T)
      down:  ResNet1D(4M -> C) + k transformers, then a stride-2 conv (``downsample``) or a k=3 conv
      mid:   n_mid_blocks x [ResNet1D(C -> C) + k transformers]
      up:    ResNet1D(2C -> C) on [x | skip] + k transformers, then a x2 transposed conv or a k=3 conv
      out:   Block1D(C -> C), 1x1 conv -> (B, M, T)

The time ``t`` enters every ResNet block through a sinusoidal embedding and an
MLP. Unlike Matcha's GroupNorm (statistics over the whole utterance), the
blocks normalise each frame over its channels (LayerNorm), and attention may
be limited to a window of frames: the network is then local in time, which is
what lets the streaming decoder reproduce whole-utterance synthesis chunk by
chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from omni.config import check, option


@dataclass
class EstimatorConfig:
    """1-D U-Net velocity estimator (one down block, N mid blocks, one up block)."""

    channels: int = option(256, help="Width of every block.")
    n_mid_blocks: int = option(12, help="Mid blocks (ResNet-1D + transformers each); the design brief uses 12.")
    transformers_per_block: int = option(1, help="Transformer layers after the ResNet layer of each block.")
    num_heads: int = option(8, help="Attention heads (must divide channels).")
    ff_mult: int = option(4, help="Feed-forward width as a multiple of channels.")
    dropout: float = option(0.0, help="Dropout in attention and feed-forward layers.")
    attention_window: int = option(
        32, help="Frames each frame attends to on either side (0 = whole utterance). A finite window keeps "
                 "the estimator local, so chunked streaming matches whole-utterance synthesis.")
    downsample: bool = option(
        False, help="Halve the frame rate in the down block (true U-Net) or keep it (CosyVoice's single down block).")
    time_embed_dim: int = option(0, help="Time-embedding width; 0 = 4 x channels.")

    def __post_init__(self) -> None:
        check(self.channels >= 8, "channels", f"must be >= 8, got {self.channels}")
        check(self.n_mid_blocks >= 0, "n_mid_blocks", "must be >= 0")
        check(self.transformers_per_block >= 0, "transformers_per_block", "must be >= 0")
        check(self.num_heads >= 1 and self.channels % self.num_heads == 0, "num_heads",
              f"must divide channels ({self.channels}), got {self.num_heads}")
        check(self.ff_mult >= 1, "ff_mult", "must be >= 1")
        check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        check(self.attention_window >= 0, "attention_window", "must be >= 0 (0 = full attention)")
        check(self.time_embed_dim >= 0, "time_embed_dim", "must be >= 0")


def sinusoidal_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """(B,) times -> (B, dim) sin/cos features (Matcha's ``SinusoidalPosEmb``)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    arg = scale * t.float().unsqueeze(1) * freqs.unsqueeze(0)  # (B, half)
    return torch.cat([arg.sin(), arg.cos()], dim=-1)


def window_mask(mask: torch.Tensor, window: int) -> torch.Tensor:
    """Boolean attention mask: key valid and within ``window`` frames of the query (self always allowed).

    Args:
        mask: (B, 1, T) frame mask.
        window: half-width in frames; 0 = no limit.

    Returns:
        (B, 1, T, T) True where query i may attend to key j.
    """
    valid = mask.bool()  # (B, 1, T)
    allowed = valid.unsqueeze(2).expand(-1, -1, mask.shape[-1], -1)  # (B, 1, T, T) key validity
    n = mask.shape[-1]
    idx = torch.arange(n, device=mask.device)
    if window > 0:
        near = (idx.view(-1, 1) - idx.view(1, -1)).abs() <= window  # (T, T)
        allowed = allowed & near
    return allowed | torch.eye(n, dtype=torch.bool, device=mask.device)  # no query without a key


class Block1D(nn.Module):
    """Conv1d(k=3) -> per-frame LayerNorm over channels -> Mish, masked. (B, C_in, T) -> (B, C_out, T)."""

    def __init__(self, dim: int, dim_out: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim_out, 3, padding=1)
        self.norm = nn.LayerNorm(dim_out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.conv(x * mask)  # (B, C, T)
        h = self.norm(h.transpose(1, 2)).transpose(1, 2)  # (B, T, C) -> (B, C, T)
        return F.mish(h) * mask


class ResnetBlock1D(nn.Module):
    """Two Block1D with the time embedding added in between, plus a 1x1 residual. (B, C_in, T) -> (B, C_out, T)."""

    def __init__(self, dim: int, dim_out: int, time_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(time_dim, dim_out))
        self.block1 = Block1D(dim, dim_out)
        self.block2 = Block1D(dim_out, dim_out)
        self.res_conv = nn.Conv1d(dim, dim_out, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x, mask) + self.mlp(t_emb).unsqueeze(-1)  # (B, C, T) + (B, C, 1)
        h = self.block2(h, mask)
        return h + self.res_conv(x * mask)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + GELU feed-forward over frames. (B, T, C) -> (B, T, C)."""

    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_mult * dim, dim))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C); attn_mask: (B, 1, T, T) boolean (True = attend)."""
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)  # 3 x (B, T, C)
        q, k, v = (z.view(b, n, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, D)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, c))  # (B, T, C)
        return x + self.ff(self.norm2(x))


class UNetBlock(nn.Module):
    """ResNet1D then transformers. (B, C_in, T) -> (B, C, T)."""

    def __init__(self, dim_in: int, cfg: EstimatorConfig, time_dim: int):
        super().__init__()
        self.resnet = ResnetBlock1D(dim_in, cfg.channels, time_dim)
        self.transformers = nn.ModuleList(
            TransformerBlock(cfg.channels, cfg.num_heads, cfg.ff_mult, cfg.dropout)
            for _ in range(cfg.transformers_per_block))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, t_emb: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        x = self.resnet(x, mask, t_emb)  # (B, C, T)
        h = x.transpose(1, 2)  # (B, T, C)
        for block in self.transformers:
            h = block(h, attn)
        return h.transpose(1, 2) * mask  # (B, C, T)


class UNet1DEstimator(nn.Module):
    """Velocity field v(x_t, t | mu, speaker, prompt) for conditional flow matching.

    Args:
        n_mels: mel bands M (input x_t and output velocity).
        cfg: network settings.
    """

    def __init__(self, n_mels: int, cfg: EstimatorConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        time_dim = cfg.time_embed_dim or 4 * c
        self.time_mlp = nn.Sequential(nn.Linear(c, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.down = UNetBlock(4 * n_mels, cfg, time_dim)
        self.down_sample = nn.Conv1d(c, c, 3, stride=2 if cfg.downsample else 1, padding=1)
        self.mid = nn.ModuleList(UNetBlock(c, cfg, time_dim) for _ in range(cfg.n_mid_blocks))
        self.up = UNetBlock(2 * c, cfg, time_dim)
        self.up_sample = (nn.ConvTranspose1d(c, c, 4, stride=2, padding=1) if cfg.downsample
                          else nn.Conv1d(c, c, 3, padding=1))
        self.final_block = Block1D(c, c)
        self.final_proj = nn.Conv1d(c, n_mels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor, t: torch.Tensor,
                spks: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Estimate the velocity.

        Args:
            x: (B, M, T) point on the path.
            mask: (B, 1, T) frame mask.
            mu: (B, M, T) token conditioning at frame rate.
            t: (B,) times in [0, 1].
            spks: (B, M) projected speaker embedding, or None.
            cond: (B, M, T) prompt mel (zeros outside the prompt), or None.

        Returns:
            (B, M, T) velocity, zero on masked frames.
        """
        b, m, n = x.shape
        t_emb = self.time_mlp(sinusoidal_embedding(t, self.cfg.channels))  # (B, time_dim)
        spk = spks.unsqueeze(-1).expand(b, m, n) if spks is not None else x.new_zeros(b, m, n)  # (B, M, T)
        cnd = cond if cond is not None else x.new_zeros(b, m, n)
        h = torch.cat([x, mu, spk, cnd], dim=1)  # (B, 4M, T)
        pad = n % 2 if self.cfg.downsample else 0
        if pad:  # the stride-2 path needs an even length
            h, mask = F.pad(h, (0, 1)), F.pad(mask, (0, 1))
        window = self.cfg.attention_window
        attn = window_mask(mask, window)  # (B, 1, T, T)
        skip = self.down(h, mask, t_emb, attn)  # (B, C, T)
        h = self.down_sample(skip * mask)  # (B, C, T') with T' = T / 2 when downsampling
        if self.cfg.downsample:  # half the frames: half the window (0 stays "no limit")
            mask_mid = mask[:, :, ::2]  # (B, 1, T')
            attn_mid = window_mask(mask_mid, (window + 1) // 2)
        else:
            mask_mid, attn_mid = mask, attn
        for block in self.mid:
            h = block(h, mask_mid, t_emb, attn_mid)  # (B, C, T')
        h = self.up_sample(h * mask_mid)  # (B, C, T)
        h = self.up(torch.cat([h, skip], dim=1), mask, t_emb, attn)  # (B, 2C, T) -> (B, C, T)
        out = self.final_proj(self.final_block(h, mask)) * mask  # (B, M, T)
        return out[:, :, :n]

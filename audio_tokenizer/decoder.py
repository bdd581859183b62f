"""Audio decoder, symmetric to the encoder: quantized frames at 12.5 Hz -> log-mel at 100 Hz.

::

    quantized (B, T, dim_q) --conv upsampler (mirror of the downsampler)--> (B, 4T, D)  50 Hz
      + sinusoidal positions --> transformer layers (transformers' WhisperEncoderLayer, masked) --> LayerNorm
      --> transposed conv x2 (mirror of Whisper's stride-2 conv) + GELU --> conv k3 (mirror of conv1)
      --> coarse mel (B, n_mels, 8T)  --> + conv postnet --> refined mel (B, n_mels, 8T)

Both the coarse and the refined mel are trained (multi-scale L1 + L2,
:mod:`audio_tokenizer.losses`); ``decode`` returns the refined one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import WhisperConfig
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer, sinusoids

from audio_tokenizer.conv import ConvStackConfig, ConvUpsampler, frame_mask
from omni.config import check, option


@dataclass
class DecoderConfig:
    """The mel decoder's size."""

    upsampler: ConvStackConfig = option(default_factory=ConvStackConfig,
                                        help="Residual conv stack 12.5 Hz -> 50 Hz (its strides mirror the downsampler's).")
    d_model: int = option(384, help="Transformer hidden size at 50 Hz.")
    layers: int = option(4, help="Transformer layers.")
    heads: int = option(6, help="Attention heads; must divide d_model.")
    ffn_dim: int = option(1536, help="Feed-forward size.")
    dropout: float = option(0.0, help="Dropout in the transformer layers.")
    postnet_layers: int = option(3, help="Conv layers of the residual postnet that refines the coarse mel (0: none).")
    postnet_dim: int = option(256, help="Channels of the postnet.")
    attn_implementation: Literal["sdpa", "eager"] = option("sdpa", help="Attention kernel of transformers to use.")

    def __post_init__(self) -> None:
        for name in ("d_model", "layers", "heads", "ffn_dim", "postnet_dim"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.d_model % self.heads == 0, "heads", f"must divide d_model ({self.d_model}), got {self.heads}")
        check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        check(self.postnet_layers >= 0, "postnet_layers", "must be >= 0")

    def layer_config(self) -> WhisperConfig:
        """A ``WhisperConfig`` describing the decoder's transformer layers."""
        config = WhisperConfig(d_model=self.d_model, encoder_attention_heads=self.heads, encoder_ffn_dim=self.ffn_dim,
                               dropout=self.dropout, encoder_layers=self.layers, decoder_layers=1,
                               decoder_attention_heads=self.heads, decoder_ffn_dim=self.ffn_dim)
        config._attn_implementation = self.attn_implementation
        return config


@dataclass
class DecoderOutput:
    """Decoded mel spectrograms.

    Attributes:
        mel: (B, n_mels, F) refined mel (the coarse one when there is no postnet); 0 past each length.
        coarse: (B, n_mels, F) mel before the postnet.
        lengths: (B,) valid frames, 8 per code frame.
    """

    mel: torch.Tensor
    coarse: torch.Tensor
    lengths: torch.Tensor


class Postnet(nn.Module):
    """Residual conv refinement of a mel: (B, M, F) -> (B, M, F)."""

    def __init__(self, n_mels: int, dim: int, layers: int):
        super().__init__()
        chans = [n_mels] + [dim] * (layers - 1) + [n_mels]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, 5, padding=2) for a, b in zip(chans[:-1], chans[1:]))

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(mel.dtype)  # (B, 1, F)
        h = mel
        for i, conv in enumerate(self.convs):
            h = conv(h * m)
            if i < len(self.convs) - 1:
                h = torch.tanh(h)
        return mel + h * m


class MelDecoder(nn.Module):
    """Quantized frames (B, T, in_dim) -> :class:`DecoderOutput` with 8T mel frames (for strides [2, 2])."""

    def __init__(self, cfg: DecoderConfig, in_dim: int, n_mels: int):
        super().__init__()
        self.cfg = cfg
        self.upsampler = ConvUpsampler(in_dim, cfg.upsampler)
        self.proj = nn.Linear(cfg.upsampler.dim, cfg.d_model)
        self.config = cfg.layer_config()
        self.layers = nn.ModuleList(WhisperEncoderLayer(self.config) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.up = nn.ConvTranspose1d(cfg.d_model, cfg.d_model, 2, stride=2)
        self.out = nn.Conv1d(cfg.d_model, n_mels, 3, padding=1)
        self.postnet = Postnet(n_mels, cfg.postnet_dim, cfg.postnet_layers) if cfg.postnet_layers else None

    @property
    def factor(self) -> int:
        """Mel frames per code frame."""
        return self.cfg.upsampler.factor * 2

    def forward(self, quantized: torch.Tensor, lengths: torch.Tensor) -> DecoderOutput:
        """quantized (B, T, in_dim), lengths (B,) code frames -> mel (B, n_mels, factor * T)."""
        x, lengths50 = self.upsampler(quantized, lengths)  # (B, 4T, U)
        x = self.proj(x)  # (B, 4T, D)
        steps = x.shape[1]
        x = x + sinusoids(steps, x.shape[-1]).to(x)  # any length: no 30 s position table
        mask = frame_mask(lengths50, steps)  # (B, 4T)
        attn_mask = create_bidirectional_mask(config=self.config, inputs_embeds=x, attention_mask=mask)
        for layer in self.layers:
            x = layer(x, attn_mask)
        x = self.norm(x) * mask[..., None].to(x.dtype)  # (B, 4T, D)
        h = F.gelu(self.up(x.transpose(1, 2)))  # (B, D, 8T)
        mel_lengths = lengths50 * 2
        mel_mask = frame_mask(mel_lengths, h.shape[-1])  # (B, 8T)
        coarse = self.out(h * mel_mask[:, None, :].to(h.dtype)) * mel_mask[:, None, :].to(h.dtype)  # (B, M, 8T)
        mel = self.postnet(coarse, mel_mask) if self.postnet is not None else coarse
        return DecoderOutput(mel, coarse, mel_lengths)

"""Whisper encoder (``transformers``) run on variable-length input.

``WhisperEncoder.forward`` insists on exactly 3000 mel frames (30 s); padding
every clip to 30 s wastes about 10x compute on short clips. This module runs
the same sub-modules of the same ``WhisperEncoder`` on any length up to 30 s:
the conv stem, the first T positional embeddings, the layers with an
attention mask over padded frames (built by ``transformers``' own
``create_bidirectional_mask`` for the configured attention kernel), and the
final layer norm. On a full 3000-frame input it equals HF's forward; in a
padded batch every clip gets what it would get alone (the stem's padding is
zeroed so its convolutions see the same zeros an unpadded clip sees).

The encoder is built from a local pretrained directory (``whisper-large-v3``
or any ``whisper-*``: a full Whisper checkpoint or a saved ``WhisperEncoder``;
nothing is ever downloaded) or from a small config for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from transformers import WhisperConfig
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from omni.config import check, option

#: checkpoint key prefixes of a full Whisper model, mapped onto a bare WhisperEncoder
_ENCODER_KEYS = {r"^model\.encoder\.": "", r"^encoder\.": ""}


@dataclass
class EncoderConfig:
    """The Whisper encoder: a local pretrained directory, or a small architecture built from scratch."""

    pretrained_path: str | None = option(
        None, help="Local Whisper directory (e.g. a downloaded whisper-large-v3, or a saved WhisperEncoder) loaded with "
        "from_pretrained; null builds the architecture below from scratch. Checked when the model is built, never downloaded.")
    freeze: bool = option(False, help="Keep the Whisper encoder's weights fixed (no gradients) during training.")
    d_model: int = option(384, help="Hidden size (only without pretrained_path).")
    layers: int = option(4, help="Transformer layers (only without pretrained_path).")
    heads: int = option(6, help="Attention heads (only without pretrained_path); must divide d_model.")
    ffn_dim: int = option(1536, help="Feed-forward size (only without pretrained_path).")
    max_source_positions: int = option(1500, help="Positions at 50 Hz (1500 = 30 s), only without pretrained_path.")
    dropout: float = option(0.0, help="Dropout inside the encoder (only without pretrained_path).")
    attn_implementation: Literal["sdpa", "eager"] = option("sdpa", help="Attention kernel of transformers to use.")
    gradient_checkpointing: bool = option(False, help="Recompute layer activations in backward to save memory.")

    def __post_init__(self) -> None:
        for name in ("d_model", "layers", "heads", "ffn_dim", "max_source_positions"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.d_model % self.heads == 0, "heads", f"must divide d_model ({self.d_model}), got {self.heads}")
        check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        check(self.pretrained_path is None or bool(self.pretrained_path.strip()), "pretrained_path",
              "must be a directory path or null")

    def whisper_config(self, n_mels: int) -> WhisperConfig:
        """The ``WhisperConfig`` of the from-scratch architecture."""
        return WhisperConfig(
            num_mel_bins=n_mels, d_model=self.d_model, encoder_layers=self.layers, encoder_attention_heads=self.heads,
            encoder_ffn_dim=self.ffn_dim, max_source_positions=self.max_source_positions, dropout=self.dropout,
            decoder_layers=1, decoder_attention_heads=self.heads, decoder_ffn_dim=self.ffn_dim,
        )


def load_whisper_encoder(path: str | Path, attn_implementation: str = "sdpa") -> WhisperEncoder:
    """Load a Whisper encoder from a local directory only.

    Accepts a full Whisper checkpoint (``WhisperModel`` / ``WhisperForConditionalGeneration``: the
    decoder's weights are skipped) or a saved ``WhisperEncoder``.

    Raises:
        FileNotFoundError: ``path`` is not a directory with a ``config.json``.
        ValueError: the checkpoint holds no (or not all) Whisper encoder weights.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: Whisper directory not found (expected config.json and weights there; "
                                "pretrained models are loaded from local directories, never downloaded)")
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the decoder keys of a full checkpoint are expected to be unused
    try:
        encoder, info = WhisperEncoder.from_pretrained(
            str(path), local_files_only=True, key_mapping=_ENCODER_KEYS, output_loading_info=True,
            attn_implementation=attn_implementation, use_safetensors=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(k for k in info["missing_keys"] if not k.startswith("embed_positions"))
    if missing:
        raise ValueError(f"{path}: not a Whisper checkpoint: {len(missing)} encoder weights missing "
                         f"(e.g. {missing[:3]})")
    return encoder


class WhisperAudioEncoder(nn.Module):
    """Log-mel (B, n_mels, F) -> hidden states (B, ceil(F / 2), d_model) at 50 Hz.

    Args:
        cfg: which encoder and whether it trains.
        n_mels: mel bins of the front end (must match the encoder's ``num_mel_bins``).
        whisper_config: rebuild this architecture (loading a saved tokenizer); overrides ``cfg``.
    """

    def __init__(self, cfg: EncoderConfig, n_mels: int, whisper_config: WhisperConfig | None = None):
        super().__init__()
        self.cfg = cfg
        if whisper_config is not None:
            whisper_config._attn_implementation = cfg.attn_implementation
            self.whisper = WhisperEncoder(whisper_config)
        elif cfg.pretrained_path is not None:
            self.whisper = load_whisper_encoder(cfg.pretrained_path, cfg.attn_implementation)
        else:
            config = cfg.whisper_config(n_mels)
            config._attn_implementation = cfg.attn_implementation
            self.whisper = WhisperEncoder(config)
        if self.whisper.config.num_mel_bins != n_mels:
            raise ValueError(f"frontend.n_mels is {n_mels} but the Whisper encoder"
                             f"{' at ' + cfg.pretrained_path if cfg.pretrained_path else ''} expects "
                             f"{self.whisper.config.num_mel_bins} mel bins")
        if cfg.gradient_checkpointing:
            self.whisper.gradient_checkpointing_enable()
        if cfg.freeze:
            self.whisper.requires_grad_(False)

    @property
    def dim(self) -> int:
        """Hidden size of the output."""
        return self.whisper.config.d_model

    @property
    def max_frames(self) -> int:
        """Longest input in mel frames (3000 = 30 s for Whisper)."""
        return self.whisper.config.max_source_positions * 2

    @staticmethod
    def output_lengths(mel_lengths: torch.Tensor) -> torch.Tensor:
        """50 Hz frames for ``mel_lengths`` mel frames (the stride-2 conv): ``ceil(F / 2)``."""
        return (mel_lengths - 1) // 2 + 1

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Args:
            mel: (B, n_mels, F) log-mel, F <= 3000.
            mel_lengths: (B,) valid frames per clip; None: all F.

        Returns:
            hidden (B, ceil(F / 2), d_model) and lengths (B,) of valid 50 Hz frames.
        """
        w = self.whisper
        batch, _, frames = mel.shape
        if frames > self.max_frames:
            raise ValueError(f"the Whisper encoder takes at most {self.max_frames} mel frames (30 s), got {frames}")
        if mel_lengths is None:
            mel_lengths = torch.full((batch,), frames, dtype=torch.long, device=mel.device)
        mask_in = torch.arange(frames, device=mel.device)[None, :] < mel_lengths[:, None]  # (B, F)
        x = nn.functional.gelu(w.conv1(mel * mask_in[:, None, :].to(mel.dtype)))  # (B, D, F)
        x = x * mask_in[:, None, :].to(x.dtype)  # conv2 must read zeros past the end, as an unpadded clip does
        x = nn.functional.gelu(w.conv2(x))  # (B, D, ceil(F / 2))
        x = x.permute(0, 2, 1)  # (B, T, D)
        lengths = self.output_lengths(mel_lengths)
        steps = x.shape[1]
        x = x + w.embed_positions.weight[:steps].to(x.dtype)  # the first T of the 1500 positions
        x = nn.functional.dropout(x, p=w.dropout, training=w.training)
        mask = torch.arange(steps, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        attn_mask = create_bidirectional_mask(config=w.config, inputs_embeds=x, attention_mask=mask)
        for layer in w.layers:
            if w.training and w.layerdrop > 0.0 and torch.rand([]) < w.layerdrop:
                continue
            x = layer(x, attn_mask)
        return w.layer_norm(x), lengths

"""Configuration of the whole omni model (``kind: omni_model``).

Composes the component configs, each declared beside its component:
:class:`~omni.model.backbone.BackboneConfig`,
:class:`~omni.model.vision.VisionConfig`,
:class:`~omni.model.audio_embed.AudioEmbeddingConfig` and
:class:`~omni.model.audio_head.AudioHeadConfig`, plus the audio-token format
(must match the audio tokenizer: ``num_codebooks``, ``codebook_sizes``,
``frame_rate``) and the tokenizer.

Paths to pretrained directories are only checked when the model is built, so
a config for a 7B model validates on a machine that does not hold it.
"""

from __future__ import annotations

from dataclasses import dataclass

from omni.config import check, option
from omni.model.audio_embed import AudioEmbeddingConfig
from omni.model.audio_head import AudioHeadConfig
from omni.model.backbone import BackboneConfig
from omni.model.vision import VisionConfig


@dataclass
class OmniModelConfig:
    """An LLM backbone with a vision branch, an audio embedding and a depth-transformer audio head."""

    backbone: BackboneConfig = option(default_factory=BackboneConfig, help="The causal LM (local path or built).")
    vision: VisionConfig = option(default_factory=VisionConfig, help="NaViT vision encoder + 2x2 merge projector.")
    audio_embed: AudioEmbeddingConfig = option(
        default_factory=AudioEmbeddingConfig, help="Per-codebook input embedding tables of audio frames."
    )
    audio_head: AudioHeadConfig = option(
        default_factory=AudioHeadConfig, help="Depth transformer predicting the codes of each audio frame."
    )
    codebook_sizes: list[int] = option(
        default_factory=lambda: [1024] * 8,
        help="Entries of each RVQ codebook, one number per level (8 levels in the reference model); must "
        "match the audio tokenizer's codebook_sizes.",
    )
    frame_rate: float = option(12.5, help="Audio frames per second of the audio tokenizer (12.5 Hz).")
    tokenizer: str | None = option(
        None, help="Local directory of the text tokenizer. Null: the backbone's own (backbone.path). Tiny "
        "recipes point it at a BPE trained with `omni data bpe`.",
    )
    think_block: bool = option(
        False, help="Qwen3-style chat: /think and /no_think switch reasoning, no-think answers keep an empty "
        "<think></think> block. Enable for Qwen3 backbones.",
    )

    def __post_init__(self) -> None:
        check(len(self.codebook_sizes) >= 1, "codebook_sizes", "needs at least one codebook")
        check(all(v >= 2 for v in self.codebook_sizes), "codebook_sizes", "every codebook needs >= 2 entries")
        check(self.frame_rate > 0, "frame_rate", "must be > 0")
        check(self.tokenizer is None or bool(self.tokenizer.strip()), "tokenizer", "must be a directory or null")

    @property
    def num_codebooks(self) -> int:
        return len(self.codebook_sizes)

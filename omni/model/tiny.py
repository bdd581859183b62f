"""Tiny omni models for tests and CPU smoke runs (a few hundred thousand parameters, random weights).

Usage::

    model = tiny_model("qwen2")                      # or "llama", "qwen3", "qwen3_moe"; vision=False to drop it
    model = tiny_model("qwen3_moe", seed=1)

Same structure as the full model (8 codebooks of different sizes, a 3-layer
depth transformer, a 2-block vision tower with the 2x2 merger), every width
scaled down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast

from omni.model.audio_embed import AudioEmbeddingConfig
from omni.model.audio_head import AudioHeadConfig
from omni.model.backbone import BackboneConfig
from omni.model.config import OmniModelConfig
from omni.model.model import OmniModel
from omni.model.vision import VisionConfig

#: Codebook sizes of tiny models: 8 levels, not all equal (exercises per-level heads and tables).
TINY_CODEBOOKS = [64, 48, 32, 32, 16, 16, 16, 16]

TINY_TEXTS = (
    "Turn on the kitchen lights.", "What is two plus three?", "Two plus three is five.",
    "The capital of France is Paris.", "Set a timer for ten minutes.", "It is sunny and warm today.",
    "Hello! How are you doing this morning?", "I am fine, thank you.", "Play some music in the living room.",
    "The meeting starts at half past nine.", "Describe the picture, please.", "A cat sits on a red chair.",
)


def tiny_tokenizer(texts: Sequence[str] = TINY_TEXTS, vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on a few sentences (any text still encodes, byte by byte)."""
    from omni.text.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(list(texts) * 3, vocab_size=vocab_size, min_frequency=2)


def tiny_backbone(model_type: str = "qwen2", **overrides: Any) -> BackboneConfig:
    """A 2-layer, 64-wide backbone config of the given architecture (qwen2, llama, qwen3, qwen3_moe)."""
    hf: dict[str, Any] = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False)
    if model_type in ("qwen3", "qwen3_moe"):
        hf["head_dim"] = 16
    if model_type == "qwen3_moe":
        hf.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, decoder_sparse_step=1)
    hf.update(overrides)
    return BackboneConfig(model_type=model_type, hf_config=hf)


def tiny_vision(enabled: bool = True) -> VisionConfig:
    """The tiny vision tower: 2 blocks, 32 wide (configs/model/tiny.yaml's sizes)."""
    return VisionConfig(enabled=enabled, depth=2, embed_dim=32, num_heads=2, mlp_ratio=2)


def tiny_config(model_type: str = "qwen2", vision: bool = True, **backbone_overrides: Any) -> OmniModelConfig:
    """The :class:`OmniModelConfig` of :func:`tiny_model`."""
    return OmniModelConfig(
        backbone=tiny_backbone(model_type, **backbone_overrides),
        vision=tiny_vision(vision),
        audio_embed=AudioEmbeddingConfig(embed_dim=32),
        audio_head=AudioHeadConfig(num_layers=3, hidden_size=32, num_heads=2, intermediate_size=64),
        codebook_sizes=list(TINY_CODEBOOKS),
        think_block=model_type.startswith("qwen3"),
    )


def tiny_model(model_type: str = "qwen2", seed: int = 0, vision: bool = True,
               tokenizer: PreTrainedTokenizerFast | None = None, **backbone_overrides: Any) -> OmniModel:
    """A randomly initialised tiny omni model in eval mode (deterministic for a given seed)."""
    torch.manual_seed(seed)
    model = OmniModel.from_config(tiny_config(model_type, vision, **backbone_overrides),
                                  tokenizer=tokenizer if tokenizer is not None else tiny_tokenizer())
    return model.eval()

"""Audio embedding: one table per codebook, summed per frame, projected to the LLM width.

An audio frame (12.5 Hz) is K = 8 RVQ codes, one per codebook level; level k
has ``codebook_sizes[k]`` entries. The frame's input vector for the LLM is::

    e = W_proj · (E_0[c_0] + E_1[c_1] + ... + E_{K-1}[c_{K-1}])     # (D_llm,)

It replaces the ``<|audio|>`` placeholder token's embedding at that position.

The tables start random, or (:meth:`AudioEmbedding.load_codebooks`) as the audio tokenizer's RVQ codebooks:
then the per-frame sum is the tokenizer's quantized vector (up to one scale), which its CTC head reads words
from, so the LLM starts from an input that already separates the sounds (reports/learning.md, B5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from omni.audio.codebooks import load_codebook_tables
from omni.config import check, option


@dataclass
class AudioEmbeddingConfig:
    """Width of the per-codebook tables (the projection maps it to the LLM width)."""

    embed_dim: int = option(1024, help="Width of each codebook's embedding table before the projection.")

    def __post_init__(self) -> None:
        check(self.embed_dim >= 1, "embed_dim", f"must be >= 1, got {self.embed_dim}")


class AudioEmbedding(nn.Module):
    """Sum of K codebook embeddings, projected to the LLM width.

    Args:
        cfg: table width.
        codebook_sizes: entries per level (K levels).
        out_dim: LLM hidden size.
    """

    def __init__(self, cfg: AudioEmbeddingConfig, codebook_sizes: list[int], out_dim: int):
        super().__init__()
        self.codebook_sizes = list(codebook_sizes)
        self.tables = nn.ModuleList(nn.Embedding(v, cfg.embed_dim) for v in self.codebook_sizes)
        self.proj = nn.Linear(cfg.embed_dim, out_dim)
        nn.init.zeros_(self.proj.bias)  # a random bias is one vector shared by every frame (reports/learning.md D1)
        for table in self.tables:
            nn.init.normal_(table.weight, std=cfg.embed_dim**-0.5)

    def load_codebooks(self, codebooks: list[torch.Tensor], seed: int = 0) -> float:
        """Set the tables to an RVQ's codebooks (level k: (codebook_sizes[k], dim)), each level centred (its mean
        row removed: a vector shared by every frame tells the LLM nothing), scaled so that level 0's rows have
        mean norm 1 (the random tables' scale) and, for tables wider than dim, mapped in losslessly
        (:func:`omni.audio.codebooks.load_codebook_tables`); the projection is left as it is.

        Returns:
            the scale applied.

        Raises:
            ValueError: the levels or their sizes differ from this embedding's, or embed_dim < dim.
        """
        return load_codebook_tables(self.tables, codebooks, 1.0, seed, center=True)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Embed frames.

        Args:
            codes: (..., K) long, level k in ``[0, codebook_sizes[k])``.

        Returns:
            (..., D_llm) one vector per frame.
        """
        summed = self.tables[0](codes[..., 0])
        for k in range(1, len(self.tables)):
            summed = summed + self.tables[k](codes[..., k])  # (..., E)
        return self.proj(summed)

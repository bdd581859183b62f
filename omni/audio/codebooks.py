"""Embedding tables that start as an audio tokenizer's RVQ codebooks.

A frame of K codes is embedded as the sum of K table rows, one per level (the LLM's audio embedding, the flow
decoder's token encoder). Starting those tables from the tokenizer's codebooks makes the sum the frame's
quantized vector, which already separates the sounds (the tokenizer's CTC head reads words from it), instead
of random vectors the consumer must first learn to tell apart (reports/learning.md, B5).
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def load_codebook_tables(tables: nn.ModuleList, codebooks: list[torch.Tensor], norm: float, seed: int = 0,
                         center: bool = False) -> float:
    """Overwrite K embedding tables with RVQ codebooks, one scale for all levels.

    Args:
        tables: K ``nn.Embedding``, level k of (sizes[k], width).
        codebooks: level k of shape (sizes[k], dim), the vectors whose sum over levels is the quantized vector.
            Tables wider than dim get the rows through one random semi-orthogonal map (dim -> width,
            orthonormal rows, drawn from ``seed``): sums, norms and inner products are kept, nothing is lost.
        norm: mean row norm that level 0 gets (the scale of the consumer's random initialisation).
        center: subtract each level's mean row first, so that the summed frame vector has no component shared
            by every frame (a constant carries no information, and after the consumer's normalisation a large
            one drowns what tells the frames apart; reports/learning.md, D1).

    Returns:
        the scale applied to the codebooks.

    Raises:
        ValueError: the levels or their sizes differ, width < dim, or level 0 is all zeros.
    """
    sizes = [t.num_embeddings for t in tables]
    width = tables[0].embedding_dim
    got = [int(c.shape[0]) for c in codebooks]
    if got != list(sizes):
        raise ValueError(f"codebooks with {got} entries per level do not fit codebook_sizes {list(sizes)}")
    dim = int(codebooks[0].shape[1])
    if any(int(c.shape[1]) != dim for c in codebooks) or dim > width:
        raise ValueError(f"codebook vectors of width {dim} do not fit tables of width {width}: the table width "
                         "(embed_dim, token_dim) must be at least the tokenizer's quantizer dim")
    if center:
        codebooks = [c.float() - c.float().mean(dim=0, keepdim=True) for c in codebooks]
    mean = float(codebooks[0].float().norm(dim=-1).mean())
    if not mean > 0:
        raise ValueError("level 0 of the codebooks is all zeros (an untrained quantizer?)")
    lift = torch.eye(dim)
    if width > dim:
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(width, dim, generator=g))  # (width, dim), orthonormal columns
        lift = q.T  # (dim, width)
    scale = norm / mean
    for table, rows in zip(tables, codebooks):
        table.weight.copy_((rows.float() @ lift * scale).to(table.weight))
    return scale

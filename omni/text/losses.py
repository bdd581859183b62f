"""Token-level losses shared by every causal-LM objective (text warm-up, transcription, SFT)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def next_token_nll(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Next-token negative log-likelihood at every position that predicts one.

    The targets are shifted, never the logits: a sliced or row-indexed (B, L, V) block gets a full-size zero
    gradient per slice in backward (a third of a tiny stage step on CPU); here backward writes the logits'
    gradient once. float32 logits take one cross-entropy; lower-precision ones are upcast a row at a time.

    Args:
        logits: (B, L, V) at every position; position i predicts token i + 1.
        labels: (B, L) token ids, ``ignore_index`` where no loss is taken.

    Returns:
        (B, L-1) float32: entry i is -log p(labels[:, i+1] | tokens <= i), 0 where ignored.
    """
    b, length, v = logits.shape
    targets = F.pad(labels[:, 1:], (0, 1), value=ignore_index)  # (B, L): position L-1 predicts nothing
    if b == 0 or length == 0:
        return logits.new_zeros((b, max(length - 1, 0)), dtype=torch.float32)
    if logits.dtype == torch.float32:
        nll = F.cross_entropy(logits.reshape(b * length, v), targets.reshape(-1), ignore_index=ignore_index,
                              reduction="none").view(b, length)
    else:
        nll = torch.stack([F.cross_entropy(row.float(), t, ignore_index=ignore_index, reduction="none")
                           for row, t in zip(logits.unbind(0), targets.unbind(0))])
    return nll[:, :-1]


def token_nll(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token negative log-likelihood per sequence.

    Args:
        logits: (B, L, V) at every position; position i predicts token i + 1.
        labels: (B, L) token ids, ``ignore_index`` where no loss is taken.

    Returns:
        nll (B,) summed over each sequence's scored tokens, and count (B,) of scored tokens.
    """
    nll = next_token_nll(logits, labels, ignore_index)  # (B, L-1)
    return nll.sum(dim=1), (labels[:, 1:] != ignore_index).sum(dim=1)

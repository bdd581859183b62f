"""Token-level losses shared by every causal-LM objective (text warm-up, transcription, SFT)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_nll(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token negative log-likelihood per sequence.

    Args:
        logits: (B, L, V) at every position; position i predicts token i + 1.
        labels: (B, L) token ids, ``ignore_index`` where no loss is taken.

    Returns:
        nll (B,) summed over each sequence's scored tokens, and count (B,) of scored tokens.
    """
    shift_logits = logits[:, :-1].float()  # (B, L-1, V)
    shift_labels = labels[:, 1:]  # (B, L-1)
    nll = F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                          ignore_index=ignore_index, reduction="none").view(shift_labels.shape)  # (B, L-1)
    return nll.sum(dim=1), (shift_labels != ignore_index).sum(dim=1)

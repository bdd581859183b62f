"""Auxiliary CTC transcription objective on the quantized frames.

The frozen-LM objective (:mod:`audio_tokenizer.transcription`) lets a small LM *read* the frames, which a
tiny LM can satisfy from its text prior without the frames saying much. CTC asks more of the codes: a
light head (one 3-wide convolution and a linear layer) must spell the transcript's tokens from the
quantized frames alone, frame by frame, so the codes have to carry what was said. It is an auxiliary of
the training run only: the head is not part of the saved tokenizer.

Targets are the same LM-tokenizer ids the LM objective uses, without the end-of-text token; the blank is
an extra class after the vocabulary. At 12.5 frames per second a BPE transcript is shorter than its frame
sequence (about 3 tokens per second of speech); clips where it is not (an infeasible alignment) score 0
(``zero_infinity``) and count in ``CTCResult.infeasible``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class CTCHead(nn.Module):
    """quantized (B, T, D) -> log-probabilities (B, T, V + 1); class V is the blank."""

    def __init__(self, dim: int, vocab_size: int, hidden: int = 256):
        super().__init__()
        self.conv = nn.Conv1d(dim, hidden, kernel_size=3, padding=1)
        self.out = nn.Linear(hidden, vocab_size + 1)
        self.blank = vocab_size

    def forward(self, quantized: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """lengths (B,): valid frames; padding frames are zeroed first so they never leak into valid ones."""
        if lengths is not None:
            valid = torch.arange(quantized.shape[1], device=quantized.device)[None, :] < lengths[:, None]  # (B, T)
            quantized = quantized * valid[..., None]
        h = F.gelu(self.conv(quantized.transpose(1, 2))).transpose(1, 2)  # (B, T, H)
        return self.out(h).log_softmax(-1)  # (B, T, V + 1)


@dataclass
class CTCResult:
    """Per-utterance CTC loss per target token (B,), 0 where a clip has no transcript or no feasible alignment."""

    loss: torch.Tensor
    infeasible: int


def ctc_per_token(log_probs: torch.Tensor, frame_lengths: torch.Tensor, text_ids: torch.Tensor,
                  text_lengths: torch.Tensor, blank: int, drop_last: bool = True) -> CTCResult:
    """CTC negative log-likelihood of each transcript, divided by its token count.

    Args:
        log_probs: (B, T, V + 1) frame log-probabilities.
        frame_lengths: (B,) valid frames.
        text_ids: (B, L) target ids, padded; ``text_lengths`` (B,) valid ids (including a final end-of-text
            token when ``drop_last``, which is then not a target).
    """
    lengths = (text_lengths - int(drop_last)).clamp_min(0)  # (B,)
    if int(lengths.max()) == 0:
        return CTCResult(log_probs.new_zeros(log_probs.shape[0]), 0)
    targets = text_ids[:, : int(lengths.max())].clamp_max(blank - 1)  # (B, L'); padding is masked by lengths
    nll = F.ctc_loss(log_probs.transpose(0, 1).float(), targets, frame_lengths, lengths, blank=blank,
                     reduction="none", zero_infinity=True)  # (B,)
    feasible = frame_lengths >= lengths
    infeasible = int(((~feasible) & (lengths > 0)).sum())
    loss = torch.where((lengths > 0) & feasible, nll / lengths.clamp_min(1), torch.zeros_like(nll))
    return CTCResult(loss, infeasible)

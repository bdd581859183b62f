"""Losses and log-probabilities of the omni model: pure functions of (model output, batch).

* :func:`text_loss`: cross-entropy of the text head on target tokens (labels shifted by one, as in
  Hugging Face), returned as a *sum* and a count so the training loop can normalise globally.
* :func:`audio_loss`: cross-entropy of the audio head per codebook level, weighted per level.
* :func:`position_logprobs` / :func:`sequence_logprobs`: log-probabilities of the targets for DPO and
  friends. A speech response's log-prob sums its text tokens (including the switch, "continue" and
  "stop" decisions) and, for each audio frame, the log-probs of its K codes from the audio head.

All log-softmaxes run in float32 (:func:`~omni.text.losses.next_token_nll` upcasts a bf16 (T, V) block
one row at a time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from omni.model.batch import IGNORE, OmniBatch
from omni.text.losses import next_token_nll

if TYPE_CHECKING:
    from omni.model.model import OmniOutput


@dataclass
class LossSum:
    """A summed loss and the number of units it sums over (tokens, frames)."""

    total: torch.Tensor
    count: int

    def mean(self) -> torch.Tensor:
        return self.total / max(self.count, 1)


@dataclass
class AudioLoss:
    """Audio-head cross-entropy.

    Attributes:
        total: scalar, sum over frames of sum_k weight_k * CE_k.
        per_level: (K,) unweighted CE summed over frames, per level (for logging).
        count: number of target frames.
    """

    total: torch.Tensor
    per_level: torch.Tensor
    count: int

    def mean(self) -> torch.Tensor:
        return self.total / max(self.count, 1)


@dataclass
class SequenceLogProbs:
    """Per-sequence sums of target log-probs (B,) and how many units they cover."""

    text: torch.Tensor
    audio: torch.Tensor
    num_tokens: torch.Tensor
    num_frames: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.text + self.audio


def text_token_logprobs(text_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Log-prob of each text target at its own position.

    Args:
        text_logits: (B, T, V); labels: (B, T) aligned with the inputs (IGNORE = no target).

    Returns:
        (B, T) float32; entry t is log p(labels[t] | tokens < t), 0 at t = 0 and where not a target.
    """
    nll = next_token_nll(text_logits, labels, IGNORE)  # (B, T-1) predicting positions 1..T-1
    return F.pad(-nll, (1, 0))


def text_loss(text_logits: torch.Tensor, labels: torch.Tensor) -> LossSum:
    """Summed cross-entropy over text targets (response tokens, audio continue/stop decisions).

    Args:
        text_logits: (B, T, V); labels: (B, T), IGNORE where no target.
    """
    targets = labels[:, 1:]
    nll = next_token_nll(text_logits, labels, IGNORE)
    return LossSum(nll.sum(), int((targets != IGNORE).sum()))


def audio_frame_logprobs(audio_logits: Sequence[torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
    """Log-prob of each level's true code.

    Args:
        audio_logits: K tensors (N, V_k); codes: (N, K) the target frames' codes.

    Returns:
        (N, K) float32.
    """
    if codes.shape[0] == 0:
        return torch.zeros(0, len(audio_logits), dtype=torch.float32, device=codes.device)
    cols = [-F.cross_entropy(lg.float(), codes[:, k], reduction="none") for k, lg in enumerate(audio_logits)]
    return torch.stack(cols, dim=-1)


def audio_loss(audio_logits: Sequence[torch.Tensor], codes: torch.Tensor,
               level_weights: Sequence[float] | None = None) -> AudioLoss:
    """Summed, level-weighted cross-entropy of the audio head.

    Args:
        audio_logits: K tensors (N, V_k), from ``OmniOutput.audio_logits``.
        codes: (N, K) target codes (``batch.audio_codes[batch.audio_target]``).
        level_weights: K weights (default all 1); e.g. a larger weight on the first, coarsest level.
    """
    k = len(audio_logits)
    weights = torch.ones(k) if level_weights is None else torch.as_tensor(level_weights, dtype=torch.float32)
    if weights.shape != (k,):
        raise ValueError(f"level_weights needs {k} values, got {tuple(weights.shape)}")
    nll = -audio_frame_logprobs(audio_logits, codes)  # (N, K)
    per_level = nll.sum(0)  # (K,)
    total = (per_level * weights.to(per_level.device)).sum()
    return AudioLoss(total, per_level.detach(), int(codes.shape[0]))


def position_logprobs(output: OmniOutput, batch: OmniBatch) -> torch.Tensor:
    """Target log-prob at every position: text target + (at target frames) the sum of its K code log-probs.

    Summing it over the positions of a response gives that response's log-prob; with packed rows,
    sum each example's span separately.

    Returns:
        (B, T) float32, 0 where there is no target.
    """
    if batch.labels is None:
        raise ValueError("position_logprobs needs batch.labels")
    lp = text_token_logprobs(output.text_logits, batch.labels)  # (B, T)
    codes = batch.audio_codes[batch.audio_target]  # (N_t, K)
    frame_lp = audio_frame_logprobs(output.audio_logits, codes).sum(-1)  # (N_t,)
    if frame_lp.numel():
        idx = output.audio_frame_index
        lp = lp.index_put((idx[:, 0], idx[:, 1]), frame_lp, accumulate=True)
    return lp


def sequence_logprobs(output: OmniOutput, batch: OmniBatch) -> SequenceLogProbs:
    """Per-row sums of target log-probs (DPO: chosen / rejected response log-likelihoods).

    Text and audio are kept apart (``total`` adds them) with the token and frame counts, for
    length-normalised variants (SimPO).
    """
    if batch.labels is None:
        raise ValueError("sequence_logprobs needs batch.labels")
    text = text_token_logprobs(output.text_logits, batch.labels).sum(-1)  # (B,)
    num_tokens = (batch.labels[:, 1:] != IGNORE).sum(-1)
    codes = batch.audio_codes[batch.audio_target]
    frame_lp = audio_frame_logprobs(output.audio_logits, codes).sum(-1)  # (N_t,)
    rows = output.audio_frame_index[:, 0]
    b = batch.input_ids.shape[0]
    audio = torch.zeros(b, dtype=torch.float32, device=text.device).index_add(0, rows, frame_lp)
    frames = torch.zeros(b, dtype=torch.long, device=text.device).index_add(0, rows, torch.ones_like(rows))
    return SequenceLogProbs(text=text, audio=audio, num_tokens=num_tokens, num_frames=frames)

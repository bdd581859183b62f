"""Response log-probabilities of preference batches: text tokens + per audio frame its K code log-probs.

The prompt is masked (labels ``-100``), so only response positions count: the assistant's text, the
modality switch, one "continue" ``<|audio|>`` decision per spoken frame, the "stop" ``<|audio_end|>``
and ``<|im_end|>``; at each spoken frame's position the audio head adds the log-probs of the frame's
K codes (:func:`omni.model.losses.sequence_logprobs`). The response *length* used for averaging is
its number of target positions (``num_tokens``): a spoken frame is one position whose log-prob is the
continue decision plus its K codes, so a text-only response averages exactly like TRL's
``average_log_prob``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omni.model.batch import OmniBatch
from omni.model.losses import sequence_logprobs


@dataclass
class ResponseLogProbs:
    """Per-row response log-probs of a batch (B rows).

    Attributes:
        sum: (B,) float32, text + audio log-probs summed over the response.
        text / audio: (B,) the two parts of ``sum``.
        num_tokens: (B,) long, response target positions (the length for averaging).
        num_frames: (B,) long, spoken response frames.
    """

    sum: torch.Tensor
    text: torch.Tensor
    audio: torch.Tensor
    num_tokens: torch.Tensor
    num_frames: torch.Tensor

    @property
    def average(self) -> torch.Tensor:
        """(B,) ``sum / num_tokens`` (length-normalised log-prob; 0-length rows divide by 1)."""
        return self.sum / self.num_tokens.clamp(min=1).to(self.sum.dtype)

    def value(self, average: bool) -> torch.Tensor:
        """(B,) ``average`` or ``sum``."""
        return self.average if average else self.sum

    def halves(self) -> tuple[ResponseLogProbs, ResponseLogProbs]:
        """Split a 2B-row batch laid out [first B | second B] (chosen | rejected, or completions | KL pairs)."""
        b = self.sum.shape[0] // 2
        parts = [ResponseLogProbs(*(t[s] for t in (self.sum, self.text, self.audio, self.num_tokens, self.num_frames)))
                 for s in (slice(0, b), slice(b, 2 * b))]
        return parts[0], parts[1]


def response_logprobs(output, batch: OmniBatch) -> ResponseLogProbs:
    """Response log-probs of every row of ``batch`` from the model's ``output`` (an ``OmniOutput``).

    Args:
        output: ``model(batch, return_loss=False)``: text logits (B, T, V) and audio logits K x (N_t, V_k).
        batch: a padded batch with labels (one response per row).
    """
    seq = sequence_logprobs(output, batch)
    return ResponseLogProbs(seq.total, seq.text, seq.audio, seq.num_tokens, seq.num_frames)

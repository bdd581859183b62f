"""Per-modality sampling settings and the sampler that applies them with transformers' logits processors.

Text tokens and audio codes each get a :class:`SamplingConfig` (greedy by
default). Temperature, top-k, top-p and the repetition penalty are
``transformers``' own ``TemperatureLogitsWarper``, ``TopKLogitsWarper``,
``TopPLogitsWarper`` and ``RepetitionPenaltyLogitsProcessor``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from omni.config import check, option


@dataclass
class SamplingConfig:
    """How one modality's next symbol is chosen."""

    do_sample: bool = option(False, help="Sample from the distribution; false = greedy (argmax).")
    temperature: float = option(1.0, help="Divides the logits before sampling (< 1 sharper, > 1 flatter).")
    top_k: int = option(0, help="Sample among the k most likely symbols only; 0 = no limit.")
    top_p: float = option(1.0, help="Sample within the smallest set whose probability reaches top_p; 1 = no limit.")
    repetition_penalty: float = option(
        1.0, help="Penalise symbols already seen (CTRL-style: logits / p if positive, * p if negative); 1 = off. "
        "Text: the prompt and generated tokens; audio: the same level's codes in the current segment.",
    )
    repetition_window: int = option(
        0, help="Only the last n symbols count for the repetition penalty; 0 = all of them."
    )

    def __post_init__(self) -> None:
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(self.top_k >= 0, "top_k", f"must be >= 0, got {self.top_k}")
        check(0 < self.top_p <= 1, "top_p", f"must be in (0, 1], got {self.top_p}")
        check(self.repetition_penalty > 0, "repetition_penalty", "must be > 0")
        check(self.repetition_window >= 0, "repetition_window", "must be >= 0")


class Sampler:
    """Chooses one symbol per row from logits (B, V).

    Args:
        cfg: the settings.
        generator: random generator for sampling (seeded for reproducible output).
    """

    def __init__(self, cfg: SamplingConfig, generator: torch.Generator | None = None):
        self.cfg = cfg
        self.generator = generator
        warpers = []
        if cfg.do_sample:
            if cfg.temperature != 1.0:
                warpers.append(TemperatureLogitsWarper(cfg.temperature))
            if cfg.top_k > 0:
                warpers.append(TopKLogitsWarper(cfg.top_k))
            if cfg.top_p < 1.0:
                warpers.append(TopPLogitsWarper(cfg.top_p))
        self.warpers = LogitsProcessorList(warpers)
        self.penalizes = cfg.repetition_penalty != 1.0

    def penalize(self, logits: torch.Tensor, history: torch.Tensor, ignore: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """Apply the repetition penalty.

        Args:
            logits: (B, V).
            history: (B, S) long, symbols seen per row; entries equal to V are ignored (placeholders).
            ignore: (B,) long: leading entries of each row's history to ignore (padding, earlier segments).
        """
        if not self.penalizes or history.shape[1] == 0:
            return logits
        if self.cfg.repetition_window:
            start = history.shape[1] - self.cfg.repetition_window
            if start > 0:
                history = history[:, start:]
                ignore = None if ignore is None else (ignore - start).clamp(min=0)
        vocab = logits.shape[-1]
        if ignore is not None:  # (B, S): ignored entries become placeholders
            positions = torch.arange(history.shape[1], device=history.device)
            history = history.masked_fill(positions[None, :] < ignore.to(history.device)[:, None], vocab)
        # placeholders (= V) gather from and scatter to one extra column, dropped after: every transformers 5.x
        # processor then sees only valid ids (per-row ignore lengths and placeholder filtering are 5.23+ only)
        padded = torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], dim=-1)  # (B, V + 1)
        processor = RepetitionPenaltyLogitsProcessor(float(self.cfg.repetition_penalty))
        return processor(history, padded)[:, :vocab]

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, V) logits (already penalised) -> (B,) chosen symbols."""
        if not self.cfg.do_sample:
            return logits.argmax(-1)
        scores = self.warpers(None, logits.float())
        probs = torch.softmax(scores, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)

"""SpecAugment for tokenizer training: frequency and time masks on the encoder's input log-mel.

The tokenizer's codes must generalise from a few hours of synthetic speech to unseen sentences; masking
bands of mel bins and stretches of frames of the *input* (Park et al. 2019) keeps the encoder from leaning on
any one of them. The mel reconstruction target stays the clean mel, so the decoder learns to fill the gaps.
Masked values are each clip's mean over its valid frames (the normalised log-mel's neutral level).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omni.config import check, option


@dataclass
class SpecAugmentConfig:
    """Masks drawn for each training clip (none at evaluation)."""

    freq_masks: int = option(0, help="Frequency masks per clip (0: no frequency masking).")
    freq_width: int = option(10, help="Largest frequency mask, in mel bins (each width is uniform in [0, this]).")
    time_masks: int = option(0, help="Time masks per clip (0: no time masking).")
    time_width: int = option(20, help="Largest time mask, in mel frames (10 ms each).")
    max_time_fraction: float = option(0.2, help="A time mask never covers more than this share of a clip.")

    def __post_init__(self) -> None:
        for name in ("freq_masks", "freq_width", "time_masks", "time_width"):
            check(getattr(self, name) >= 0, name, "must be >= 0")
        check(0.0 < self.max_time_fraction <= 1.0, "max_time_fraction", "must be in (0, 1]")

    @property
    def enabled(self) -> bool:
        """True when any mask is drawn."""
        return (self.freq_masks > 0 and self.freq_width > 0) or (self.time_masks > 0 and self.time_width > 0)


def spec_augment(mel: torch.Tensor, lengths: torch.Tensor, cfg: SpecAugmentConfig,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Masked copy of a padded batch of log-mels.

    Args:
        mel: (B, M, F) log-mel; lengths (B,) valid frames.
        cfg: how many masks and how wide.
        generator: random source (None: torch's global RNG, which the training loop seeds and restores).

    Returns:
        (B, M, F): masked bands and stretches hold each clip's mean over its valid frames; padding unchanged.
    """
    b, m, f = mel.shape
    valid = torch.arange(f, device=mel.device)[None, :] < lengths[:, None]  # (B, F)
    fill = (mel * valid[:, None, :]).sum((1, 2)) / (valid.sum(1) * m).clamp_min(1)  # (B,)
    keep = torch.ones(b, m, f, dtype=torch.bool, device=mel.device)
    for i in range(b):
        n = int(lengths[i])
        for _ in range(cfg.freq_masks):
            w = int(torch.randint(0, cfg.freq_width + 1, (), generator=generator))
            lo = int(torch.randint(0, max(m - w, 0) + 1, (), generator=generator))
            keep[i, lo:lo + w, :] = False
        widest = min(cfg.time_width, int(cfg.max_time_fraction * n))
        for _ in range(cfg.time_masks):
            w = int(torch.randint(0, widest + 1, (), generator=generator))
            lo = int(torch.randint(0, max(n - w, 0) + 1, (), generator=generator))
            keep[i, :, lo:lo + w] = False
    keep |= ~valid[:, None, :]  # padding frames keep their value
    return torch.where(keep, mel, fill[:, None, None].to(mel.dtype))

"""Keeping non-finite numbers out of the weights: the error, and where a NaN or inf first shows.

The trainer checks each optimizer step's global gradient norm (where a NaN/inf loss shows too) *before*
the optimizer runs: a non-finite step is skipped and counted, or stops the run, per
``LoopConfig.nonfinite``; and it checks the weights before every checkpoint and export, so a run never
saves what it could not train.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class NonFiniteError(FloatingPointError):
    """Training met a NaN or inf (in a gradient, a loss or a weight); the message names where and what to try.

    Nothing non-finite was applied or saved: the last checkpoint on disk is intact."""


def first_nonfinite(named: Iterable[tuple[str, torch.Tensor | None]]) -> str | None:
    """Name of the first tensor (in iteration order) holding a NaN or inf; ``None`` when all are finite.

    ``None`` tensors (a parameter without a gradient) are skipped."""
    for name, t in named:
        if t is None:
            continue
        local = t.to_local() if hasattr(t, "to_local") else t  # FSDP2's DTensor: this process's shard
        if not bool(torch.isfinite(local).all()):
            return name
    return None


def first_nonfinite_grad(model: torch.nn.Module) -> str | None:
    """Name of the first parameter of ``model`` whose gradient holds a NaN or inf (this process's shard)."""
    return first_nonfinite((name, p.grad) for name, p in model.named_parameters())


def first_nonfinite_weight(model: torch.nn.Module) -> str | None:
    """Name of the first parameter of ``model`` holding a NaN or inf (this process's shard)."""
    return first_nonfinite((name, p.detach()) for name, p in model.named_parameters())


ADVICE = ("lower the learning rate or raise warmup_steps, check grad_clip, or use bf16 / no mixed precision "
          "instead of fp16")

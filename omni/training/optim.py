"""Optimizer and schedule from an :class:`OptimConfig` (AdamW, transformers' schedules)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from omni.training.config import OptimConfig


def build_optimizer(params: Iterable[torch.nn.Parameter] | list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over parameters or parameter groups (groups may carry their own ``lr``/``weight_decay``); fused
    where ``cfg.fused`` says (null: when CUDA is available; torch's fused kernel also runs on the CPU)."""
    fused = torch.cuda.is_available() if cfg.fused is None else cfg.fused
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                             fused=fused or None)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, max_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up then cosine / linear / constant, stepped once per optimizer step."""
    if cfg.schedule == "cosine":
        return get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, cfg.warmup_steps, max_steps, min_lr_rate=cfg.min_lr_ratio)
    if cfg.schedule == "linear":
        return get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, max_steps)
    return get_constant_schedule_with_warmup(optimizer, cfg.warmup_steps)

"""Config sections shared by all training commands: the loop and the optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.config import check, option


@dataclass
class OptimConfig:
    """AdamW and its learning-rate schedule."""

    lr: float = option(1e-4, help="Peak learning rate (per-group rates, where a stage sets them, replace it).")
    weight_decay: float = option(0.0, help="AdamW decoupled weight decay.")
    betas: tuple[float, float] = option((0.9, 0.999), help="AdamW betas.")
    eps: float = option(1e-8, help="AdamW epsilon.")
    schedule: Literal["cosine", "linear", "constant"] = option(
        "cosine", help="Decay after warm-up: cosine (to min_lr_ratio x lr), linear (to 0) or constant."
    )
    warmup_steps: int = option(0, help="Linear warm-up from 0 to the peak rate over this many optimizer steps.")
    min_lr_ratio: float = option(0.0, help="Cosine schedule floor as a fraction of the peak rate.")
    grad_clip: float = option(1.0, help="Clip the global gradient norm to this value; 0 disables clipping.")
    fused: bool | None = option(
        None, help="torch's fused AdamW kernel (one launch for all parameters instead of a few per tensor); null: "
        "on when CUDA is available, off otherwise (the CPU runs keep their exact results).",
    )

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check(all(0 <= b < 1 for b in self.betas), "betas", f"each must be in [0, 1), got {self.betas}")
        check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        check(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 disables clipping)")


@dataclass
class LoopConfig:
    """How long to train, how batches are cut, and when to log, evaluate and save."""

    output_dir: str = option(help="Run directory: checkpoints/, tensorboard/, trainer_state.json, final outputs.")
    max_steps: int = option(1000, help="Optimizer steps to train for.")
    batch_size: int = option(
        16, help="Global batch: examples per optimizer step over all processes and accumulation steps."
    )
    grad_accum: int = option(1, help="Micro-batches per optimizer step on each process.")
    seed: int = option(0, help="Seed for initialisation, data order and dropout.")
    log_every: int = option(10, help="Log training metrics every this many steps.")
    eval_every: int = option(0, help="Evaluate every this many steps (0: only at the end).")
    save_every: int = option(100, help="Write a checkpoint every this many steps (and at the end).")
    keep_checkpoints: int = option(2, help="Checkpoints kept on disk; older ones are deleted after a save.")
    mixed_precision: Literal["no", "bf16", "fp16", "auto"] = option(
        "no", help="Autocast dtype for forward passes (bf16 needs hardware support; fp16 adds loss scaling); "
        "auto: bf16 on a GPU that supports it, none on CPU."
    )
    num_workers: int = option(0, help="DataLoader worker processes per training process.")
    cpu: bool = option(False, help="Train on CPU even when a GPU is present (CPU-only machines always do).")
    resume: bool = option(True, help="Continue from the newest checkpoint in output_dir when there is one.")
    progress: bool = option(True, help="Show a progress bar on the main process.")
    nonfinite: Literal["skip", "stop"] = option(
        "skip", help="A step whose gradient norm or loss is NaN/inf is never applied: skip drops it (no optimizer "
        "or scheduler step; counted as nonfinite_skips), stop ends the run naming the first non-finite parameter. "
        "Under fp16 the loss scaler's own skips (an overflow while it calibrates) are counted, never stopped on."
    )
    max_nonfinite_skips: int = option(
        10, help="Stop after this many consecutive skipped steps (the run is diverging, not unlucky)."
    )

    def __post_init__(self) -> None:
        check(bool(self.output_dir), "output_dir", "must be set")
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "save_every", "keep_checkpoints"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.eval_every >= 0, "eval_every", "must be >= 0")
        check(self.num_workers >= 0, "num_workers", "must be >= 0")
        check(self.max_nonfinite_skips >= 1, "max_nonfinite_skips", f"must be >= 1, got {self.max_nonfinite_skips}")
        check(self.batch_size % self.grad_accum == 0, "batch_size",
              f"must be divisible by grad_accum ({self.grad_accum}), got {self.batch_size}")

"""Fit a component's run, then say whether its export must be written: one rule for every warm-up command.

A run that finished earlier is not trained again; when its export (``marker``) is missing too, the last
checkpoint is restored first, so the export written is the finished run's. Used by ``omni train lm``,
``omni train tokenizer`` and ``omni train vision``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.training.checkpoint import run_complete
from omni.training.trainer import Trainer, TrainResult


@dataclass
class FitOutcome:
    """What :func:`fit_for_export` left to do.

    Attributes:
        result: the loop's result (``complete`` False: stopped early, rerun to resume).
        write_export: the run is complete and its export is missing: the main process writes it now, from the
            trainer's model (restored from the last checkpoint when the run had finished earlier).
    """

    result: TrainResult
    write_export: bool


def fit_for_export(trainer: Trainer, cfg: Any, marker: Path) -> FitOutcome:
    """Save ``cfg`` beside a new run, fit (or resume) it, and tell whether ``marker``'s export must be written."""
    from omni.config import save_config

    run_dir = Path(trainer.cfg.output_dir)
    already_done = trainer.cfg.resume and run_complete(run_dir)
    if trainer.acc.is_main_process and not already_done:
        save_config(cfg, run_dir / "config.yaml")
    result = trainer.fit()
    if not result.complete or (already_done and marker.is_file()):
        return FitOutcome(result, False)
    if already_done:  # finished earlier but the export is missing: restore the last checkpoint first
        trainer.ckpt.load(trainer.acc, trainer.ckpt.latest()[1])
    # fit() ended the process group (accelerate's end_training): the main process writes, nobody waits
    return FitOutcome(result, True)

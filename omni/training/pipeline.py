"""Recipes: stages run in order, each initialised from the previous one (``omni train pipeline RECIPE``).

A recipe (kind ``recipe``) lists stage configs: ``kind: stage`` YAMLs, and optionally a first
``kind: lm`` text-LM warm-up (tiny recipes: ``omni train lm``). Stage ``n`` writes to
``output_root/<name>``; stage ``n+1`` starts from stage ``n``'s ``final`` model, or, after a text-LM
warm-up, builds its ``model`` YAML on the warmed-up LM and its tokenizer. Finished stages (complete run
and final model on disk) are skipped, so rerunning the same command after a crash resumes the
pipeline where it stopped, and the stage in progress resumes from its newest checkpoint.

Several processes: ``torchrun --nproc_per_node N $(which omni) train pipeline RECIPE`` runs every stage
in the same process group (kept alive between stages by
:func:`~omni.training.trainer.keep_process_group`).
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omni.config import check, load_config, option


@dataclass
class RecipeStage:
    """One entry of a recipe."""

    name: str = option(help="Stage name: its run directory is <output_root>/<name>.")
    config: str = option(help="Stage YAML (kind: stage, or kind: lm for a text-LM warm-up).")
    overrides: list[str] = option(default_factory=list, help="Dotted overrides of that YAML.")
    output_dir: str | None = option(None, help="Run directory of this stage (null: <output_root>/<name>), e.g. a "
                                               "text-LM warm-up shared with other recipes.")

    def __post_init__(self) -> None:
        check(bool(self.name.strip()) and "/" not in self.name, "name", "must be a plain name (no '/')")
        check(bool(self.config.strip()), "config", "must name a YAML file")
        check(self.output_dir is None or bool(self.output_dir.strip()), "output_dir", "must be a path or null")


@dataclass
class RecipeConfig:
    """``omni train pipeline``: stages in order."""

    output_root: str = option(help="Directory holding one run directory per stage.")
    stages: list[RecipeStage] = option(help="The stages, in order; each starts from the previous one's output.")
    overrides: list[str] = option(default_factory=list, help="Dotted overrides applied to every stage first "
                                                             "(e.g. loop.max_steps=5 for a smoke run).")

    def __post_init__(self) -> None:
        check(bool(self.output_root.strip()), "output_root", "must be set")
        check(bool(self.stages), "stages", "needs at least one stage")
        names = [s.name for s in self.stages]
        check(len(set(names)) == len(names), "stages", f"stage names must be unique, got {names}")


@dataclass
class StageOutcome:
    """What happened to one stage."""

    name: str
    kind: str
    run_dir: Path
    output: Path | None
    skipped: bool
    step: int | None = None
    complete: bool = True


def _output(kind: str, run_dir: Path) -> Path:
    from omni.text.lm import MODEL_DIR
    from omni.training.stage import FINAL_DIR

    return run_dir / (MODEL_DIR if kind == "lm" else FINAL_DIR)


def stage_done(kind: str, run_dir: Path) -> bool:
    """A finished stage: its run is complete and its output model is on disk."""
    from omni.training.checkpoint import run_complete

    out = _output(kind, run_dir)
    marker = "config.json" if kind == "lm" else "omni_config.json"
    return run_complete(run_dir) and (out / marker).is_file()


def load_stage_config(entry: RecipeStage, recipe: RecipeConfig, prev: StageOutcome | None) -> tuple[str, Any]:
    """Load one entry's config with the recipe's overrides, its run directory and its initialisation."""
    from omni.config import kind_of
    from omni.training.stage import StageConfig, with_init

    run_dir = entry.output_dir or str(Path(recipe.output_root) / entry.name)
    cfg = load_config(entry.config, overrides=[*recipe.overrides, *entry.overrides, f"loop.output_dir={run_dir}"])
    kind = kind_of(type(cfg))
    if kind not in ("stage", "lm"):
        raise ValueError(f"recipe stage '{entry.name}': {entry.config} is kind '{kind}'; a recipe runs 'stage' and "
                         "'lm' configs")
    if isinstance(cfg, StageConfig) and prev is not None:
        if prev.kind == "lm":
            cfg = with_init(cfg, backbone=str(prev.output))
        else:
            cfg = with_init(cfg, init_from=str(prev.output))
    return kind, cfg


def _barrier() -> None:
    """Wait for every process of the (kept) process group; a no-op in a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def run_pipeline(recipe: RecipeConfig, start: str | None = None, log: Any = print) -> list[StageOutcome]:
    """Run the recipe's stages in order (skipping finished ones); stops after a stage that did not finish.

    Args:
        start: begin at this stage (the previous stage's output must exist).

    Raises:
        ValueError: an unknown start stage, or a stage whose input is missing.
    """
    from accelerate.state import AcceleratorState, GradientState

    from omni.text.lm import train_lm
    from omni.training.stage import StageConfig, train_stage
    from omni.training.trainer import keep_process_group

    names = [s.name for s in recipe.stages]
    if start is not None and start not in names:
        raise ValueError(f"--from: no stage '{start}' in the recipe (stages: {', '.join(names)})")
    first = names.index(start) if start else 0
    outcomes: list[StageOutcome] = []
    prev: StageOutcome | None = None
    main = int(os.environ.get("RANK", "0")) == 0  # no PartialState() here: each trainer sets up its own state
    for k, entry in enumerate(recipe.stages):
        kind, cfg = load_stage_config(entry, recipe, prev)
        run_dir = Path(cfg.loop.output_dir)
        if k < first or stage_done(kind, run_dir):
            if k >= first and main:
                log(f"[{entry.name}] finished earlier: {_output(kind, run_dir)}")
            prev = StageOutcome(entry.name, kind, run_dir, _output(kind, run_dir), skipped=True)
            if k < first and not stage_done(kind, run_dir):
                raise ValueError(f"--from {start}: the earlier stage '{entry.name}' has not finished ({run_dir})")
            outcomes.append(prev)
            continue
        if main:
            log(f"[{entry.name}] training ({kind}) -> {run_dir}")
        with keep_process_group():
            if isinstance(cfg, StageConfig):
                run = train_stage(cfg)
                result, output = run.result, run.final_dir
            else:
                run = train_lm(cfg)
                result, output = run.result, run.model_dir
            # the main process may still be writing the stage's output (train_lm exports without a barrier):
            # nobody starts the next stage, which reads it, before it is on disk
            _barrier()
        del run
        AcceleratorState._reset_state()  # the next stage builds its own Accelerator (same process group)
        GradientState._reset_state()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        prev = StageOutcome(entry.name, kind, run_dir, output, skipped=False, step=result.step, complete=result.complete)
        outcomes.append(prev)
        if not result.complete:
            if main:
                log(f"[{entry.name}] stopped at step {result.step}; rerun the same command to resume")
            break
    return outcomes

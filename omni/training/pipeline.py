"""Recipes: every step of a training recipe, in order (``omni train pipeline RECIPE``).

A recipe (kind ``recipe``) lists steps; each names a config YAML whose ``kind`` picks the step runner in
:mod:`omni.training.recipe_steps` — data (``corpus``, ``images``, ``code_cache``), training (``lm``,
``tokenizer``, ``flow_train``, ``vocoder_train``, ``stage``, ``dpo``), assembly (``bundle_assemble``,
``make_pairs``) and evaluation (``eval_asr``, ``eval_tts``, ``eval_qa``, ``recipe_report``). Step ``name``
works in ``output_root/<name>`` (or its ``output_dir``). Steps refer to earlier outputs by path: ``{root}``
in a step's overrides, inputs and output_dir expands to ``output_root``, and the recipe's ``paths`` map
rewrites path prefixes in every step's config (e.g. the component configs' ``data/corpus`` to
``{root}/corpus``). The one implicit link: a ``stage`` starts from the previous *model* step (``lm``,
``stage`` or ``dpo``): from its ``final`` model, or, after a text-LM warm-up, it builds its ``model`` YAML on
the warmed-up LM and its tokenizer.

Finished steps are skipped (training kinds: the run is complete and its output is on disk; other kinds: the
``.done`` marker written after the step returned), so rerunning the same command after a crash resumes the
recipe where it stopped, and the training step in progress resumes from its newest checkpoint. Each step's
wall time is logged to ``output_root/pipeline_steps.json``.

Several processes: ``torchrun --nproc_per_node N $(which omni) train pipeline RECIPE`` runs every training
step in the same process group (kept alive between steps by
:func:`~omni.training.trainer.keep_process_group`); data and assembly steps run on the main process while
the others wait.
"""

from __future__ import annotations

import gc
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omni.config import check, load_config, option

ROOT_PLACEHOLDER = "{root}"
STEPS_LOG = "pipeline_steps.json"


@dataclass
class RecipeStage:
    """One step of a recipe."""

    name: str = option(help="Step name: its directory is <output_root>/<name>.")
    config: str = option(help="Step YAML; its kind picks the runner (omni.training.recipe_steps.STEPS).")
    overrides: list[str] = option(default_factory=list, help="Dotted overrides of that YAML ({root} = output_root).")
    output_dir: str | None = option(None, help="Directory of this step (null: <output_root>/<name>), e.g. a "
                                               "text-LM warm-up shared with other recipes.")
    inputs: dict[str, str] = option(default_factory=dict, help="Paths an evaluation step reads that its config does "
                                                               "not hold: manifest, checkpoint ({root} = output_root).")

    def __post_init__(self) -> None:
        check(bool(self.name.strip()) and "/" not in self.name, "name", "must be a plain name (no '/')")
        check(bool(self.config.strip()), "config", "must name a YAML file")
        check(self.output_dir is None or bool(self.output_dir.strip()), "output_dir", "must be a path or null")


@dataclass
class RecipeConfig:
    """``omni train pipeline``: steps in order."""

    output_root: str = option(help="Directory holding one directory per step.")
    stages: list[RecipeStage] = option(help="The steps, in order.")
    overrides: list[str] = option(default_factory=list, help="Dotted overrides applied to every training step first "
                                                             "(e.g. loop.max_steps=5 for a smoke run).")
    paths: dict[str, str] = option(default_factory=dict, help="Path prefix -> replacement ({root} = output_root), "
                                                              "applied to every string of every step's config.")
    final_overrides: list[str] = option(default_factory=list, help="Dotted overrides applied to every training step "
                                                                   "after its own (a smoke variant's step counts).")
    step_overrides: dict[str, list[str]] = option(default_factory=dict, help="Step name -> dotted overrides applied "
                                                                             "last (a smoke variant's data sizes).")

    def __post_init__(self) -> None:
        check(bool(self.output_root.strip()), "output_root", "must be set")
        check(bool(self.stages), "stages", "needs at least one stage")
        names = [s.name for s in self.stages]
        check(len(set(names)) == len(names), "stages", f"stage names must be unique, got {names}")
        unknown = sorted(set(self.step_overrides) - set(names))
        check(not unknown, "step_overrides", f"names no step: {unknown}")


@dataclass
class StageOutcome:
    """What happened to one step."""

    name: str
    kind: str
    run_dir: Path
    output: Path | None
    skipped: bool
    step: int | None = None
    complete: bool = True
    seconds: float | None = None


def expand(text: str, recipe: RecipeConfig) -> str:
    """``{root}`` -> the recipe's output_root."""
    return text.replace(ROOT_PLACEHOLDER, recipe.output_root)


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def rebase(value: Any, paths: dict[str, str]) -> Any:
    """Rewrite path prefixes (whole path components only) in every string of nested dicts / lists, and in the
    value of a dotted override string (``vision.path=runs/x/model`` in a stage's ``model_overrides``)."""
    if isinstance(value, str):
        key = _OVERRIDE.match(value)
        if key:
            return key.group(0) + rebase(value[key.end():], paths)
        for old, new in paths.items():
            if value == old or value.startswith(old.rstrip("/") + "/"):
                return new + value[len(old):]
        return value
    if isinstance(value, dict):
        return {k: rebase(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [rebase(v, paths) for v in value]
    return value


def _output(kind: str, run_dir: Path) -> Path:
    from omni.training.recipe_steps import step_output

    return step_output(kind, run_dir)


def stage_done(kind: str, run_dir: Path) -> bool:
    """A finished step (see :func:`omni.training.recipe_steps.step_done`)."""
    from omni.training.recipe_steps import step_done

    return step_done(kind, run_dir)


def load_stage_config(entry: RecipeStage, recipe: RecipeConfig, prev: StageOutcome | None) -> tuple[str, Any, Path]:
    """One step's config (recipe overrides, ``{root}``, ``paths``), its kind and its directory; a ``stage`` is
    initialised from ``prev``, the previous model step."""
    from omni.config import from_data, kind_of, to_data
    from omni.config.registry import config_class
    from omni.config.yaml_io import read_config_file
    from omni.training.recipe_steps import step_kind
    from omni.training.stage import StageConfig, with_init

    run_dir = Path(expand(entry.output_dir, recipe) if entry.output_dir else Path(recipe.output_root) / entry.name)
    data, _ = read_config_file(entry.config)
    kind = data.get("kind") if isinstance(data, dict) else None
    spec = step_kind(str(kind), entry.name)
    overrides = [expand(o, recipe) for o in entry.overrides]
    last = [expand(o, recipe) for o in recipe.step_overrides.get(entry.name, [])]
    if spec.training:
        overrides = [*recipe.overrides, *overrides, *recipe.final_overrides, *last, f"loop.output_dir={run_dir}"]
    else:
        overrides = [*overrides, *last]
    cfg = load_config(entry.config, config_class(str(kind)), overrides=overrides)
    if recipe.paths:
        paths = {k: expand(v, recipe) for k, v in recipe.paths.items()}
        cfg = from_data(type(cfg), rebase(to_data(cfg), paths), source=f"{entry.config} (recipe paths)")
    if isinstance(cfg, StageConfig) and prev is not None:
        if prev.kind == "lm":
            cfg = with_init(cfg, backbone=str(prev.output))
        else:
            cfg = with_init(cfg, init_from=str(prev.output))
    return kind_of(type(cfg)), cfg, run_dir


def _barrier() -> None:
    """Wait for every process of the (kept) process group; a no-op in a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _ensure_group() -> None:
    """Under a launcher, set up the process group (accelerate's PartialState) so that ranks can wait for the main
    process's data steps; a no-op in a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


def _log_step(root: Path, outcome: StageOutcome, state: str) -> None:
    """Record one step's state and wall time in ``<root>/pipeline_steps.json`` (a skipped step keeps the wall time
    of the run that did it)."""
    path = root / STEPS_LOG
    steps = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    old = next((s for s in steps if s["name"] == outcome.name), None)
    entry = {"name": outcome.name, "kind": outcome.kind, "state": state, "output": str(outcome.output),
             "seconds": round(outcome.seconds, 2) if outcome.seconds is not None else (old or {}).get("seconds"),
             "step": outcome.step}
    if state == "skipped" and old is not None:
        entry["state"] = old["state"]
    steps = [entry if s["name"] == outcome.name else s for s in steps] if old else [*steps, entry]
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(steps, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _run_step(kind: str, cfg: Any, run_dir: Path, inputs: dict[str, str], main: bool) -> Any:
    """Run one step in this process (or wait for the main process to run it); returns its StepResult."""
    from accelerate.state import AcceleratorState, GradientState

    from omni.config import to_data
    from omni.training.recipe_steps import STEPS, StepResult, mark_done
    from omni.training.trainer import keep_process_group

    spec = STEPS[kind]
    start = time.perf_counter()
    result = None
    with keep_process_group():
        if spec.all_ranks or main:
            result = spec.run(cfg, run_dir, inputs)
        # the main process may still be writing the step's output (train_lm exports without a barrier):
        # nobody starts the next step, which reads it, before it is on disk
        _barrier()
    if result is None:
        result = StepResult(_output(kind, run_dir))
    if not spec.training and main:
        mark_done(run_dir, {"kind": kind, "output": str(result.output), "seconds": time.perf_counter() - start,
                            "summary": result.summary, "config": to_data(cfg)})
    _barrier()
    AcceleratorState._reset_state()  # the next step builds its own Accelerator (same process group)
    GradientState._reset_state()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def run_pipeline(recipe: RecipeConfig, start: str | None = None, log: Any = print,
                 until: str | None = None) -> list[StageOutcome]:
    """Run the recipe's steps in order (skipping finished ones); stops after a training step that did not finish.

    Args:
        start: begin at this step (earlier steps must have finished).
        until: stop after this step (a bounded part of a recipe, e.g. its components and their gates).

    Raises:
        ValueError: an unknown start / until step, a step kind that is not a recipe step, or a step whose input
            is missing.
    """
    from omni.training.recipe_steps import STEPS

    names = [s.name for s in recipe.stages]
    for flag, name in (("--from", start), ("--until", until)):
        if name is not None and name not in names:
            raise ValueError(f"{flag}: no stage '{name}' in the recipe (stages: {', '.join(names)})")
    if start is not None and until is not None and names.index(until) < names.index(start):
        raise ValueError(f"--until {until} comes before --from {start}")
    first = names.index(start) if start else 0
    outcomes: list[StageOutcome] = []
    prev_model: StageOutcome | None = None
    main = int(os.environ.get("RANK", "0")) == 0  # no PartialState() here: each trainer sets up its own state
    root = Path(recipe.output_root)
    for k, entry in enumerate(recipe.stages):
        kind, cfg, run_dir = load_stage_config(entry, recipe, prev_model)
        spec = STEPS[kind]
        done = stage_done(kind, run_dir)
        if k < first or done:
            if k < first and not done:
                raise ValueError(f"--from {start}: the earlier stage '{entry.name}' has not finished ({run_dir})")
            outcome = StageOutcome(entry.name, kind, run_dir, _output(kind, run_dir), skipped=True)
            if k >= first and main:
                log(f"[{entry.name}] finished earlier: {outcome.output}")
                _log_step(root, outcome, "skipped")
        else:
            if main:
                log(f"[{entry.name}] {'training' if spec.training else 'running'} ({kind}) -> {run_dir}")
            if not spec.all_ranks:
                _ensure_group()
            t0 = time.perf_counter()
            inputs = {key: expand(v, recipe) for key, v in entry.inputs.items()}
            result = _run_step(kind, cfg, run_dir, inputs, main)
            outcome = StageOutcome(entry.name, kind, run_dir, result.output, skipped=False, step=result.step,
                                   complete=result.complete, seconds=time.perf_counter() - t0)
            if main:
                _log_step(root, outcome, "done" if result.complete else "stopped")
        outcomes.append(outcome)
        if spec.model:
            prev_model = outcome
        if not outcome.complete:
            if main:
                log(f"[{entry.name}] stopped at step {outcome.step}; rerun the same command to resume")
            break
        if entry.name == until:
            break
    return outcomes

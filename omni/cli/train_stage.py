"""`omni train stage CONFIG` (kind: stage) and `omni train pipeline RECIPE` (kind: recipe)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from omni.cli.common import user_errors


@user_errors
def stage_cmd(
    config: Path = typer.Argument(..., help="Stage YAML (kind: stage), e.g. configs/stages/audio_pretrain_1.yaml."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. loop.max_steps=100 data.packing=false."),
) -> None:
    """Train one stage: freeze / unfreeze parameter groups, per-group learning rates, the data mixture, packing or
    duration buckets; writes OUTPUT_DIR/final (the next stage's init_from). Resumable (rerun the same command);
    several processes with torchrun --nproc_per_node N $(which omni) train stage CONFIG.
    """
    from omni.config import load_config
    from omni.training.stage import StageConfig, train_stage

    cfg = load_config(config, StageConfig, overrides=overrides or [])
    run = train_stage(cfg)
    if run.final_dir is None:
        typer.echo(f"stopped at step {run.result.step}; rerun the same command to resume")
        return
    loss = run.result.last_metrics.get("eval/loss", run.result.last_metrics.get("loss"))
    typer.echo(f"stage '{cfg.name}': step {run.result.step}" + (f", loss {loss:.4f}" if loss is not None else "")
               + f"; model in {run.final_dir}")


@user_errors
def pipeline_cmd(
    recipe: Path = typer.Argument(..., help="Recipe YAML (kind: recipe), e.g. configs/recipes/tiny_smoke.yaml."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides of the recipe, e.g. output_root=runs/x."),
    start: str | None = typer.Option(None, "--from", help="Start at this stage (earlier ones must be finished)."),
    until: str | None = typer.Option(None, "--until", help="Stop after this stage (run a bounded part of the recipe)."),
) -> None:
    """Run a recipe's stages in order, each initialised from the previous one's output, skipping finished stages.
    Rerun the same command to resume after a crash.
    """
    from omni.config import load_config
    from omni.training.pipeline import RecipeConfig, run_pipeline

    cfg = load_config(recipe, RecipeConfig, overrides=overrides or [])
    outcomes = run_pipeline(cfg, start=start, log=typer.echo, until=until)  # user_errors ends the group the stages kept
    if int(os.environ.get("RANK", "0")):
        return
    for o in outcomes:
        done = f"step {o.step}" if o.step is not None else f"done in {o.seconds or 0:.1f} s"
        state = "skipped (finished earlier)" if o.skipped else (done if o.complete else f"stopped at step {o.step}")
        typer.echo(f"  {o.name:<24} {state:<28} {o.output or o.run_dir}")

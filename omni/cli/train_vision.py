"""`omni train vision CONFIG`: vision-tower warm-up (kind: vision_warmup)."""

from __future__ import annotations

from pathlib import Path

import typer

from omni.cli.common import user_errors


@user_errors
def vision_cmd(
    config: Path = typer.Argument(..., help="Warm-up YAML (kind: vision_warmup), e.g. configs/vision/tiny.yaml."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. loop.output_dir=runs/vision loop.max_steps=300."),
) -> None:
    """Train the vision tower and its projector to name each image's labelled attributes (a stand-in for a
    pretrained tower). Saves a Qwen2-VL checkpoint directory to OUTPUT_DIR/model (vision.path loads it).
    Resumable; multi-process with torchrun / accelerate launch.
    """
    from omni.config import load_config
    from omni.vision.warmup import VisionWarmupConfig, train_vision

    cfg = load_config(config, VisionWarmupConfig, overrides=overrides or [])
    run = train_vision(cfg)
    if run.model_dir is None:
        typer.echo(f"stopped at step {run.result.step}; rerun the same command to resume")
        return
    accs = {k[len("eval/acc/"):]: v for k, v in run.result.last_metrics.items() if k.startswith("eval/acc/")}
    shown = ", ".join(f"{k} {v:.3f}" for k, v in accs.items())
    typer.echo(f"step {run.result.step}" + (f"; dev accuracy: {shown}" if shown else "") + f"; saved to {run.model_dir}")

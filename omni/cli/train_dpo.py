"""`omni train dpo CONFIG` (kind: dpo): preference alignment of an SFT model."""

from __future__ import annotations

from pathlib import Path

import typer

from omni.cli.common import user_errors


@user_errors
def dpo_cmd(
    config: Path = typer.Argument(..., help="Preference stage YAML (kind: dpo), e.g. configs/stages/dpo.yaml."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. loss.type=simpo reference.mode=none."),
) -> None:
    """Align a model on preference pairs with DPO, IPO, SimPO, ORPO or KTO (text and speech responses), with a
    frozen-copy, LoRA-disabled or cached reference; writes OUTPUT_DIR/final. Resumable (rerun the same command);
    several processes with torchrun --nproc_per_node N $(which omni) train dpo CONFIG.
    """
    from omni.align.config import DPOConfig
    from omni.align.train import train_preference
    from omni.config import load_config

    cfg = load_config(config, DPOConfig, overrides=overrides or [])
    run = train_preference(cfg)
    if run.final_dir is None:
        typer.echo(f"stopped at step {run.result.step}; rerun the same command to resume")
        return
    m = run.result.last_metrics
    acc = m.get("eval/rewards/accuracies", m.get("rewards/accuracies"))
    typer.echo(f"{cfg.loss.type} '{cfg.name}': step {run.result.step}"
               + (f", reward accuracy {acc:.3f}" if acc is not None else "") + f"; model in {run.final_dir}")

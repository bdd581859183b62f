"""`omni train lm CONFIG`: text-LM warm-up (kind: lm)."""

from __future__ import annotations

from pathlib import Path

import typer

from omni.cli.common import user_errors


@user_errors
def lm_cmd(
    config: Path = typer.Argument(..., help="LM training YAML (kind: lm), e.g. configs/lm/tiny.yaml."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. loop.output_dir=runs/lm loop.max_steps=300."),
) -> None:
    """Train a causal text LM on manifest text (a tiny Qwen2 + corpus BPE, or continue a local pretrained LM).

    Saves model and tokenizer to OUTPUT_DIR/model (load with AutoModelForCausalLM.from_pretrained). Resumable;
    multi-process with torchrun.
    """
    from omni.config import load_config
    from omni.text.lm import LMTrainConfig, train_lm

    cfg = load_config(config, LMTrainConfig, overrides=overrides or [])
    run = train_lm(cfg)
    if run.model_dir is None:
        typer.echo(f"stopped at step {run.result.step}; rerun the same command to resume")
        return
    ppl = run.result.last_metrics.get("eval/perplexity")
    typer.echo(f"step {run.result.step}" + (f", dev perplexity {ppl:.2f}" if ppl else "") + f"; saved to {run.model_dir}")

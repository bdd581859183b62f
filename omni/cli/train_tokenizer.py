"""`omni train tokenizer CONFIG`: train the audio tokenizer (kind: tokenizer)."""

from __future__ import annotations

from pathlib import Path

import typer

from omni.cli.common import echo_table, user_errors


@user_errors
def tokenizer_cmd(
    config: Path = typer.Argument(..., help="Tokenizer training YAML (kind: tokenizer), e.g. configs/tokenizer/tiny.yaml."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. loop.output_dir=runs/tok loop.max_steps=500."),
) -> None:
    """Train the audio tokenizer (Whisper encoder + conv downsampler + RVQ, mel decoder, frozen-LM transcription loss).

    Resumable: rerun the same command to continue from the newest checkpoint. Multi-process with
    `torchrun --nproc_per_node N $(which omni) train tokenizer CONFIG`. Logs to OUTPUT_DIR/tensorboard; writes
    OUTPUT_DIR/eval_report.json, OUTPUT_DIR/figures/ and the trained tokenizer to OUTPUT_DIR/tokenizer.
    """
    from audio_tokenizer.train import TokenizerTrainConfig, train_tokenizer
    from omni.config import load_config

    cfg = load_config(config, TokenizerTrainConfig, overrides=overrides or [])
    run = train_tokenizer(cfg)
    if run.result.interrupted:
        typer.echo(f"stopped at step {run.result.step}; rerun the same command to resume")
        raise typer.Exit(0)
    metrics = run.metrics
    levels = [(i, k, f"{metrics.get(f'usage_{i}', float('nan')):.1%}", f"{metrics.get(f'perplexity_{i}', float('nan')):.1f}")
              for i, k in enumerate(cfg.model.quantizer.codebook_sizes)]
    if any(f"usage_{i}" in metrics for i in range(len(levels))):
        echo_table(levels, ("level", "size", "dev usage", "dev perplexity"))
    typer.echo(f"step {run.result.step}; tokenizer saved to {run.final_dir}")

"""`omni bundle ...`: assemble, inspect and fake checkpoint bundles (model + tokenizer + decoder)."""

from __future__ import annotations

from pathlib import Path

import typer

from omni.cli.common import user_errors

app = typer.Typer(help="Checkpoint bundles: every model of the assistant in one directory.", no_args_is_help=True)


@app.command("assemble")
@user_errors
def assemble_cmd(
    out: Path = typer.Option(..., "--out", help="Bundle directory to create."),
    model: Path = typer.Option(..., help="OmniModel directory (e.g. RUN/final of the last stage)."),
    audio_tokenizer: Path = typer.Option(..., help="AudioTokenizer directory."),
    flow: Path = typer.Option(..., help="Flow decoder directory."),
    vocoder: Path = typer.Option(..., help="Vocoder directory."),
    n_steps: int | None = typer.Option(None, help="Euler steps of the flow decoder at synthesis."),
    overwrite: bool = typer.Option(False, help="Replace an existing bundle at --out."),
) -> None:
    """Copy trained components into one bundle directory and check that they load and fit together."""
    from omni.bundle import BundleConfig, assemble_bundle

    cfg = BundleConfig(decoder={"n_steps": n_steps} if n_steps else {})
    path = assemble_bundle(out, model, audio_tokenizer, flow, vocoder, cfg, overwrite=overwrite)
    typer.echo(f"bundle written to {path}")


@app.command("tiny")
@user_errors
def tiny_cmd(
    out: Path = typer.Option(..., "--out", help="Bundle directory to create."),
    seed: int = typer.Option(0, help="Initialisation seed."),
    overwrite: bool = typer.Option(False, help="Replace an existing bundle at --out."),
) -> None:
    """Write a bundle of randomly initialised tiny components (tests and plumbing demos; it talks nonsense)."""
    from omni.bundle import tiny_bundle

    typer.echo(f"tiny bundle written to {tiny_bundle(out, seed=seed, overwrite=overwrite)}")


@app.command("info")
@user_errors
def info_cmd(path: Path = typer.Argument(..., help="Bundle directory.")) -> None:
    """Load a bundle and print its components, sizes and voices."""
    from omni.bundle import load_bundle

    b = load_bundle(path)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    typer.echo(f"bundle {b.path}: {b.config.description}")
    typer.echo(f"  model            {count(b.model) / 1e6:9.2f} M parameters, codebooks {b.model.cfg.codebook_sizes}")
    typer.echo(f"  audio tokenizer  {count(b.audio_tokenizer) / 1e6:9.2f} M parameters, {b.audio_tokenizer.frame_rate} Hz")
    typer.echo(f"  flow decoder     {count(b.speech_decoder.flow) / 1e6:9.2f} M parameters")
    typer.echo(f"  vocoder          {count(b.speech_decoder.vocoder) / 1e6:9.2f} M parameters, {b.speech_decoder.sample_rate} Hz")
    typer.echo(f"  voices           {', '.join(b.voices)}")

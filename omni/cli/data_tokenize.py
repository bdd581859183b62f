"""`omni data tokenize MANIFEST --tokenizer DIR`: cache audio-token codes for every clip of a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from omni.cli.common import user_errors


@user_errors
def tokenize_cmd(
    manifest: Path = typer.Argument(..., help="Input JSONL manifest (never modified)."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="Saved audio tokenizer directory (OUTPUT_DIR/tokenizer of 'omni train tokenizer')."),
    out: Path | None = typer.Option(None, "--out", help="Output manifest (default: <stem>.codes.jsonl beside the input)."),
    codes_dir: Path | None = typer.Option(None, "--codes-dir", help="Shard directory (default: codes/<out stem>/ beside the output)."),
    shard_size: int = typer.Option(1000, help="Clips per shard file."),
    batch_seconds: float = typer.Option(120.0, help="Padded seconds of audio per encoder batch (clips grouped by length)."),
    workers: int = typer.Option(1, help="Local worker processes (each takes every N-th shard); under torchrun ranks split the shards."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N, or auto (cuda when available)."),
    skip_bad: bool = typer.Option(False, "--skip-bad/--no-skip-bad", help="Leave unreadable clips without codes instead of stopping."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Encode every clip of MANIFEST with the tokenizer into sharded safetensors files and write a manifest whose
    rows carry `codes: {path, key}` next to every audio reference. Batched, resumable (rerun to continue; finished
    shards are kept), parallel over processes (--workers N, or torchrun --nproc_per_node N $(which omni) data tokenize ...).
    """
    import torch

    from audio_tokenizer.cache import tokenize_manifest

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    result = tokenize_manifest(manifest, tokenizer, out=out, codes_dir=codes_dir, shard_size=shard_size,
                               batch_seconds=batch_seconds, workers=workers, device=device, skip_bad=skip_bad,
                               progress=progress, log=typer.echo)
    if result.skipped:
        typer.secho(f"note: {len(result.skipped)} unreadable clips left without codes, e.g. {result.skipped[0]}",
                    fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{result.clips} clips in {result.shards} shards ({result.computed} written now) under "
               f"{result.codes_dir}; manifest {result.manifest} ({result.seconds:.1f} s)")

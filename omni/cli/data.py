"""`omni data ...`: build, check and prepare manifests."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from omni.cli import data_pairs, data_tokenize
from omni.cli.common import echo_table, user_errors

app = typer.Typer(help="Build, check and prepare data manifests.", no_args_is_help=True)


@app.command("check")
@user_errors
def check_cmd(
    manifests: list[Path] = typer.Argument(..., help="JSONL manifest files to check."),
    media: bool = typer.Option(True, "--media/--no-media", help="Open every referenced audio/image/video file."),
    max_seconds: float = typer.Option(600.0, help="Longest accepted audio in seconds."),
    duration_tolerance: float = typer.Option(0.1, help="Accepted difference (s) between a row's duration and its audio."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the reports as JSON to this file."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Validate every line of each manifest and print all problems, with line numbers, and a summary.

    Never stops at the first bad line and never modifies the input. Exit code 1 when any line is bad.
    """
    from omni.audio.io import AudioLimits
    from omni.data.check import CheckOptions, check_manifest

    options = CheckOptions(media=media, duration_tolerance=duration_tolerance, limits=AudioLimits(max_seconds=max_seconds))
    reports = []
    for path in manifests:
        report = check_manifest(path, options, progress=progress)
        reports.append(report)
        for err in report.errors:
            typer.echo(err.message(str(path)))
        status = "ok" if report.ok else f"{len(report.errors)} bad rows"
        typer.echo(f"{report.path}: {report.rows} rows, {status}, {report.total_seconds / 3600:.3f} h of audio")
    _print_totals(reports)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps([r.to_json() for r in reports], indent=2) + "\n", encoding="utf-8")
    bad = sum(len(r.errors) for r in reports)
    rows = sum(r.rows for r in reports)
    typer.echo(f"checked {len(reports)} manifest(s), {rows} rows: {bad} bad")
    if bad:
        raise typer.Exit(1)


def _print_totals(reports: list) -> None:
    """Rows and hours per task, speaker and language over all good rows of all manifests."""
    from collections import Counter, defaultdict

    rows_by_task: Counter = Counter()
    tables: dict[str, dict[str, float]] = {"task": defaultdict(float), "speaker": defaultdict(float),
                                           "language": defaultdict(float)}
    for r in reports:
        rows_by_task.update(r.rows_by_task)
        for name, table in (("task", r.seconds_by_task), ("speaker", r.seconds_by_speaker),
                            ("language", r.seconds_by_language)):
            for key, seconds in table.items():
                tables[name][key] += seconds
    if rows_by_task:
        echo_table([(t, n, f"{tables['task'][t] / 3600:.3f}") for t, n in sorted(rows_by_task.items())],
                   ("task", "rows", "hours"))
    for name in ("speaker", "language"):
        entries = [(k, f"{v / 3600:.3f}") for k, v in sorted(tables[name].items()) if v > 0]
        if entries:
            echo_table(entries, (name, "hours"))


@app.command("synth")
@user_errors
def synth_cmd(
    out: Path = typer.Option(..., "--out", help="Directory to write the corpus to (audio/ and *.jsonl)."),
    config: Path | None = typer.Option(None, "--config", help="Corpus YAML (kind: corpus); default settings if left out."),
    overrides: list[str] = typer.Argument(None, help="Dotted config overrides, e.g. seed=3 tts_voices=[flite:slt]."),
    utterances: int | None = typer.Option(None, help="Spoken prompts to render (default 4000: a few minutes)."),
    seed: int | None = typer.Option(None, help="Random seed; the same seed gives the same corpus."),
    workers: int = typer.Option(0, help="Rendering processes; 0 = one per CPU core."),
    overwrite: bool = typer.Option(False, help="Replace a corpus built with a different config in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Render the synthetic speech corpus (espeak-ng and flite voices) and its manifests.

    Writes 16 kHz and 24 kHz audio and manifests for ASR, TTS, spoken QA, spoken chat, interleaved
    text/speech, text chat and preference pairs, split train/dev/test by sentence, plus a test set in
    held-out voices. Deterministic for a seed; rerunning resumes an interrupted build.
    """
    from omni.data.synth.config import CorpusConfig
    from omni.data.synth.corpus import build_corpus

    extra = list(overrides or [])
    extra += [f"utterances={utterances}"] if utterances is not None else []
    extra += [f"seed={seed}"] if seed is not None else []
    cfg = _load_or_default(config, CorpusConfig, extra)
    summary = build_corpus(cfg, out, workers=workers, progress=progress, overwrite=overwrite)
    for note in summary.notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW, err=True)
    echo_table(sorted(summary.manifests.items()), ("manifest", "rows"))
    typer.echo(f"{summary.rendered} utterances, {summary.hours:.2f} h of speech in {out} ({summary.seconds:.0f} s)")


@app.command("images")
@user_errors
def images_cmd(
    out: Path = typer.Option(..., "--out", help="Directory to write the image set to (images/ and *.jsonl)."),
    config: Path | None = typer.Option(None, "--config", help="Image-set YAML (kind: images); defaults if left out."),
    overrides: list[str] = typer.Argument(None, help="Dotted config overrides, e.g. train_images=500 seed=2."),
) -> None:
    """Draw the synthetic image set (shapes, colours, counts, positions, digits) with caption and QA manifests.

    Deterministic for a seed; dev/test images are independent draws; rerunning skips images on disk.
    """
    from omni.data.synth.image_set import ImageSetConfig, build_image_set

    cfg = _load_or_default(config, ImageSetConfig, list(overrides or []))
    summary = build_image_set(cfg, out)
    echo_table(sorted(summary.manifests.items()), ("manifest", "rows"))
    typer.echo(f"{summary.drawn} images drawn in {out} ({summary.seconds:.1f} s)")


def _load_or_default(config: Path | None, cls: type, overrides: list[str]):
    """Load ``config`` into ``cls``, or build ``cls`` from the overrides alone."""
    from omni.config import from_data, load_config
    from omni.config.yaml_io import apply_overrides

    if config is not None:
        return load_config(config, cls, overrides=overrides)
    data, origins = apply_overrides({}, {}, overrides)
    return from_data(cls, data, origins, "command line")


@app.command("bpe")
@user_errors
def bpe_cmd(
    manifests: list[Path] = typer.Argument(..., help="Manifests whose text trains the tokenizer."),
    out: Path = typer.Option(..., "--out", help="Directory to save the tokenizer to (save_pretrained)."),
    vocab_size: int = typer.Option(1024, help="Vocabulary size including 256 bytes and special tokens."),
    min_frequency: int = typer.Option(2, help="Pairs seen fewer times are never merged."),
) -> None:
    """Train a byte-level BPE text tokenizer on the text of manifests (for tiny recipes)."""
    from omni.text.tokenizer import manifest_texts, train_bpe_tokenizer

    texts = manifest_texts(manifests)
    if not texts:
        raise ValueError("the manifests hold no text")
    tok = train_bpe_tokenizer(texts, vocab_size=vocab_size, min_frequency=min_frequency)
    tok.save_pretrained(str(out))
    n_tokens = sum(len(ids) for ids in tok(texts)["input_ids"])
    n_chars = sum(len(t) for t in texts)
    typer.echo(f"vocabulary {len(tok)} tokens; {len(texts)} texts, {n_chars / n_tokens:.2f} characters per token; saved to {out}")


# commands implemented in their own modules, one line each
app.command("tokenize")(data_tokenize.tokenize_cmd)

app.command("make-pairs")(data_pairs.make_pairs_cmd)
app.command("answer-rate")(data_pairs.answer_rate_cmd)

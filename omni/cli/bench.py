"""`omni bench [NAME...]`: the performance harness (see :mod:`omni.bench`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from omni.cli.common import user_errors


@user_errors
def bench_cmd(
    names: list[str] = typer.Argument(None, help="Benchmarks to run (default: all): ceilings, decode, streaming, "
                                      "speech_decoder, tokenizer, training, evaluation, plan. The ceilings always run first."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (cuda without a GPU: every benchmark skipped)."),
    out: Path = typer.Option(Path("reports/bench.json"), "--out", help="JSON results; the Markdown report is "
                             "written beside it with the suffix .md (its section for this device replaced)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (0: torch's default)."),
    repeats: int = typer.Option(3, "--repeats", help="Timed repeats per measurement (medians)."),
    quick: bool = typer.Option(False, "--quick", help="Smallest sizes, one repeat: checks the plumbing, not figures."),
) -> None:
    """Run the benchmarks in one process; print each figure and write OUT (JSON) and OUT with .md."""
    from omni.bench import (
        BenchConfig,
        BenchContext,
        run_benchmarks,
        summary,
        write_json,
        write_markdown,
    )

    ctx = BenchContext(BenchConfig(device=device, threads=threads, repeats=repeats, quick=quick))
    results = run_benchmarks(names or None, ctx, log=lambda s: typer.echo(s))
    command = "omni bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 else "omni bench"
    data = summary(results, ctx, command.strip())
    write_json(data, out)
    write_markdown(data, results, out.with_suffix(".md"))
    g = data["goals"]
    typer.echo(f"goals: {g['met']} met, {g['not_met']} not met, {g['skipped']} skipped; wrote {out} and "
               f"{out.with_suffix('.md')}")

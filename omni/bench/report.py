"""Writing the harness results: ``bench.json`` (stable keys) and ``bench.md`` (a table per device).

``bench.json``::

    {"command": "omni bench --device cpu", "created": "...", "machine": {...},
     "ceilings": {"bandwidth_gb_s": ..., "matmul_tflops": ..., "dtype": "float32"},
     "benchmarks": [{"name", "seconds", "skipped", "error", "figures": [{"name", "value", "unit",
                     "reference", "reference_name", "ratio", "goal", "met", "note", "skipped"}]}],
     "goals": {"met": n, "not_met": n, "skipped": n}}

``bench.md`` keeps one section per device: writing the CPU results keeps an earlier GPU section (and vice
versa), so one file holds both; a hand-written ``## Notes`` section (reading of the figures) is kept too.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

from omni.bench.core import BenchContext, BenchResult, Figure


def summary(results: list[BenchResult], ctx: BenchContext, command: str) -> dict:
    figs = [f for r in results for f in r.figures if f.goal is not None]
    skipped = sum(1 for f in figs if f.skipped) + sum(1 for r in results if (r.skipped or r.error))
    c = ctx.ceilings
    return {
        "command": command,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": ctx.machine(),
        "ceilings": None if c is None else {"bandwidth_gb_s": c.bandwidth / 1e9, "matmul_tflops": c.matmul_flops / 1e12,
                                            "dtype": c.dtype},
        "benchmarks": [r.to_json() for r in results],
        "goals": {"met": sum(1 for f in figs if f.met is True), "not_met": sum(1 for f in figs if f.met is False),
                  "skipped": skipped},
    }


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def write_json(data: dict, path: Path) -> None:
    """Atomic write (tmp file + rename) of ``data`` as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_json_safe(data), indent=2) + "\n")
    os.replace(tmp, path)


def _cell(f: Figure) -> tuple[str, str, str, str]:
    if f.skipped:
        return "-", "-", "-", f"skipped: {f.skipped}"
    ref = "-" if f.reference is None else f"{f.reference:.4g} ({f.reference_name})"
    goal = "-" if f.goal is None else f"{f.goal}: **{'met' if f.met else 'NOT met'}**"
    return f"{f.value:.4g} {f.unit}", ref, f"{f.ratio:.3f}", goal


def markdown_section(data: dict, results: list[BenchResult]) -> str:
    m = data["machine"]
    lines = [f"## {m['device'].upper()}", "",
             f"Command: `{data['command']}` ({data['created']}; torch {m['torch']}, {m['threads']} thread(s), "
             f"dtype {m['dtype']}{', ' + m['gpu'] if 'gpu' in m else ''}; load average at the end "
             f"{m.get('load_average', '?')})", "",
             f"Goals: {data['goals']['met']} met, {data['goals']['not_met']} not met, {data['goals']['skipped']} skipped.",
             "", "| benchmark | figure | ours | reference | ratio | goal | note |", "|---|---|---|---|---|---|---|"]
    for r in results:
        if r.skipped or r.error:
            lines.append(f"| {r.name} | - | - | - | - | {'skipped' if r.skipped else 'FAILED'}: "
                         f"{(r.skipped or r.error).replace('|', '/')} | |")
        for f in r.figures:
            v, ref, ratio, goal = _cell(f)
            lines.append(f"| {r.name} | {f.name} | {v} | {ref} | {ratio} | {goal} | {f.note.replace('|', '/')} |")
    lines += ["", "Seconds per benchmark: " + ", ".join(f"{r.name} {r.seconds:.0f}" for r in results) + "."]
    return "\n".join(lines) + "\n"


HEADER = """# Benchmarks (`omni bench`)

Every figure is a ratio against a reference measured in the same process and run (a peer implementation,
the machine's measured ceiling, or another mode of our code); goals are the issue's. Regenerate with the
command in each section.
"""


def write_markdown(data: dict, results: list[BenchResult], path: Path) -> None:
    """Write ``path``, replacing this device's section and keeping the other device's."""
    device = data["machine"]["device"].upper()
    sections = {}
    if path.exists():
        for m in re.finditer(r"^## (CPU|CUDA|Notes)\n(.*?)(?=^## |\Z)", path.read_text(), flags=re.S | re.M):
            sections[m.group(1)] = f"## {m.group(1)}\n{m.group(2)}"
    sections[device] = markdown_section(data, results)
    text = HEADER + "".join("\n" + sections[k].rstrip() + "\n" for k in ("CPU", "CUDA", "Notes") if k in sections)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

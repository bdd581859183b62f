"""``omni eval compare A.json B.json``: the differences between two evaluation reports.

Rows: the headline totals (WER, CER, error types, failures, RTF, throughput, and for speech output the
judge on references, the intelligibility gap and MCD), then WER per group, language and duration bucket
for every label present in either report. Deltas are B - A; relative deltas are (B - A) / A.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.eval.report import SCHEMA


@dataclass
class CompareRow:
    """One compared figure: its name, the value in A and in B (None if absent)."""

    name: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def relative(self) -> float | None:
        return None if self.delta is None or not self.a else self.delta / self.a


def load_report(path: str | Path) -> dict[str, Any]:
    """A report.json; clear errors for a missing file, bad JSON or another schema."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: report not found")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not an omni evaluation report (schema '{SCHEMA}' expected)")
    return report


def _get(d: dict | None, *keys: str) -> float | None:
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return float(d) if isinstance(d, (int, float)) else None


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> list[CompareRow]:
    """The rows of the comparison (see module docstring)."""
    rows = [CompareRow(name, _get(a, *keys), _get(b, *keys)) for name, keys in (
        ("wer", ("totals", "wer")), ("cer", ("totals", "cer")),
        ("substitutions", ("totals", "words", "substitutions")), ("deletions", ("totals", "words", "deletions")),
        ("insertions", ("totals", "words", "insertions")), ("reference words", ("totals", "words", "reference_length")),
        ("utterances", ("totals", "utterances")), ("failed", ("totals", "failed")), ("rtf", ("totals", "rtf")),
        ("utterances/s", ("totals", "utterances_per_second")), ("references wer", ("references", "wer")),
        ("intelligibility gap", ("intelligibility_gap",)), ("mcd (dB)", ("mcd", "mean")))]
    for section, label in (("by_group", "group"), ("by_language", "language"), ("by_duration", "duration")):
        names = list(dict.fromkeys([*a.get(section, {}), *b.get(section, {})]))
        rows += [CompareRow(f"wer {label} {n}", _get(a, section, n, "wer"), _get(b, section, n, "wer")) for n in names]
    return [r for r in rows if r.a is not None or r.b is not None]


def format_comparison(rows: list[CompareRow], a_name: str, b_name: str) -> str:
    """A text table: figure, A, B, B - A, relative."""

    def f(x: float | None) -> str:
        return "-" if x is None else (f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}")

    table = [("figure", "A", "B", "B - A", "rel")]
    table += [(r.name, f(r.a), f(r.b), "-" if r.delta is None else f"{r.delta:+.4g}",
               "-" if r.relative is None else f"{100 * r.relative:+.1f}%") for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(5)]
    lines = [f"A: {a_name}", f"B: {b_name}"]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(t, widths))) for t in table]
    return "\n".join(lines)

"""Evaluation reports: ``report.json`` (machine-readable, stable keys), ``report.md``, ``results.jsonl``, figures.

``report.json`` keys (every task)::

    schema          "omni-eval-report/1"
    task            "asr" | "tts" | "tokenizer" | "vocoder"
    manifest, system, judge, checkpoint, processes, created, config
    totals          utterances, scored, failed, wer, cer, words{hits, substitutions, deletions, insertions,
                    reference_length, rate}, chars{...}, audio_seconds, processing_seconds, rtf,
                    wall_seconds, utterances_per_second
    group_by        "speaker" (asr) or "voice" (tts, tokenizer, vocoder)
    by_group, by_language, by_duration     {label: totals without the wall-clock keys}
    failures        [{index, line, id, audio, group, reason}]

TTS and tokenizer reports add ``references`` (the judge on the manifest's own audio),
``wer_ratio`` (judge WER on ours / judge WER on the references floored at 1 point, the gate figure),
``intelligibility_gap`` (the same ratio, unfloored: None when the references score 0) and ``mcd``.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.eval.results import UtteranceResult, bucket_totals, failures, group_totals, summarize

SCHEMA = "omni-eval-report/1"


@dataclass
class ReportFiles:
    """Paths of what :func:`write_report` wrote."""

    json: Path
    markdown: Path
    results: Path
    figures: list[Path]


def build_report(task: str, results: list[UtteranceResult], *, manifest: str, system: str, config: dict,
                 wall_seconds: float, processes: int, bucket_seconds: float, max_bucket_seconds: float,
                 group_by: str = "speaker", judge: str | None = None, checkpoint: str | None = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report dictionary (see module docstring)."""
    totals = summarize(results)
    totals["wall_seconds"] = round(wall_seconds, 4)
    totals["utterances_per_second"] = totals["scored"] / wall_seconds if wall_seconds > 0 else None
    report = {
        "schema": SCHEMA, "task": task, "manifest": str(manifest), "system": system, "judge": judge,
        "checkpoint": checkpoint, "processes": processes,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config, "totals": totals, "group_by": group_by,
        "by_group": group_totals(results, lambda r: r.group or "(unknown)"),
        "by_language": group_totals(results, lambda r: r.language or "(unknown)"),
        "by_duration": bucket_totals(results, bucket_seconds, max_bucket_seconds),
        "failures": failures(results),
    }
    report.update(extra or {})
    return report


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: dict[str, Any], results: list[UtteranceResult], out_dir: str | Path,
                 plots: bool = True) -> ReportFiles:
    """Write ``results.jsonl``, ``report.json``, figures under ``figures/`` and ``report.md`` (atomically each)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res_path = out / "results.jsonl"
    _atomic_write(res_path, "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in results))
    figures: list[Path] = []
    if plots:
        from omni.eval.plots import plot_report

        figures = plot_report(report, out / "figures")
    json_path = out / "report.json"
    _atomic_write(json_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    md_path = out / "report.md"
    _atomic_write(md_path, markdown(report, [f.relative_to(out) for f in figures]))
    return ReportFiles(json_path, md_path, res_path, figures)


def finish_run(task: str, run: Any, cfg: Any, manifest: str | Path, system: str, out_dir: str | Path,
               group_by: str, *, checkpoint: str | Path | None = None, judge: str | None = None,
               extra: dict | None = None, plots: bool = True) -> tuple[dict[str, Any], ReportFiles]:
    """Build and write the report of a finished evaluation ``run`` (an ``EvalRun``) of config ``cfg``;
    with reference results (TTS / tokenizer runs) also ``references.jsonl``. Main process only."""
    from omni.config import to_data

    report = build_report(task, run.results, manifest=str(manifest), system=system, config=to_data(cfg),
                          wall_seconds=run.wall_seconds, processes=run.processes,
                          bucket_seconds=cfg.data.bucket_seconds, max_bucket_seconds=cfg.data.max_bucket_seconds,
                          group_by=group_by, judge=judge, checkpoint=str(checkpoint) if checkpoint else None,
                          extra=extra)
    files = write_report(report, run.results, out_dir, plots=plots)
    if run.extra.get("reference_results"):
        _atomic_write(Path(out_dir) / "references.jsonl", "".join(
            json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in run.extra["reference_results"]))
    return report, files


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _table(groups: dict[str, dict], label: str) -> list[str]:
    lines = [f"| {label} | utts | failed | WER | CER | S | D | I | N words | audio s | RTF |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in groups.items():
        w = t["words"]
        lines.append(f"| {name} | {t['utterances']} | {t['failed']} | {_pct(t['wer'])} | {_pct(t['cer'])} | "
                     f"{w['substitutions']} | {w['deletions']} | {w['insertions']} | {w['reference_length']} | "
                     f"{t['audio_seconds']:.1f} | {_num(t['rtf'])} |")
    return lines


def markdown(report: dict[str, Any], figures: list[Path] | None = None) -> str:
    """A human-readable summary of a report."""
    t = report["totals"]
    lines = [f"# {report['task'].upper()} evaluation: {report['system']}", "",
             f"* manifest: `{report['manifest']}`",
             f"* checkpoint: `{report['checkpoint']}`" if report.get("checkpoint") else "* checkpoint: -",
             f"* judge: {report['judge']}" if report.get("judge") else "* judge: - (the system's own transcripts)",
             f"* processes: {report['processes']}; created {report['created']}", "",
             "## Totals", "", *_table({"all": t}, "set"), "",
             f"Throughput: {_num(t['utterances_per_second'], 2)} utterances/s over {t['wall_seconds']:.1f} s wall "
             f"clock; RTF = processing seconds / audio seconds = {_num(t['rtf'])}."]
    if "references" in report:
        r = report["references"]
        lines += ["", "## The judge on the reference audio", "", *_table({"references": r}, "set"), "",
                  f"WER ratio (judge WER on the generated speech / judge WER on the references, the latter floored "
                  f"at 1 point): {_num(report.get('wer_ratio'))}"]
    if report.get("mcd"):
        m = report["mcd"]
        lines += ["", f"Mel-cepstral distortion to the references: {_num(m.get('mean'), 2)} dB over {m.get('count')} "
                      f"pairs ({m.get('formula', '')})."]
    if report.get("synthesis"):
        s = report["synthesis"]
        lines += ["", f"Synthesis: {_num(s.get('generated_seconds'), 1)} s of speech in "
                      f"{_num(s.get('seconds'), 1)} s (RTF {_num(s.get('rtf'))}); judge RTF {_num(s.get('judge_rtf'))}."]
    lines += ["", f"## By {report['group_by']}", "", *_table(report["by_group"], report["group_by"]),
              "", "## By language", "", *_table(report["by_language"], "language"),
              "", "## By duration", "", *_table(report["by_duration"], "bucket")]
    fails = report["failures"]
    lines += ["", f"## Failed utterances ({len(fails)})", ""]
    lines += [f"* line {f['line']} `{f['id']}` ({f['audio'] or 'no audio'}): {f['reason']}" for f in fails[:100]]
    if len(fails) > 100:
        lines.append(f"* ... and {len(fails) - 100} more (report.json lists all)")
    if figures:
        lines += ["", "## Figures", ""] + [f"![{p.stem}]({p.as_posix()})" for p in figures]
    return "\n".join(lines) + "\n"

"""Report figures (matplotlib, PNG): WER by group and duration bucket, error types, RTF."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, groups: dict[str, dict], title: str, key: str = "wer") -> None:
    names = list(groups)
    values = [100 * (groups[n][key] or 0.0) for n in names]
    ax.bar(range(len(names)), values, color="tab:blue")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel(f"{key.upper()} (%)")
    ax.set_title(title, fontsize=9)


def plot_report(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``wer_by_group.png``, ``errors.png`` and ``rtf.png`` under ``out_dir``; returns their paths."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    groups, buckets = report["by_group"], report["by_duration"]
    label = report["group_by"]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), width_ratios=[max(2, len(groups)), max(2, len(buckets))])
    _bars(axes[0], groups, f"WER by {label}")
    _bars(axes[1], buckets, "WER by duration")
    if report.get("references") and report["references"].get("wer") is not None:
        axes[0].axhline(100 * report["references"]["wer"], color="tab:red", ls="--", label="judge on references")
        axes[0].legend(fontsize=7)
    fig.suptitle(f"{report['task']}: {report['system']}" + (f" (judge {report['judge']})" if report.get("judge") else ""))
    fig.tight_layout()
    paths.append(out / "wer_by_group.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    sets = {"all": report["totals"], **groups}
    if report.get("references"):
        sets = {"references": report["references"], **sets}
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(sets) + 2), 4))
    names = list(sets)
    bottom = [0.0] * len(names)
    for kind, color in (("substitutions", "tab:orange"), ("deletions", "tab:red"), ("insertions", "tab:purple")):
        vals = []
        for n in names:
            w = sets[n]["words"]
            vals.append(100 * w[kind] / w["reference_length"] if w["reference_length"] else 0.0)
        ax.bar(range(len(names)), vals, bottom=bottom, label=kind, color=color)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("errors per 100 reference words")
    ax.set_title("Error types (word level)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "errors.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(buckets) + 2), 4))
    names = list(buckets)
    ax.bar(range(len(names)), [buckets[n]["rtf"] or 0.0 for n in names], color="tab:green")
    if report["totals"].get("rtf") is not None:
        ax.axhline(report["totals"]["rtf"], color="k", ls="--", label=f"all: {report['totals']['rtf']:.3f}")
        ax.legend(fontsize=7)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=7)
    ax.set_ylabel("real-time factor (processing s / audio s)")
    ax.set_title("RTF by duration" + (" (synthesis)" if report["task"] == "tts" else ""), fontsize=9)
    fig.tight_layout()
    paths.append(out / "rtf.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths

"""The recipe's one report: every evaluation's headline numbers against the goals, step wall times, plots.

Reads the ``report.json`` of each evaluation step (``omni eval`` layout; ``eval_qa``'s own), the final
``eval/*`` metrics of named training runs (``trainer_state.json``: DPO's held-out reward accuracy) and the
pipeline's step log (``<output_root>/pipeline_steps.json``) and writes ``report.json``, ``report.md`` and
``figures/{metrics,step_times}.png`` into the report step's directory.

Headline metrics per evaluation task: ``asr`` -> ``wer``, ``cer`` (also the codes' CTC gate, an ``asr`` report
of the ``codes-ctc`` recogniser); speech output (``tts``, and the ``tokenizer`` resynthesis and ``vocoder``
copy-synthesis gates) -> ``wer`` (judge on the generated speech), ``reference_wer`` (judge on the reference
audio), ``wer_ratio`` (their ratio, the intelligibility bar; the reference WER is floored at
:data:`omni.eval.speech.REFERENCE_WER_FLOOR`, so a judge that transcribes every reference perfectly still gives
a ratio); ``qa`` -> ``accuracy``. A goal names ``<eval name>.<metric>``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.config import check, option
from omni.eval.speech import wer_ratio

SPEECH_TASKS = ("tts", "tokenizer", "vocoder")


@dataclass
class RecipeReportConfig:
    """``kind: recipe_report``: gather the evaluations of a recipe into one Markdown + JSON report."""

    title: str = option("Recipe report", help="Heading of the report.")
    evals: dict[str, str] = option(default_factory=dict, help="Evaluation name -> its step directory (report.json).")
    train_runs: dict[str, str] = option(
        default_factory=dict, help="Training step name -> its run directory: the final eval/* metrics of its "
        "trainer_state.json are listed under that name (e.g. dpo -> rewards/accuracies on the held-out pairs).")
    steps_file: str | None = option(None, help="The pipeline's step log (<output_root>/pipeline_steps.json); null: none.")
    max_goals: dict[str, float] = option(default_factory=dict, help="'<eval>.<metric>' -> the most it may be.")
    min_goals: dict[str, float] = option(default_factory=dict, help="'<eval>.<metric>' -> the least it may be.")
    wav_samples: int = option(4, help="Sample wavs of speech evaluations listed per evaluation.")
    gates: list[str] = option(
        default_factory=list, help="Evaluation / training-run names that are component gates (the vocoder, the "
        "tokenizer, the codes, the text LM judged alone): their goals get their own table, before the end-to-end ones.")
    plan: dict[str, list[str]] = option(
        default_factory=dict, help="Compute plan: component label -> [its training step's name, its gates' names...]. "
        "The report tabulates each one's parameters (its exported safetensors), optimizer steps and wall minutes "
        "(the pipeline's step log) and its gate figures.")

    def __post_init__(self) -> None:
        for name in ("max_goals", "min_goals"):
            known = sorted({*self.evals, *self.train_runs})
            for key in getattr(self, name):
                check(key.split(".", 1)[0] in known and "." in key, name,
                      f"'{key}' must be '<name>.<metric>' with <name> one of {known}")
        check(self.wav_samples >= 0, "wav_samples", "must be >= 0")
        known = {*self.evals, *self.train_runs}
        check(all(g in known for g in self.gates), "gates", f"every gate must be one of {sorted(known)}")
        check(all(len(v) >= 1 for v in self.plan.values()), "plan", "each component needs its step name")


def headline(report: dict[str, Any]) -> dict[str, float | None]:
    """The headline metrics of one evaluation report (see the module docstring)."""
    t = report.get("totals", {})
    task = report.get("task")
    if task == "qa":
        return {"accuracy": t.get("accuracy"), "scored": t.get("scored")}
    out = {"wer": t.get("wer"), "cer": t.get("cer"), "scored": t.get("scored")}
    if task in SPEECH_TASKS:
        ref = (report.get("references") or {}).get("wer")
        out["reference_wer"] = ref
        out["wer_ratio"] = wer_ratio(t.get("wer"), ref)
    return out


def training_headline(run_dir: str | os.PathLike) -> dict[str, float | None]:
    """The final ``eval/*`` metrics of a training run (``trainer_state.json``), without the prefix.

    Raises:
        FileNotFoundError: the run has no trainer_state.json.
    """
    path = Path(run_dir) / "trainer_state.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (run that training step first)")
    state = json.loads(path.read_text(encoding="utf-8"))
    return {k[len("eval/"):]: v for k, v in (state.get("metrics") or {}).items() if k.startswith("eval/")}


def check_goals(metrics: dict[str, dict[str, Any]], cfg: RecipeReportConfig) -> list[dict[str, Any]]:
    """One row per goal: value, target, met (None when the metric is missing)."""
    rows = []
    for goals, op in ((cfg.max_goals, "<="), (cfg.min_goals, ">=")):
        for key, target in goals.items():
            name, metric = key.split(".", 1)
            value = metrics.get(name, {}).get(metric)
            met = None if value is None else (value <= target if op == "<=" else value >= target)
            rows.append({"goal": key, "op": op, "target": target, "value": value, "met": met})
    return rows


def _plots(metrics: dict[str, dict[str, Any]], steps: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    files = []
    bars = [(f"{n}.{m}", v) for n, ms in metrics.items() for m, v in ms.items()
            if m in ("wer", "accuracy", "reference_wer", "rewards/accuracies") and v is not None]
    if bars:
        fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(bars)), 3.2))
        ax.bar([b[0] for b in bars], [b[1] for b in bars], color="tab:blue")
        ax.set_ylabel("rate")
        ax.set_title("evaluations")
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        fig.tight_layout()
        files.append(out / "metrics.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    timed = [s for s in steps if s.get("seconds") is not None]
    if timed:
        fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(timed)), 3.2))
        ax.bar([s["name"] for s in timed], [s["seconds"] / 60 for s in timed], color="tab:orange")
        ax.set_ylabel("minutes")
        ax.set_title(f"step wall time (total {sum(s['seconds'] for s in timed) / 60:.1f} min)")
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        fig.tight_layout()
        files.append(out / "step_times.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    return files


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def count_parameters(model_dir: str | os.PathLike) -> int | None:
    """Parameters of an exported model: the tensors of every ``model.safetensors`` in ``model_dir`` and its
    sub-directories (read from the file headers only); None when there is none."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).rglob("model.safetensors")) if Path(model_dir).is_dir() else []
    if not files:
        return None
    total = 0
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                total += math.prod(st.get_slice(key).get_shape())
    return total


def compute_plan(cfg: RecipeReportConfig, steps: list[dict[str, Any]], goals: list[dict[str, Any]]) -> list[dict]:
    """One row per component of ``cfg.plan``: parameters of its exported model, optimizer steps and wall minutes
    (the step log), and the goals of its gates."""
    logged = {s["name"]: s for s in steps}
    rows = []
    for label, (step, *gates) in cfg.plan.items():
        entry = logged.get(step, {})
        secs = entry.get("seconds")
        rows.append({"component": label, "step": step,
                     "parameters": count_parameters(entry["output"]) if entry.get("output") else None,
                     "steps": entry.get("step"), "minutes": None if secs is None else secs / 60,
                     "gates": [g for g in goals if g["goal"].split(".", 1)[0] in gates]})
    return rows


def _goal_row(g: dict[str, Any]) -> str:
    met = "-" if g["met"] is None else ("yes" if g["met"] else "**no**")
    return f"| {g['goal']} | {_fmt(g['value'])} | {g['op']} {g['target']} | {met} |"


def markdown(report: dict[str, Any], figures: list[str]) -> str:
    """The report as Markdown."""
    gates = set(report.get("gates", []))
    lines = [f"# {report['title']}", ""]
    gate_goals = [g for g in report["goals"] if g["goal"].split(".", 1)[0] in gates]
    if gate_goals:
        lines += ["## Component gates", "", "| gate | value | target | met |", "|---|---:|---:|---|"]
        lines += [_goal_row(g) for g in gate_goals] + [""]
    if report.get("plan"):
        lines += ["## Compute plan", "", "| component | parameters | steps | minutes | gate |", "|---|---:|---:|---:|---|"]
        for r in report["plan"]:
            gate = "; ".join(f"{g['goal']} {_fmt(g['value'])}" for g in r["gates"]) or "-"
            params = "-" if r["parameters"] is None else f"{r['parameters'] / 1e6:.2f} M"
            mins = "-" if r["minutes"] is None else f"{r['minutes']:.1f}"
            lines.append(f"| {r['component']} | {params} | {_fmt(r['steps'])} | {mins} | {gate} |")
        lines.append("")
    lines += ["## Goals", "", "| goal | value | target | met |", "|---|---:|---:|---|"]
    lines += [_goal_row(g) for g in report["goals"] if g["goal"].split(".", 1)[0] not in gates]
    lines += ["", "## Evaluations", "", "| evaluation | metric | value |", "|---|---|---:|"]
    for name, ms in report["metrics"].items():
        lines += [f"| {name} | {m} | {_fmt(v)} |" for m, v in ms.items()]
    if report["samples"]:
        lines += ["", "## Sample wavs", ""]
        lines += [f"- {name}: " + ", ".join(f"`{p}`" for p in paths) for name, paths in report["samples"].items()]
    if report["steps"]:
        total = sum(s.get("seconds") or 0 for s in report["steps"])
        lines += ["", f"## Steps (wall time {total / 60:.1f} min this run)", "", "| step | kind | state | seconds |",
                  "|---|---|---|---:|"]
        lines += [f"| {s['name']} | {s['kind']} | {s['state']} | {_fmt(s.get('seconds'))} |" for s in report["steps"]]
    lines += [""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def write_recipe_report(cfg: RecipeReportConfig, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``figures/`` under ``out_dir``; returns their paths.

    Raises:
        FileNotFoundError: an evaluation directory without report.json.
    """
    out = Path(out_dir)
    metrics, samples = {}, {}
    for name, d in cfg.evals.items():
        path = Path(d) / "report.json"
        if not path.is_file():
            raise FileNotFoundError(f"evals.{name}: {path} not found (run that evaluation step first)")
        metrics[name] = headline(json.loads(path.read_text(encoding="utf-8")))
        wavs = sorted((Path(d) / "samples").rglob("*.wav"))[: cfg.wav_samples]
        if wavs:
            samples[name] = [str(w) for w in wavs]
    for name, d in cfg.train_runs.items():
        metrics[name] = training_headline(d)
    steps = []
    if cfg.steps_file and Path(cfg.steps_file).is_file():
        steps = json.loads(Path(cfg.steps_file).read_text(encoding="utf-8"))
    goals = check_goals(metrics, cfg)
    report = {"title": cfg.title, "goals": goals, "gates": list(cfg.gates), "plan": compute_plan(cfg, steps, goals),
              "metrics": metrics, "samples": samples, "steps": steps, "evals": dict(cfg.evals)}
    figures = _plots(metrics, steps, out / "figures")
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "report.json", "markdown": out / "report.md"}
    for key, text in (("json", json.dumps(report, indent=2) + "\n"),
                      ("markdown", markdown(report, [str(f.relative_to(out)) for f in figures]))):
        tmp = files[key].with_name(files[key].name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, files[key])
    return files

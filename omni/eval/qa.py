"""Answer accuracy of question answering (spoken QA, image QA): does the reply's text hold ``meta.answer_key``?

The synthetic corpus (``spoken_qa_*``, ``preference_*``) and image set (``image_qa_*``) carry the key of
each question's answer in ``meta.answer_key`` (e.g. ``"blue"``, ``"three"``); a reply is right when its
normalised text contains the key as whole words and its other number words come from the question or the
reference reply (:func:`omni.data.synth.domain.answer_matches` with :func:`omni.align.pairs.answer_context`, the
rule ``omni data make-pairs`` scores with): "The day after January sixth is January seventh." does not answer
"What comes after January fifth?" although it holds "January sixth". The prompt is the row's conversation up
to its last assistant turn, encoded with the training template (:func:`omni.align.pairs.encode_prompts`);
decoding is greedy text.

Writes ``report.json`` (``task: qa``, ``totals.accuracy``, per question kind) and ``report.md``.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni.config import check, option


@dataclass
class QaEvalConfig:
    """``kind: eval_qa``: text answers (greedy or beam search) scored against ``meta.answer_key``."""

    speech_in: bool = option(True, help="Hear the question as speech (code-cached manifest) or read its text.")
    max_rows: int = option(0, help="Score at most this many rows (0: all).")
    max_new_tokens: int = option(32, help="Most generated text tokens per answer.")
    batch_size: int = option(16, help="Prompts per generation batch.")
    beam_size: int = option(1, help="Beam width of the answers (1 = greedy; else transformers' beam search over the "
                            "prompt's embeddings, omni.model.beam).")
    group_by: str = option("question_kind", help="meta field whose values split the accuracy table.")

    def __post_init__(self) -> None:
        check(self.max_rows >= 0, "max_rows", "must be >= 0")
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.beam_size >= 1, "beam_size", "must be >= 1")


@dataclass
class QaScores:
    """Accuracy over scored rows (rows without ``meta.answer_key`` are not scored) and per group."""

    accuracy: float
    correct: int
    scored: int
    unscored: int
    by_group: dict[str, dict[str, float]] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)


def score_answers(rows: Sequence[Any], answers: Sequence[str], group_by: str = "question_kind") -> QaScores:
    """Score ``answers[i]`` (reply text) against ``rows[i].meta.answer_key`` (rows as :func:`prompt_rows` cuts them:
    the question in ``prompt``, the reference reply in ``chosen``)."""
    from omni.align.pairs import answer_context
    from omni.data.synth.domain import answer_matches

    if len(rows) != len(answers):
        raise ValueError(f"{len(rows)} rows but {len(answers)} answers")
    items, groups = [], {}
    unscored = 0
    for row, text in zip(rows, answers):
        meta = row.meta or {}
        key = meta.get("answer_key")
        if not key:
            unscored += 1
            continue
        ok = answer_matches(text, str(key), answer_context(row))
        g = str(meta.get(group_by, "(all)"))
        c, n = groups.get(g, (0, 0))
        groups[g] = (c + ok, n + 1)
        items.append({"id": row.id, "answer_key": key, "answer": text, "correct": ok, "group": g})
    correct = sum(i["correct"] for i in items)
    scored = len(items)
    by_group = {g: {"accuracy": c / n, "correct": c, "scored": n} for g, (c, n) in sorted(groups.items())}
    return QaScores(correct / scored if scored else 0.0, correct, scored, unscored, by_group, items)


def model_dir_of(checkpoint: str | os.PathLike) -> Path:
    """The omni model directory of a bundle (``bundle.yaml``) or of a saved model directory itself."""
    from omni.bundle import BundleConfig
    from omni.config import load_config

    path = Path(checkpoint)
    if (path / "bundle.yaml").is_file():
        return path / load_config(path / "bundle.yaml", BundleConfig).model_dir
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: checkpoint not found (a bundle or a saved omni model directory)")
    return path


def text_answers(model: Any, rows: Sequence[Any], manifest: str, speech_in: bool, max_new_tokens: int,
                 batch_size: int, beam_size: int = 1) -> list[str]:
    """Text reply of ``model`` to each row's prompt (rows already cut by :func:`prompt_rows`): greedy, or the best
    of ``beam_size`` beams."""
    import torch

    from omni.align.pairs import encode_prompts
    from omni.data.media import CachedMedia
    from omni.model.beam import text_replies

    vision = model.cfg.vision if model.vision is not None else None
    media = CachedMedia(list(model.cfg.codebook_sizes), vision)
    prompts = encode_prompts(model, rows, manifest, media, speech_in, speech_out=False)
    out: list[str] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            texts = text_replies(model, list(prompts[start:start + batch_size]), max_new_tokens, beam_size)
            out.extend(t.strip() for t in texts)
    return out


def evaluate_qa(cfg: QaEvalConfig, manifest: str | os.PathLike, checkpoint: str | os.PathLike,
                out_dir: str | os.PathLike) -> dict[str, Any]:
    """Answer every question of ``manifest`` with the checkpoint's model and write ``report.json`` / ``report.md``.

    Raises:
        FileNotFoundError: missing manifest or checkpoint; ValueError: a manifest with no question rows.
    """
    from omni.align.pairs import prompt_rows
    from omni.data.manifest import load_manifest
    from omni.model import OmniModel

    start = time.perf_counter()
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    rows = prompt_rows(load_manifest(manifest))[: cfg.max_rows or None]
    if not rows:
        raise ValueError(f"{manifest}: no rows with a question (a conversation with an assistant turn after a user one)")
    model = OmniModel.from_pretrained(model_dir_of(checkpoint))
    answers = text_answers(model, rows, str(manifest), cfg.speech_in, cfg.max_new_tokens, cfg.batch_size,
                           cfg.beam_size)
    scores = score_answers(rows, answers, cfg.group_by)
    from omni.config import to_data

    report = {
        "task": "qa", "manifest": str(manifest), "checkpoint": str(checkpoint), "config": to_data(cfg),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "totals": {"accuracy": scores.accuracy, "correct": scores.correct, "scored": scores.scored,
                   "unscored": scores.unscored, "wall_seconds": round(time.perf_counter() - start, 3)},
        "by_group": scores.by_group,
        "examples": scores.items[:20],
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / "results.jsonl", "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in scores.items))
    _atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _atomic(out / "report.md", markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: totals, per-group table, a few answers."""
    t = report["totals"]
    lines = [f"# Answer accuracy: {report['manifest']}", "", f"checkpoint `{report['checkpoint']}`", "",
             f"**accuracy {100 * t['accuracy']:.1f}%** ({t['correct']} / {t['scored']} questions; "
             f"{t['unscored']} rows without an answer key)", "", "| group | accuracy | questions |", "|---|---:|---:|"]
    lines += [f"| {g} | {100 * v['accuracy']:.1f}% | {v['scored']} |" for g, v in report["by_group"].items()]
    lines += ["", "| id | key | answer | right |", "|---|---|---|---|"]
    lines += [f"| {e['id']} | {e['answer_key']} | {e['answer'].replace('|', '/')[:80]} | {'yes' if e['correct'] else 'no'} |"
              for e in report["examples"][:10]]
    return "\n".join(lines) + "\n"


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

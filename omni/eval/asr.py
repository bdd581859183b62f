"""``omni eval asr``: recognise a manifest's speech, score it against its transcripts, report.

Pipeline (each rank of a data-parallel run does its share of the batches, see :mod:`omni.eval.data`)::

    manifest rows --read_items--> items (bad rows kept as failures) --plan_batches--> length-sorted batches
      --recognize_items--> transcripts + seconds --score_pair--> normalised texts, word / char counts
      --gather--> results in manifest order (rank 0) --report--> results.jsonl, report.json, report.md, figures/
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.config import check, option
from omni.eval.data import EvalDataConfig, plan_batches, rank_batches, read_items
from omni.eval.metrics import score_pair
from omni.eval.normalize import NORMALIZERS
from omni.eval.parallel import DistContext, gather
from omni.eval.recognize import recognize_items
from omni.eval.recognizers.base import Recognizer, RecognizerConfig
from omni.eval.results import UtteranceResult


@dataclass
class AsrEvalConfig:
    """``omni eval asr`` settings (``kind: eval_asr``)."""

    recognizer: RecognizerConfig = option(default_factory=RecognizerConfig, help="The system under test.")
    data: EvalDataConfig = option(default_factory=EvalDataConfig, help="Rows, batching and report buckets.")
    normalizer: str = option(
        "auto", help="Text normalisation before scoring: auto (Whisper's English normaliser for en, basic for "
        "other languages), whisper, basic or none.")

    def __post_init__(self) -> None:
        check(self.normalizer in NORMALIZERS, "normalizer", f"must be one of {', '.join(NORMALIZERS)}")


@dataclass
class EvalRun:
    """A finished evaluation (every rank's results merged).

    Attributes:
        results: per utterance, in manifest order.
        wall_seconds: the longest rank's wall-clock time of the processing loop.
        processes: number of ranks.
        extra: task-specific totals (TTS: reference results, ...).
    """

    results: list[UtteranceResult]
    wall_seconds: float
    processes: int
    extra: dict[str, Any]


def result_for(item, recognized, normalizer: str) -> UtteranceResult:
    """Score one item's transcript (or record its failure)."""
    row = item.row
    res = UtteranceResult(item.index, item.line, item.id, group=(row.speaker or "") if row else "",
                          language=row.language if row else None,
                          audio=str(item.audio_path) if item.audio_path else (row.audio if row else None),
                          duration=float(item.duration or 0.0), reference=(row.text or "") if row else "")
    if item.error is not None:
        res.error = item.error
        return res
    res.duration = recognized.audio_seconds or res.duration
    res.seconds, res.hypothesis, res.error = recognized.seconds, recognized.text, recognized.error
    if res.error is None:
        res.score = score_pair(res.reference, res.hypothesis, res.language, normalizer)
    return res


def evaluate_asr(cfg: AsrEvalConfig, manifest: str | Path, recognizer: Recognizer, ctx: DistContext,
                 progress: bool = True) -> EvalRun:
    """Recognise and score every row of ``manifest`` (this rank's batches), gather every rank's results."""
    d = cfg.data
    items = read_items(manifest, need_audio=True, need_text=True, limit=d.limit, max_audio_seconds=d.max_audio_seconds)
    batches = rank_batches(plan_batches(items, d.batch_size, d.sort_by_duration), ctx.rank, ctx.world)
    t0 = time.perf_counter()
    recognized = recognize_items(recognizer, items, batches, progress=progress and ctx.is_main,
                                 desc=f"asr [{recognizer.name}]")
    wall = time.perf_counter() - t0
    mine = [result_for(items[i], r, cfg.normalizer) for i, r in recognized.items()]
    if ctx.is_main:  # rows that failed before batching are reported once, by rank 0
        mine += [result_for(it, None, cfg.normalizer) for it in items if it.error is not None]
    merged = gather(ctx, [(r.index, r) for r in mine])
    walls = gather(ctx, [wall])
    results = [r for _, r in sorted(merged, key=lambda x: x[0])]
    return EvalRun(results, max(walls), ctx.world, {})

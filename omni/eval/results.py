"""Per-utterance results and their totals per group (speaker / voice, language, duration bucket).

Totals always sum counts and seconds, never average per-utterance rates (see :mod:`omni.eval.metrics`).
RTF = processing seconds / audio seconds (for TTS: synthesis seconds / generated audio seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omni.data.batching import duration_buckets
from omni.eval.metrics import ErrorCounts, PairScore


@dataclass
class UtteranceResult:
    """One evaluated utterance (one row, or one row x voice for TTS).

    Attributes:
        index, line, id: where the row is in the manifest.
        group: speaker (ASR) or voice (TTS) the totals are grouped by ('' if unknown).
        language: the row's language (None if unknown).
        audio: the audio file that was recognised (ASR) or saved (TTS samples), if any.
        duration: seconds of the recognised audio (ASR input; TTS: generated speech).
        reference, hypothesis: raw texts.
        score: normalised texts and error counts (None for a failed utterance).
        seconds: processing seconds attributed to it (its duration's share of its batch's time).
        error: why it failed (None when it was scored).
        extra: task-specific fields (TTS: mcd, judge on the reference, ...).
    """

    index: int
    line: int
    id: str
    group: str = ""
    language: str | None = None
    audio: str | None = None
    duration: float = 0.0
    reference: str = ""
    hypothesis: str = ""
    score: PairScore | None = None
    seconds: float = 0.0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.score is not None

    def to_json(self) -> dict[str, Any]:
        """The stable JSONL form (per-utterance results file)."""
        d: dict[str, Any] = {"index": self.index, "line": self.line, "id": self.id, "group": self.group,
                             "language": self.language, "audio": self.audio, "duration": round(self.duration, 4),
                             "status": "ok" if self.ok else "failed", "error": self.error,
                             "reference": self.reference, "hypothesis": self.hypothesis,
                             "seconds": round(self.seconds, 6)}
        if self.score is not None:
            d.update(reference_normalized=self.score.reference, hypothesis_normalized=self.score.hypothesis,
                     unit=self.score.unit, words=self.score.words.to_dict(), chars=self.score.chars.to_dict())
        d.update(self.extra)
        return d


def bucket_label(b: int, width: float, n_bins: int) -> str:
    lo, hi = b * width, (b + 1) * width
    return f"{lo:g}s+" if b == n_bins - 1 else f"{lo:g}-{hi:g}s"


def summarize(results: Iterable[UtteranceResult]) -> dict[str, Any]:
    """Totals of a set of results: counts, rates, failures, seconds and RTF (stable keys)."""
    results = list(results)
    ok = [r for r in results if r.ok]
    words = ErrorCounts.total(r.score.words for r in ok)  # type: ignore[union-attr]
    chars = ErrorCounts.total(r.score.chars for r in ok)  # type: ignore[union-attr]
    audio = float(sum(r.duration for r in ok))
    seconds = float(sum(r.seconds for r in ok))
    return {"utterances": len(results), "scored": len(ok), "failed": len(results) - len(ok),
            "wer": words.rate, "cer": chars.rate, "words": words.to_dict(), "chars": chars.to_dict(),
            "audio_seconds": round(audio, 4), "processing_seconds": round(seconds, 4),
            "rtf": seconds / audio if audio > 0 else None}


def group_totals(results: list[UtteranceResult], key: Callable[[UtteranceResult], str]) -> dict[str, Any]:
    """:func:`summarize` per group, groups in sorted order."""
    groups: dict[str, list[UtteranceResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return {k: summarize(groups[k]) for k in sorted(groups)}


def bucket_totals(results: list[UtteranceResult], width: float, max_seconds: float) -> dict[str, Any]:
    """:func:`summarize` per duration bucket (``width`` s bins over 0..``max_seconds``; failures left out)."""
    ok = [r for r in results if r.ok]
    if not ok:
        return {}
    n_bins = max(1, int(np.ceil(max_seconds / width)))
    ids = duration_buckets(np.array([r.duration for r in ok]), width, max_seconds)
    groups: dict[int, list[UtteranceResult]] = {}
    for r, b in zip(ok, ids.tolist()):
        groups.setdefault(b, []).append(r)
    return {bucket_label(b, width, n_bins): summarize(groups[b]) for b in sorted(groups)}


def failures(results: list[UtteranceResult]) -> list[dict[str, Any]]:
    """The failed utterances: id, line, audio file and reason."""
    return [{"index": r.index, "line": r.line, "id": r.id, "audio": r.audio, "group": r.group, "reason": r.error}
            for r in results if not r.ok]

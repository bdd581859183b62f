"""Manifest rows -> evaluation items -> length-sorted batches -> this rank's batches.

Every row gets an :class:`EvalItem` with its position in the manifest. Rows that cannot be evaluated
(bad JSON or schema, no audio / text where the evaluation needs it, a missing or unreadable audio file
header) are kept as items with an ``error``: they become failed utterances in the report (counted and
listed with file and reason), never a crash. An empty manifest is an error.

Batches are planned the same way on every process: usable items sorted by duration (longest first, ties
by manifest position), cut into ``batch_size`` runs; rank ``r`` of ``W`` takes batches ``r, r+W, ...``.
Because a batch's contents do not depend on the number of processes, a W-process run computes exactly
the batches of a 1-process run, and the merged results (in manifest order) are identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from omni.audio.io import Audio, AudioError, load_audio, probe_audio
from omni.config import check, option
from omni.data.manifest import ManifestRow, RowError, read_manifest, resolve_media


@dataclass
class EvalDataConfig:
    """Which rows are evaluated and how they are batched."""

    batch_size: int = option(8, help="Utterances per batch (recognition, synthesis and judging).")
    sort_by_duration: bool = option(
        True, help="Batch utterances of similar length together (less padding); false keeps manifest order.")
    limit: int | None = option(None, help="Evaluate only the first N rows of the manifest (null: all).")
    bucket_seconds: float = option(5.0, help="Width of the duration buckets of the report, in seconds.")
    max_bucket_seconds: float = option(30.0, help="Audio longer than this falls in the last bucket.")
    max_audio_seconds: float = option(120.0, help="Longer audio is a failed utterance (memory guard).")

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.limit is None or self.limit >= 1, "limit", "must be >= 1 or null")
        check(self.bucket_seconds > 0, "bucket_seconds", "must be > 0")
        check(self.max_bucket_seconds >= self.bucket_seconds, "max_bucket_seconds", "must be >= bucket_seconds")
        check(self.max_audio_seconds > 0, "max_audio_seconds", "must be > 0")


@dataclass
class EvalItem:
    """One manifest row as an evaluation item.

    Attributes:
        index: 0-based position among the manifest's rows (results are merged in this order).
        line: 1-based line in the manifest file.
        id: the row id ('' when the line could not be parsed).
        row: the validated row, or None for a bad line.
        audio_path: the resolved audio file (None when the row has none).
        duration: seconds of its audio segment (None when unknown).
        error: why it cannot be evaluated (None: usable).
    """

    index: int
    line: int
    id: str
    row: ManifestRow | None
    audio_path: Path | None = None
    duration: float | None = None
    error: str | None = None


def _audio_of(manifest: Path, row: ManifestRow) -> tuple[Path, float]:
    path = resolve_media(manifest, row.audio)
    if row.offset is None and row.duration is not None and path.is_file():
        return path, float(row.duration)
    info = probe_audio(path)  # header only; AudioError for missing / unreadable / truncated files
    if row.offset is not None and row.duration is not None:
        return path, float(row.duration)
    return path, info.duration - (row.offset or 0.0)


def read_items(manifest: str | os.PathLike, *, need_audio: bool, need_text: bool, limit: int | None = None,
               max_audio_seconds: float = 120.0) -> list[EvalItem]:
    """Every row of ``manifest`` as an :class:`EvalItem` (bad rows carry their ``error``).

    Raises:
        FileNotFoundError: no such manifest.
        ValueError: the manifest has no rows.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    items: list[EvalItem] = []
    for line, row in read_manifest(manifest):
        if limit is not None and len(items) >= limit:
            break
        index = len(items)
        if isinstance(row, RowError):
            items.append(EvalItem(index, line, row.id or "", None, error="; ".join(row.problems)))
            continue
        item = EvalItem(index, line, row.id, row)
        if need_text and not (row.text or "").strip():
            item.error = "no text"
        if row.audio is not None:
            try:
                item.audio_path, item.duration = _audio_of(manifest, row)
                if item.duration > max_audio_seconds:
                    item.error = item.error or f"audio too long: {item.duration:.1f} s > {max_audio_seconds:g} s"
            except (AudioError, ValueError, OSError) as e:
                item.error = item.error or str(e)
        elif need_audio:
            item.error = item.error or "no audio"
        items.append(item)
    if not items:
        raise ValueError(f"{manifest}: empty manifest (no rows to evaluate)")
    return items


def load_item_audio(item: EvalItem, sample_rate: int | None = None) -> Audio:
    """The item's audio segment (mono float32), resampled when ``sample_rate`` is given.

    Raises:
        AudioError: unreadable, truncated, NaN/Inf, silent, ... (naming the file).
    """
    assert item.row is not None and item.audio_path is not None
    return load_audio(item.audio_path, sample_rate, offset=item.row.offset or 0.0, duration=item.row.duration
                      if item.row.offset is not None else None)


def plan_batches(items: list[EvalItem], batch_size: int, sort_by_duration: bool = True) -> list[list[int]]:
    """Indices of usable items grouped into batches (the same on every process; see module docstring)."""
    usable = [it for it in items if it.error is None]
    if sort_by_duration:
        usable.sort(key=lambda it: (-(it.duration or 0.0), it.index))
    idx = [it.index for it in usable]
    return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]


def rank_batches(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """Rank ``rank``'s share: batches ``rank, rank + world, ...``."""
    return batches[rank::world]

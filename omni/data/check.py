"""Validate manifests line by line, media included, and summarise them.

``check_manifest`` reads every line (it never stops at the first bad one and
never writes to the input), parses it (:mod:`omni.data.manifest`), then
opens every referenced medium: audio is fully decoded and checked
(:func:`omni.audio.io.load_audio`: missing, unreadable, truncated, NaN,
silent, too long), its length compared with the row's ``duration``; images
are opened and verified with Pillow; videos must exist and be non-empty. The
result is a :class:`ManifestReport` with one :class:`RowError` per bad line
and hours per task, speaker and language.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from omni.audio.io import AudioError, AudioLimits, load_audio
from omni.config import check, option
from omni.data.manifest import (
    ManifestRow,
    MediaRef,
    RowError,
    media_refs,
    read_manifest,
    resolve_media,
)


@dataclass
class CheckOptions:
    """What ``omni data check`` verifies beyond the schema."""

    media: bool = option(True, help="Open every referenced audio/image/video file (False: schema only).")
    duration_tolerance: float = option(
        0.1, help="Largest accepted difference in seconds between a row's 'duration' and its audio file's length."
    )
    limits: AudioLimits = option(default_factory=AudioLimits, help="Audio checks (length limit, silence).")

    def __post_init__(self) -> None:
        check(self.duration_tolerance >= 0, "duration_tolerance", "must be >= 0")


@dataclass
class ManifestReport:
    """Outcome of checking one manifest file."""

    path: str
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    seconds_by_task: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    seconds_by_speaker: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    seconds_by_language: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    rows_by_task: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """True when no line has a problem."""
        return not self.errors

    @property
    def total_seconds(self) -> float:
        """Audio seconds over all good rows."""
        return sum(self.seconds_by_task.values())

    def to_json(self) -> dict:
        """Machine-readable summary (stable keys)."""
        return {
            "path": self.path,
            "rows": self.rows,
            "bad_rows": len(self.errors),
            "errors": [{"line": e.line, "id": e.id, "problems": e.problems} for e in self.errors],
            "hours_total": self.total_seconds / 3600,
            "rows_by_task": dict(self.rows_by_task),
            "hours_by_task": {k: v / 3600 for k, v in sorted(self.seconds_by_task.items())},
            "hours_by_speaker": {k: v / 3600 for k, v in sorted(self.seconds_by_speaker.items())},
            "hours_by_language": {k: v / 3600 for k, v in sorted(self.seconds_by_language.items())},
        }


class _MediaChecker:
    """Checks media files once each (rows often share files) and remembers the outcome."""

    def __init__(self, manifest: Path, options: CheckOptions):
        self.manifest = manifest
        self.options = options
        self._cache: dict[tuple, tuple[float | None, str | None]] = {}

    def check(self, ref: MediaRef) -> tuple[float, list[str]]:
        """(audio seconds, problems) for one reference."""
        try:
            path = resolve_media(self.manifest, ref.path)
        except ValueError as e:
            return 0.0, [f"{ref.where}: {e}"]
        key = (path, ref.kind, ref.offset, ref.duration)
        if key not in self._cache:
            self._cache[key] = self._open(path, ref)
        seconds, problem = self._cache[key]
        if problem:
            return 0.0, [f"{ref.where} '{ref.path}': {problem}"]
        return seconds or 0.0, []

    def _open(self, path: Path, ref: MediaRef) -> tuple[float | None, str | None]:
        if ref.kind == "audio":
            return self._audio(path, ref)
        if not path.is_file():
            return None, "file not found"
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
        if ref.kind == "image":
            from PIL import Image

            try:
                with Image.open(path) as im:
                    im.verify()
            except Exception as e:  # Pillow raises many types for bad files
                return None, f"unreadable image: {e}"
        return None, None

    def _audio(self, path: Path, ref: MediaRef) -> tuple[float | None, str | None]:
        whole_file = ref.offset is None  # then 'duration' declares the file's length
        try:
            audio = load_audio(path, None, offset=ref.offset or 0.0, duration=None if whole_file else ref.duration,
                               limits=self.options.limits)
        except AudioError as e:
            return None, e.problem
        if whole_file and ref.duration is not None:
            if abs(audio.duration - ref.duration) > self.options.duration_tolerance:
                return None, f"duration mismatch: row says {ref.duration:.3f} s, audio holds {audio.duration:.3f} s"
        return audio.duration, None


def check_manifest(path: str | os.PathLike, options: CheckOptions | None = None, progress: bool = True) -> ManifestReport:
    """Check every line of a manifest; see the module docstring.

    Raises:
        FileNotFoundError: the manifest does not exist (bad lines never raise).
    """
    options = options or CheckOptions()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    report = ManifestReport(str(path))
    media = _MediaChecker(path, options)
    first_line_of: dict[str, int] = {}
    for line, item in tqdm(read_manifest(path), desc=f"check {path.name}", unit=" rows", disable=not progress):
        report.rows += 1
        if isinstance(item, RowError):
            report.errors.append(item)
            continue
        problems: list[str] = []
        if item.id in first_line_of:
            problems.append(f"id: duplicate of line {first_line_of[item.id]}")
        else:
            first_line_of[item.id] = line
        seconds = 0.0
        if options.media:
            for ref in media_refs(item):
                s, p = media.check(ref)
                seconds += s
                problems += p
        if problems:
            report.errors.append(RowError(line, problems, item.id))
            continue
        _count(report, item, seconds)
    return report


def _count(report: ManifestReport, row: ManifestRow, seconds: float) -> None:
    report.rows_by_task[row.task] += 1
    report.seconds_by_task[row.task] += seconds
    report.seconds_by_speaker[row.speaker or "(none)"] += seconds
    lang = row.language or "(none)"
    report.seconds_by_language[f"{lang}-{row.region}" if row.region else lang] += seconds

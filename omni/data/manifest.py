"""Manifest rows: the JSONL schema every data set of the stack uses.

One JSON object per line. Media are referenced by path (relative paths are
relative to the manifest's directory and may not leave it; absolute paths are
taken as they are), never inlined. The full schema is documented in the
README ("Manifest format"); in short::

    {"id": "asr-000017", "task": "asr", "audio": "audio/16k/u000017.flac",
     "duration": 2.31, "text": "Turn on the kitchen lights.",
     "language": "en", "region": "US", "speaker": "espeak:en-us+m3"}

    {"id": "qa-000003", "task": "spoken_qa", "speaker": "flite:slt", "conversation": [
        {"role": "user", "audio": "audio/16k/u000311.flac", "text": "What is two plus three?"},
        {"role": "assistant", "text": "Two plus three is five.", "audio": "audio/24k/r000042.flac"}]}

    {"id": "pref-000001", "task": "preference",
     "prompt": [{"role": "user", "text": "What color is a banana?"}],
     "chosen": {"role": "assistant", "text": "A banana is yellow."},
     "rejected": {"role": "assistant", "text": "A banana is blue."}}

Parsing turns a line into a :class:`ManifestRow` or a :class:`RowError` with
the line number and every problem found in it; it never touches media files
(see :mod:`omni.data.check` for that).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from omni.config import ConfigError, from_data

#: Every task the stack knows, with the fields it needs (documented in the README).
TASKS: dict[str, str] = {
    "asr": "speech recognition: audio -> text",
    "tts": "speech synthesis: text -> audio (audio optional, as target or reference)",
    "s2tt": "speech translation: audio -> translation (text = transcript, optional)",
    "audio_qa": "question about audio: conversation whose first user turn has audio",
    "spoken_qa": "spoken question -> text (and spoken) answer: conversation, first user turn has audio",
    "spoken_chat": "multi-turn spoken conversation: conversation with audio in user turns",
    "interleaved": "document of sentences, some as speech: segments",
    "interleaved_tts": "document where each sentence's text is followed by its speech: segments, all with audio",
    "image_caption": "image -> caption: image and text",
    "image_qa": "question about an image: conversation with an image",
    "video_qa": "question about a video: conversation with a video",
    "text": "plain text (text) or text chat (conversation)",
    "preference": "preference pair: prompt, chosen, rejected",
    "kto": "unpaired preference: prompt, completion, label",
}

Role = Literal["system", "user", "assistant"]
_LANG = re.compile(r"^[a-z]{2,3}$")
_REGION = re.compile(r"^[A-Z]{2}$|^[0-9]{3}$")


@dataclass
class CodesRef:
    """Where the cached audio-token codes (T, K) of an audio reference live (see :mod:`omni.data.codes`)."""

    path: str
    key: str


@dataclass
class Turn:
    """One message of a conversation; at least one of text, audio, image, video."""

    role: Role = "user"
    text: str | None = None
    audio: str | None = None
    offset: float | None = None
    duration: float | None = None
    codes: CodesRef | None = None
    image: str | None = None
    video: str | None = None


@dataclass
class Segment:
    """One sentence of an interleaved document: its text and, optionally, its speech."""

    text: str
    audio: str | None = None
    offset: float | None = None
    duration: float | None = None
    codes: CodesRef | None = None


@dataclass
class ManifestRow:
    """One validated manifest line (unset fields are None)."""

    id: str
    task: str
    audio: str | None = None
    offset: float | None = None
    duration: float | None = None
    codes: CodesRef | None = None
    text: str | None = None
    translation: str | None = None
    language: str | None = None
    region: str | None = None
    target_language: str | None = None
    speaker: str | None = None
    image: str | None = None
    video: str | None = None
    conversation: list[Turn] | None = None
    segments: list[Segment] | None = None
    prompt: list[Turn] | None = None
    chosen: Turn | None = None
    rejected: Turn | None = None
    completion: Turn | None = None
    label: bool | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class MediaRef:
    """A media file a row refers to, with the JSON path of the reference (e.g. ``conversation.0.audio``)."""

    where: str
    kind: Literal["audio", "image", "video"]
    path: str
    offset: float | None = None
    duration: float | None = None


@dataclass
class RowError:
    """Everything wrong with one manifest line."""

    line: int
    problems: list[str] = field(default_factory=list)
    id: str | None = None

    def message(self, source: str) -> str:
        """``file:line: [id] problem; problem``."""
        ident = f" [{self.id}]" if self.id else ""
        return f"{source}:{self.line}:{ident} " + "; ".join(self.problems)


def media_refs(row: ManifestRow) -> list[MediaRef]:
    """Every audio/image/video path in ``row``, in document order."""
    refs: list[MediaRef] = []

    def add(obj: Any, where: str) -> None:
        if obj.audio is not None:
            refs.append(MediaRef(f"{where}audio", "audio", obj.audio, obj.offset, obj.duration))
        for kind in ("image", "video"):
            if getattr(obj, kind, None) is not None:
                refs.append(MediaRef(f"{where}{kind}", kind, getattr(obj, kind)))

    add(row, "")
    for name in ("conversation", "segments", "prompt"):
        for i, item in enumerate(getattr(row, name) or []):
            add(item, f"{name}.{i}.")
    for name in ("chosen", "rejected", "completion"):
        if getattr(row, name) is not None:
            add(getattr(row, name), f"{name}.")
    return refs


def _has_content(turn: Turn) -> bool:
    return any(v is not None for v in (turn.text, turn.audio, turn.image, turn.video))


def _content_problems(row: ManifestRow) -> list[str]:
    """Task requirements and value checks that typing alone cannot express."""
    p: list[str] = []
    if row.task not in TASKS:
        return [f"task: unknown task '{row.task}' (known: {', '.join(TASKS)})"]
    if not row.id.strip():
        p.append("id: empty")
    texts = [("text", row.text), ("translation", row.translation)]
    for name in ("conversation", "segments", "prompt"):
        texts += [(f"{name}.{i}.text", t.text) for i, t in enumerate(getattr(row, name) or [])]
    texts += [(f"{n}.text", getattr(row, n).text) for n in ("chosen", "rejected", "completion") if getattr(row, n)]
    p += [f"{where}: empty text" for where, t in texts if t is not None and not t.strip()]
    for ref in media_refs(row):
        if not ref.path.strip():
            p.append(f"{ref.where}: empty path")
        if ref.offset is not None and ref.offset < 0:
            p.append(f"{ref.where}: negative offset {ref.offset}")
        if ref.duration is not None and ref.duration <= 0:
            p.append(f"{ref.where}: duration must be > 0, got {ref.duration}")
        for name in ("offset", "duration"):  # NaN passes every comparison; inf is no length
            value = getattr(ref, name)
            if value is not None and not math.isfinite(value):
                p.append(f"{ref.where}: {name} must be a finite number, got {value}")
    if row.language is not None and not _LANG.match(row.language):
        p.append(f"language: expected an ISO 639 code like 'en', got '{row.language}'")
    if row.target_language is not None and not _LANG.match(row.target_language):
        p.append(f"target_language: expected an ISO 639 code like 'fr', got '{row.target_language}'")
    if row.region is not None and not _REGION.match(row.region):
        p.append(f"region: expected a region code like 'US' or 'CN', got '{row.region}'")
    for name in ("conversation", "prompt"):
        for i, turn in enumerate(getattr(row, name) or []):
            if not _has_content(turn):
                p.append(f"{name}.{i}: a turn needs text, audio, image or video")
    return p + _task_problems(row)


def _task_problems(row: ManifestRow) -> list[str]:
    t, conv = row.task, row.conversation or []
    need: list[str] = []
    if t == "asr":
        need += [f for f in ("audio", "text") if getattr(row, f) is None]
    elif t == "tts":
        need += ["text"] if row.text is None else []
    elif t == "s2tt":
        need += [f for f in ("audio", "translation") if getattr(row, f) is None]
    elif t == "image_caption":
        need += [f for f in ("image", "text") if getattr(row, f) is None]
    elif t in ("preference", "kto"):
        fields = ("prompt", "chosen", "rejected") if t == "preference" else ("prompt", "completion", "label")
        need += [f for f in fields if getattr(row, f) is None]
    elif t in ("interleaved", "interleaved_tts"):
        if not row.segments:
            need.append("segments")
        elif t == "interleaved_tts" and any(s.audio is None for s in row.segments):
            return ["segments: every segment of an interleaved_tts document needs audio"]
    elif t == "text":
        if row.text is None and not conv:
            return ["text or conversation: a text row needs one of them"]
    else:  # conversational tasks
        if not conv:
            need.append("conversation")
        else:
            return _conversation_problems(row)
    return [f"{f}: required for task '{t}'" for f in need]


def _conversation_problems(row: ManifestRow) -> list[str]:
    conv = row.conversation or []
    roles = [turn.role for turn in conv]
    p = []
    if "user" not in roles or "assistant" not in roles:
        p.append("conversation: needs at least one user and one assistant turn")
    users = [turn for turn in conv if turn.role == "user"]
    if row.task in ("spoken_qa", "audio_qa", "spoken_chat") and users and users[0].audio is None:
        p.append(f"conversation: the first user turn of a '{row.task}' row needs audio")
    if row.task == "image_qa" and row.image is None and not any(turn.image for turn in conv):
        p.append("conversation: an image_qa row needs an image")
    if row.task == "video_qa" and row.video is None and not any(turn.video for turn in conv):
        p.append("conversation: a video_qa row needs a video")
    return p


def parse_row(text: str, line: int) -> ManifestRow | RowError:
    """Parse one JSONL line into a row, or a RowError listing its problems."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return RowError(line, [f"invalid JSON: {e.msg} at column {e.colno}"])
    if not isinstance(obj, dict):
        return RowError(line, [f"expected a JSON object, got {type(obj).__name__}"])
    ident = obj.get("id") if isinstance(obj.get("id"), str) else None
    for name in ("chosen", "rejected", "completion"):  # TRL style: a one-message list
        if isinstance(obj.get(name), list) and len(obj[name]) == 1:
            obj[name] = obj[name][0]
    try:
        row = from_data(ManifestRow, obj)
    except ConfigError as e:
        return RowError(line, [f"{e.field}: {e.message}" if e.field else e.message], ident)
    problems = _content_problems(row)
    if problems:
        return RowError(line, problems, row.id)
    return row


def read_manifest(path: str | os.PathLike) -> Iterator[tuple[int, ManifestRow | RowError]]:
    """Yield (line number, row or error) for every non-blank line; never stops early.

    Raises:
        FileNotFoundError: the manifest itself does not exist.
    """
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield line_no, RowError(line_no, [f"not valid UTF-8 (byte {e.start})"])
                continue
            if text.strip():
                yield line_no, parse_row(text, line_no)


def load_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """All rows of a manifest; ValueError listing the first bad lines if any line is bad."""
    rows, errors = [], []
    for _, item in read_manifest(path):
        (errors if isinstance(item, RowError) else rows).append(item)
    if errors:
        shown = "\n".join(e.message(str(path)) for e in errors[:10])
        more = f"\n... and {len(errors) - 10} more bad lines" if len(errors) > 10 else ""
        raise ValueError(f"{path}: {len(errors)} bad lines (run 'omni data check {path}'):\n{shown}{more}")
    return rows


def resolve_media(manifest: str | os.PathLike, path: str) -> Path:
    """The file a manifest's media path points to.

    Relative paths are relative to the manifest's directory and may not leave
    it (``../`` escapes are refused); absolute paths are used as they are.
    Resolutions are remembered for the process (a stage's data index resolves every row's shard or image;
    each resolution walks the path's links), so a link changed while a process runs is not seen by it.

    Raises:
        ValueError: a relative path escaping the manifest's directory.
    """
    return _resolve_media(os.path.abspath(manifest), path)


@functools.lru_cache(maxsize=65536)
def _resolve_media(manifest: str, path: str) -> Path:
    p = Path(path)
    if p.is_absolute():
        return p
    root = _manifest_dir(manifest)
    resolved = (root / p).resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(f"path '{path}' leaves the manifest's directory {root}")
    return resolved


@functools.lru_cache(maxsize=1024)
def _manifest_dir(manifest: str) -> Path:
    return Path(manifest).resolve().parent


def row_to_json(row: ManifestRow) -> str:
    """One JSONL line for ``row``, omitting unset fields."""

    def clean(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj):
            return {f.name: clean(getattr(obj, f.name)) for f in dataclasses.fields(obj) if getattr(obj, f.name) is not None}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        return obj

    return json.dumps(clean(row), ensure_ascii=False)


def write_manifest(path: str | os.PathLike, rows: Iterable[ManifestRow]) -> int:
    """Write rows as JSONL atomically (temp file + rename); returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(row_to_json(row) + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n

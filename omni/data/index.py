"""The data index of a training stage: which examples each process reads, and how long each one is.

A stage reads several *sources* (one task on one or more code-cached manifests, with a mixture
ratio; optionally only the rows whose fields match ``where``, e.g. one question kind of an image QA
manifest, so that rare kinds can get a share of their own). Every source's non-blank (kept) lines
are dealt round-robin into ``num_shards`` shards (line ``n`` of the source goes to shard ``n % num_shards``); a process parses only the lines of its own shards,
so its memory falls linearly with the number of processes (the design brief, section 8).

Indexing a shard:

1. parse its lines (a bad line is a :class:`DataIssue`: skipped, logged and counted);
2. for sources with ``concat_seconds``, merge consecutive short clips of the same language/region
   into one example of at most that many seconds: an *index of clip lists*, merged on the fly when
   the example is loaded, never by rewriting audio (Dolphin: 25-30 s examples cut deletions);
3. format and tokenize every example with shape-only media (:class:`~omni.data.media.ShapeMedia`) to
   get its exact length in tokens and its seconds of audio, for packing and duration bucketing.
   Examples longer than ``max_seq_len`` are left out (counted as too long; a merged group that is
   too long is split back into its clips).

A source whose failed lines exceed ``max_bad_fraction`` stops the run with a message listing them.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omni.config import check, option
from omni.data.formatters import (
    CONCATENABLE,
    FORMATTERS,
    DataError,
    FormatConfig,
    RowContext,
    encode_sample,
    format_rows,
    formatter_for,
)
from omni.data.manifest import ManifestRow, RowError, parse_row
from omni.model.batch import OmniExample

log = logging.getLogger("omni.data")


@dataclass
class SourceConfig:
    """One task on one or more (code-cached) manifests, with its share of the mixture."""

    name: str = option(help="Name of the source (in logs and the data report).")
    manifests: list[str] = option(help="JSONL manifests (the .codes.jsonl written by 'omni data tokenize' for audio).")
    task: str | None = option(
        None, help="Formatter: asr, tts, s2tt, audio_qa, spoken_chat, image_caption, image_qa, video_qa, text, "
        "interleaved (INTLV) or interleaved_tts (ITTS); null: each row's own task.")
    ratio: float = option(1.0, help="Share of this source in the mixture (normalised over the stage's sources).")
    concat_seconds: float = option(
        0.0, help="asr/tts/s2tt: merge consecutive clips of the same language and region into examples of at most "
        "this many seconds (Dolphin: 25-30); 0 keeps clips as they are.")
    max_rows: int = option(0, help="Read at most this many lines of the manifests (0: all; counted after `where`).")
    where: dict[str, str] = option(
        default_factory=dict, help="Keep only the rows whose fields have these values, compared as text: a row "
        "field or a dotted path into it, e.g. {meta.question_kind: position, language: en} (quote numbers: "
        "{meta.count: '1'}). Empty: every row.")

    def __post_init__(self) -> None:
        check(bool(self.name.strip()), "name", "must be set")
        check(bool(self.manifests), "manifests", "needs at least one manifest")
        check(self.task is None or self.task in FORMATTERS, "task",
              f"unknown formatter '{self.task}'; known: {', '.join(FORMATTERS)}")
        check(self.ratio >= 0, "ratio", f"must be >= 0, got {self.ratio}")
        check(self.concat_seconds >= 0, "concat_seconds", "must be >= 0")
        check(self.concat_seconds == 0 or self.task in CONCATENABLE, "concat_seconds",
              f"clip concatenation needs task set to one of {', '.join(CONCATENABLE)}")
        check(self.max_rows >= 0, "max_rows", "must be >= 0")
        check(all(k.strip() and all(k.split(".")) for k in self.where), "where",
              f"keys must be field names or dotted paths, got {sorted(self.where)}")


@dataclass
class DataIssue:
    """A line that did not become an example."""

    source: str
    manifest: str
    line: int
    problem: str

    def message(self) -> str:
        return f"{self.manifest}:{self.line}: {self.problem}"


@dataclass
class RawRow:
    """One manifest line kept as text until it is needed."""

    manifest: str
    line: int
    text: str

    def parse(self) -> ManifestRow:
        row = parse_row(self.text, self.line) if not self.text.startswith("\0") else RowError(self.line, [self.text[1:]])
        if isinstance(row, RowError):
            ident = f"[{row.id}] " if row.id else ""
            raise DataError(ident + "; ".join(row.problems))
        return row


@dataclass
class Part:
    """The examples of one source in one shard.

    Attributes:
        rows: the shard's lines of the source.
        items: per example, the positions in ``rows`` it is made of (one, or several merged clips).
        lengths: (n,) tokens per example; seconds: (n,) seconds of audio per example; tasks: formatter names.
    """

    rows: list[RawRow] = field(default_factory=list)
    items: list[tuple[int, ...]] = field(default_factory=list)
    lengths: np.ndarray | list[int] = field(default_factory=list)
    seconds: np.ndarray | list[float] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class SourceStats:
    """Counts of one source over the shards this process read."""

    rows: int = 0
    examples: int = 0
    bad: int = 0
    too_long: int = 0
    tokens: int = 0
    seconds: float = 0.0
    tasks: Counter = field(default_factory=Counter)


@dataclass
class DataIndex:
    """Examples of every source in the shards of this process: ``parts[(shard, source)]``."""

    sources: list[SourceConfig]
    shards: list[int]
    num_shards: int
    parts: dict[tuple[int, int], Part]
    stats: list[SourceStats]
    issues: list[DataIssue]

    @property
    def num_examples(self) -> int:
        return sum(len(p) for p in self.parts.values())

    @property
    def num_rows(self) -> int:
        return sum(s.rows for s in self.stats)


@dataclass
class Encoder:
    """Everything needed to turn rows into an :class:`OmniExample` (shared by index and data set)."""

    tokenizer: object
    ids: object
    fmt: FormatConfig
    seed: int
    merge_size: int = 2
    think_block: bool = False

    def __call__(self, rows: list[RawRow], task: str | None, media: object) -> tuple[OmniExample, str]:
        parsed = [r.parse() for r in rows]
        ctx = RowContext(rows[0].manifest, rows[0].line, self.seed, media, self.fmt)
        sample = format_rows(parsed, task, ctx)
        return encode_sample(sample, self.tokenizer, self.ids, merge_size=self.merge_size,
                             think_block=self.think_block), sample.task


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"\0not valid UTF-8 (byte {e.start})"


def _field_text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _field(row: dict, key: str) -> str | None:
    """The value at the dotted path ``key`` of a manifest row, as ``where`` compares it (None: absent)."""
    value: object = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else _field_text(value)


def row_matches(text: str, where: dict[str, str]) -> bool:
    """Whether the manifest line ``text`` has every field value of ``where`` (see :class:`SourceConfig`). A line
    that is not a JSON object is kept, so that indexing reports it as a bad line rather than hiding it."""
    if not where:
        return True
    try:
        row = json.loads(text)
    except ValueError:
        return True
    if not isinstance(row, dict):
        return True
    return all(_field(row, key) == want for key, want in where.items())


def _no_match(source: SourceConfig, lines: int, sample: int = 2000, shown: int = 12) -> DataError:
    """The error for a ``where`` that kept none of a source's ``lines``, with the values its fields take in the
    first ``sample`` lines (a misspelt value is the usual cause)."""
    values: dict[str, Counter] = {key: Counter() for key in source.where}
    seen = 0
    for manifest in source.manifests:
        with open(manifest, "rb") as f:
            for raw in f:
                if seen >= sample:
                    break
                try:
                    row = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    seen += 1
                    for key in values:
                        values[key][_field(row, key) or "(absent)"] += 1
    found = "; ".join(f"{key} takes {', '.join(v for v, _ in c.most_common(shown))}"
                      + (" ..." if len(c) > shown else "") for key, c in values.items())
    return DataError(f"source '{source.name}': where {source.where} matches none of the {lines} lines of "
                     f"{', '.join(source.manifests)} ({found or 'no JSON rows'})")


def read_shards(source: SourceConfig, shards: list[int], num_shards: int) -> dict[int, list[RawRow]]:
    """The lines of ``source`` (those matching ``source.where``) dealt to each of ``shards`` (kept line ``n`` to
    shard ``n % num_shards``); only those lines are kept.

    Raises:
        FileNotFoundError: a manifest is missing.
        DataError: ``where`` keeps none of the lines (the message lists the values its fields take).
    """
    out: dict[int, list[RawRow]] = {j: [] for j in shards}
    n = lines = 0
    for manifest in source.manifests:
        if not Path(manifest).is_file():
            raise FileNotFoundError(f"{manifest}: manifest not found (source '{source.name}')")
        with open(manifest, "rb") as f:
            for line_no, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                lines += 1
                text = _decode(raw) if source.where else None  # other shards' lines are decoded only to filter
                if text is not None and not row_matches(text, source.where):
                    continue
                j = n % num_shards
                n += 1
                if j in out:
                    out[j].append(RawRow(str(manifest), line_no, text if text is not None else _decode(raw)))
                if source.max_rows and n >= source.max_rows:
                    return out
    if source.where and lines and not n:
        raise _no_match(source, lines)
    return out


def concat_groups(keys: list[tuple | None], seconds: list[float | None], max_seconds: float) -> list[tuple[int, ...]]:
    """Group consecutive usable rows (seconds not None) into runs of at most ``max_seconds`` with the same
    key (a row's language and region); a clip longer than ``max_seconds`` stays alone."""
    groups: list[tuple[int, ...]] = []
    cur: list[int] = []
    total, key = 0.0, None
    for i, (k, sec) in enumerate(zip(keys, seconds)):
        if sec is None:
            continue
        if cur and (k != key or total + sec > max_seconds):
            groups.append(tuple(cur))
            cur, total = [], 0.0
        cur.append(i)
        total += sec
        key = k
    if cur:
        groups.append(tuple(cur))
    return groups


def build_index(sources: list[SourceConfig], shards: list[int], num_shards: int, encode: Encoder, media: object,
                max_seq_len: int, frame_rate: float, max_bad_fraction: float,
                warn: Callable[[str], None] | None = None) -> DataIndex:
    """Read, check and measure every example of ``sources`` in ``shards`` (see the module docstring).

    Raises:
        DataError: a source whose failed lines exceed ``max_bad_fraction`` (listing the first problems).
        FileNotFoundError: a missing manifest.
    """
    warn = warn or log.warning
    parts: dict[tuple[int, int], Part] = {}
    stats = [SourceStats() for _ in sources]
    issues: list[DataIssue] = []
    for i, source in enumerate(sources):
        st, mine = stats[i], []

        def bad(row: RawRow, problem: str, source: SourceConfig = source, st: SourceStats = st, mine: list = mine) -> None:
            issue = DataIssue(source.name, row.manifest, row.line, problem)
            st.bad += 1
            mine.append(issue)
            if len(mine) <= 20:
                warn(f"skipping {issue.message()}")

        for j, rows in read_shards(source, shards, num_shards).items():
            st.rows += len(rows)
            part = Part(rows=rows)
            for group in _groups(rows, source, media, frame_rate, bad):
                _measure(part, group, source, encode, media, max_seq_len, frame_rate, st, bad)
            part.lengths = np.asarray(part.lengths, dtype=np.int64)
            part.seconds = np.asarray(part.seconds, dtype=np.float64)
            parts[(j, i)] = part
        if len(mine) > 20:
            warn(f"source '{source.name}': ... and {len(mine) - 20} more skipped lines")
        if st.too_long:
            warn(f"source '{source.name}': {st.too_long} examples longer than max_seq_len = {max_seq_len} tokens left out")
        issues.extend(mine)
        if st.rows and st.bad / st.rows > max_bad_fraction:
            shown = "\n  ".join(x.message() for x in mine[:5])
            raise DataError(f"source '{source.name}': {st.bad} of {st.rows} lines ({st.bad / st.rows:.0%}) could not be "
                            f"used, more than data.max_bad_fraction = {max_bad_fraction:g}; first problems:\n  {shown}\n"
                            f"(check the manifests with 'omni data check')")
    return DataIndex(list(sources), list(shards), num_shards, parts, stats, issues)


def _groups(rows: list[RawRow], source: SourceConfig, media: object, frame_rate: float,
            bad: Callable[[RawRow, str], None]) -> list[tuple[int, ...]]:
    """Examples as tuples of row positions: single rows, or merged clips with ``concat_seconds``."""
    if not source.concat_seconds:
        return [(k,) for k in range(len(rows))]
    seconds: list[float | None] = []
    keys: list[tuple | None] = []
    for row in rows:
        try:
            parsed = row.parse()
            if parsed.audio is None:
                raise DataError(f"row '{parsed.id}': no audio to concatenate")
            seconds.append(media.codes(row.manifest, parsed, f"row '{parsed.id}' audio").shape[0] / frame_rate)
            keys.append((parsed.language, parsed.region))
        except DataError as e:
            bad(row, str(e))
            seconds.append(None)
            keys.append(None)
    return concat_groups(keys, seconds, source.concat_seconds)


def _measure(part: Part, group: tuple[int, ...], source: SourceConfig, encode: Encoder, media: object,
             max_seq_len: int, frame_rate: float, st: SourceStats, bad: Callable[[RawRow, str], None]) -> None:
    rows = [part.rows[k] for k in group]
    try:
        if source.task is None:
            formatter_for(rows[0].parse(), None)
        example, task = encode(rows, source.task, media)
    except (DataError, ValueError) as e:
        if len(group) > 1:  # find the bad clip: measure the clips one by one
            for k in group:
                _measure(part, (k,), source, encode, media, max_seq_len, frame_rate, st, bad)
            return
        bad(rows[0], _short(e))
        return
    if len(example) > max_seq_len:
        if len(group) > 1:
            for k in group:
                _measure(part, (k,), source, encode, media, max_seq_len, frame_rate, st, bad)
        else:
            st.too_long += 1
        return
    part.items.append(group)
    part.lengths.append(len(example))
    part.seconds.append(example.audio_codes.shape[0] / frame_rate)
    part.tasks.append(task)
    st.examples += 1
    st.tokens += len(example)
    st.seconds += example.audio_codes.shape[0] / frame_rate
    st.tasks[task] += 1


def _short(e: Exception) -> str:
    text = str(e)
    return text if len(text) < 400 else text[:400] + "..."

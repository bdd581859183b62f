"""Preference data: manifest rows -> (prompt + response) examples -> one batch with both responses.

Rows (see the README's manifest table)::

    {"id": "p1", "task": "preference", "prompt": [{"role": "user", "text": "...", "audio": "q.flac", "codes": {...}}],
     "chosen": {"role": "assistant", "text": "The sky is blue.", "audio": "a.flac", "codes": {...}},
     "rejected": {"role": "assistant", "text": "The sky is green.", "audio": "b.flac", "codes": {...}}}
    {"id": "k1", "task": "kto", "prompt": [...], "completion": {...}, "label": true}

Each response is rendered after its prompt by the staged-training formatters (the ``spoken_chat``
formatter with ``speech_out``, else ``audio_qa``): user speech as audio frames (or its text with
``speech_in: false``), earlier assistant turns as context, the response as the only target: its text
and, when spoken, every frame with all K codebooks. Unpaired (KTO) training also reads preference
rows, as two completions (chosen: desirable, rejected: undesirable), as TRL's
``unpair_preference_dataset`` does.

Batch layout (:class:`PreferenceCollate`), B pairs -> 2B padded rows, TRL's ``[chosen | rejected]``::

    pairs p0 = (prompt [1 2 3], chosen [4 5], rejected [6]), p1 = (prompt [7 8], chosen [9], rejected [10 11])
    input_ids   [[1, 2, 3, 4, 5],      # p0 chosen     rows 0..B-1: chosen responses
                 [7, 8, 9, 0, 0],      # p1 chosen
                 [1, 2, 3, 6, 0],      # p0 rejected   rows B..2B-1: rejected responses, same order
                 [7, 8, 10, 11, 0]]    # p1 rejected
    labels      [[-100, -100, -100, 4, 5], [-100, -100, 9, -100, -100], [-100, -100, -100, 6, -100], ...]
    ref_logps   (2B,) cached reference log-probs in the same order, or None

Unpaired batches (KTO): rows 0..B-1 are the completions, rows B..2B-1 the mismatched pairs for the
KL estimate (prompt i with completion i-1, cyclically, as TRL builds them), ``desirable`` (B,) the labels.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from omni.config import check, option
from omni.data.formatters import FORMATTERS, DataError, FormatConfig, RowContext, encode_sample
from omni.data.index import RawRow
from omni.data.manifest import ManifestRow, Turn
from omni.model.batch import IGNORE, OmniBatch, OmniExample, collate

log = logging.getLogger("omni.align")


@dataclass
class PreferenceDataConfig:
    """Preference manifests and how their rows become examples."""

    train: list[str] = option(help="Training manifests: 'preference' rows (prompt, chosen, rejected) or, for KTO, "
                                   "'kto' rows (prompt, completion, label); code-cached (.codes.jsonl) when audio "
                                   "is used.")
    dev: list[str] = option(default_factory=list, help="Held-out manifests for the eval/ preference metrics.")
    speech_in: bool = option(True, help="User turns with audio are heard as speech (cached codes); false: their "
                                        "text is read instead (text-only prompts).")
    speech_out: bool = option(True, help="Responses with audio are scored as text + speech (every frame's K codes "
                                         "count); false: text only.")
    max_seq_len: int = option(2048, help="Longest prompt + response in tokens (frames included); longer pairs are "
                                         "left out and counted.")
    max_rows: int = option(0, help="Read at most this many rows of the training manifests (0: all).")
    max_bad_fraction: float = option(0.01, help="Stop when more than this fraction of the rows cannot be used.")
    eval_batch_size: int = option(8, help="Dev pairs per evaluation batch.")
    format: FormatConfig = option(default_factory=FormatConfig, help="Prompts: tags, system prompt.")

    def __post_init__(self) -> None:
        check(bool(self.train), "train", "needs at least one manifest")
        check(self.max_seq_len >= 16, "max_seq_len", f"must be >= 16, got {self.max_seq_len}")
        check(self.max_rows >= 0, "max_rows", "must be >= 0")
        check(0 <= self.max_bad_fraction <= 1, "max_bad_fraction", "must be in [0, 1]")
        check(self.eval_batch_size >= 1, "eval_batch_size", "must be >= 1")


# ------------------------------------------------------------------------------------------ encoding
@dataclass
class PreferenceItem:
    """One pair: ``chosen`` and ``rejected`` share the prompt. ``id`` keys cached reference log-probs."""

    id: str
    chosen: OmniExample
    rejected: OmniExample


@dataclass
class UnpairedItem:
    """One KTO completion after its prompt, with its label (True = desirable)."""

    id: str
    example: OmniExample
    desirable: bool


@dataclass
class PairEncoder:
    """Renders a prompt and one response with the model's chat template (shared by indexing and loading).

    Attributes:
        tokenizer / ids: the model's tokenizer and special-token ids.
        cfg: the data config (speech in / out, formatting).
        seed: run seed; merge_size / think_block: the model's vision merge and Qwen3 think-block settings.
    """

    tokenizer: Any
    ids: Any
    cfg: PreferenceDataConfig
    seed: int = 0
    merge_size: int = 2
    think_block: bool = False

    def response(self, row: ManifestRow, response: Turn, manifest: str, line: int, media: Any, what: str) -> OmniExample:
        """The example ``prompt + response`` with only the response as target.

        Raises:
            DataError: the row lacks a prompt, the response is unusable, or media are missing (names row and field).
        """
        if not row.prompt:
            raise DataError(f"row '{row.id}': no prompt")
        prompt = [t if self.cfg.speech_in or not (t.role == "user" and t.text) else dataclasses.replace(t, audio=None, codes=None)
                  for t in row.prompt]
        conv = dataclasses.replace(row, task="preference", conversation=[*prompt, dataclasses.replace(response, role="assistant")])
        ctx = RowContext(manifest, line, self.seed, media, self.cfg.format)
        try:
            sample = FORMATTERS["spoken_chat" if self.cfg.speech_out else "audio_qa"]([conv], ctx)
        except DataError as e:
            raise DataError(str(e).replace(f"conversation.{len(prompt)}", what)) from None
        for m in sample.messages[:-1]:  # earlier assistant turns are context, not targets
            m.train = False
        return encode_sample(sample, self.tokenizer, self.ids, merge_size=self.merge_size, think_block=self.think_block)

    def pair(self, raw: RawRow, media: Any) -> PreferenceItem:
        row = raw.parse()
        if row.task != "preference":
            raise DataError(f"row '{row.id}': task '{row.task}', expected 'preference' rows (prompt, chosen, rejected)")
        return PreferenceItem(row.id, self.response(row, row.chosen, raw.manifest, raw.line, media, "chosen"),
                              self.response(row, row.rejected, raw.manifest, raw.line, media, "rejected"))

    def unpaired(self, raw: RawRow, media: Any) -> list[UnpairedItem]:
        row = raw.parse()
        if row.task == "kto":
            ex = self.response(row, row.completion, raw.manifest, raw.line, media, "completion")
            return [UnpairedItem(row.id, ex, bool(row.label))]
        if row.task == "preference":
            return [UnpairedItem(f"{row.id}:chosen", self.response(row, row.chosen, raw.manifest, raw.line, media, "chosen"), True),
                    UnpairedItem(f"{row.id}:rejected", self.response(row, row.rejected, raw.manifest, raw.line, media,
                                                                     "rejected"), False)]
        raise DataError(f"row '{row.id}': task '{row.task}', expected 'kto' or 'preference' rows")


# ------------------------------------------------------------------------------------------ data set
@dataclass
class IndexReport:
    """What indexing found: rows read, items kept, bad rows (first problems) and too-long items."""

    rows: int = 0
    items: int = 0
    bad: int = 0
    too_long: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)


class PreferenceDataset(torch.utils.data.Dataset):
    """Map-style preference data set: rows are indexed once (lengths from code headers), loaded on the fly.

    Args:
        manifests: JSONL files.
        encoder: :class:`PairEncoder`.
        media / shape_media: :class:`~omni.data.media.CachedMedia` and :class:`~omni.data.media.ShapeMedia` of the model.
        mode: ``pairs`` (items are :class:`PreferenceItem`) or ``unpaired`` (:class:`UnpairedItem`, KTO).
        max_rows: read at most this many rows (0: all).

    Raises:
        DataError: more than ``max_bad_fraction`` of the rows cannot be used (listing the first problems).
        FileNotFoundError: a missing manifest.
    """

    def __init__(self, manifests: Sequence[str], encoder: PairEncoder, media: Any, shape_media: Any,
                 mode: Literal["pairs", "unpaired"] = "pairs", max_rows: int = 0, name: str = "train"):
        self.encoder, self.media, self.mode = encoder, media, mode
        self.items: list[tuple[RawRow, int]] = []  # (row, which completion of an unpaired row)
        self.lengths: list[int] = []
        self.report = IndexReport()
        limit = encoder.cfg.max_seq_len
        for raw in _read(manifests, max_rows):
            self.report.rows += 1
            try:
                lengths = self._lengths(raw, shape_media)
            except (DataError, ValueError) as e:
                self._bad(f"{raw.manifest}:{raw.line}: {e}")
                continue
            for k, n in enumerate(lengths):
                if n > limit:
                    self.report.too_long += 1
                    continue
                self.items.append((raw, k))
                self.lengths.append(n)
        self.report.items = len(self.items)
        r = self.report
        if r.too_long:
            log.warning(f"{name}: {r.too_long} items longer than max_seq_len = {limit} left out")
        if r.rows and r.bad / r.rows > encoder.cfg.max_bad_fraction:
            shown = "\n  ".join(r.problems[:5])
            raise DataError(f"{name}: {r.bad} of {r.rows} rows could not be used, more than max_bad_fraction = "
                            f"{encoder.cfg.max_bad_fraction:g}; first problems:\n  {shown}")
        if not self.items:
            raise DataError(f"{name}: no usable rows in {', '.join(map(str, manifests))}")

    def _bad(self, problem: str) -> None:
        self.report.bad += 1
        if len(self.report.problems) < 20:
            log.warning(f"skipping {problem}")
        self.report.problems.append(problem)

    def _lengths(self, raw: RawRow, media: Any) -> list[int]:
        if self.mode == "pairs":
            item = self.encoder.pair(raw, media)
            return [max(len(item.chosen), len(item.rejected))]
        return [len(u.example) for u in self.encoder.unpaired(raw, media)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> PreferenceItem | UnpairedItem:
        raw, k = self.items[int(i)]
        if self.mode == "pairs":
            return self.encoder.pair(raw, self.media)
        return self.encoder.unpaired(raw, self.media)[k]


def _read(manifests: Sequence[str], max_rows: int) -> list[RawRow]:
    out: list[RawRow] = []
    for manifest in manifests:
        if not Path(manifest).is_file():
            raise FileNotFoundError(f"{manifest}: manifest not found")
        with open(manifest, "rb") as f:
            for line_no, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    text = f"\0not valid UTF-8 (byte {e.start})"
                out.append(RawRow(str(manifest), line_no, text))
                if max_rows and len(out) >= max_rows:
                    return out
    return out


# ------------------------------------------------------------------------------------------ batches
@dataclass
class PreferenceBatch:
    """A micro-batch of B pairs (or B unpaired completions) as 2B rows; the layout is in the module docstring.

    Attributes:
        model: the :class:`~omni.model.batch.OmniBatch` (2B rows).
        ids: (B) item ids.
        ref_logps: (2B,) cached reference log-probs (summed) in row order, or None (computed live).
        desirable: (B,) bool KTO labels, or None for pairs.
    """

    model: OmniBatch
    ids: list[str]
    ref_logps: torch.Tensor | None = None
    desirable: torch.Tensor | None = None

    @property
    def num_items(self) -> int:
        return len(self.ids)


def prompt_length(ex: OmniExample) -> int:
    """Positions before the response: up to its first target (the response header ``<|im_start|>assistant\\n``
    stays with the prompt)."""
    target = (ex.labels != IGNORE).nonzero()
    if target.numel() == 0:
        raise ValueError("an example without targets has no response")
    return int(target[0, 0])


def splice(prompt_of: OmniExample, response_of: OmniExample, audio_id: int) -> OmniExample:
    """``prompt_of``'s prompt followed by ``response_of``'s response (KTO's mismatched pairs).

    Both come from the same chat template, so the response starts at its first target position; the
    prompt's audio frames are the ones before that position, the response's the ones after.
    """
    p, r = prompt_length(prompt_of), prompt_length(response_of)
    frames_p = int((prompt_of.input_ids[:p] == audio_id).sum())  # the prompt's frames come first
    frames_r = int((response_of.input_ids[:r] == audio_id).sum())
    k = max(prompt_of.audio_codes.shape[-1], response_of.audio_codes.shape[-1])
    codes = torch.cat([prompt_of.audio_codes[:frames_p].reshape(-1, k), response_of.audio_codes[frames_r:].reshape(-1, k)])
    target = torch.cat([prompt_of.audio_target[:frames_p], response_of.audio_target[frames_r:]])
    return OmniExample(torch.cat([prompt_of.input_ids[:p], response_of.input_ids[r:]]),
                       torch.cat([prompt_of.labels[:p], response_of.labels[r:]]), codes, target,
                       prompt_of.images, prompt_of.videos)


class PreferenceCollate:
    """Items -> :class:`PreferenceBatch` (picklable for DataLoader workers).

    Args:
        pad_id: the model's pad token; audio_id: its ``<|audio|>`` token (splicing KTO's mismatched pairs).
        reference: cached reference log-probs (:class:`~omni.align.reference.ReferenceCache`), or None.
        pad_to_multiple_of: row length multiple.
    """

    def __init__(self, pad_id: int, audio_id: int, reference: Any = None, pad_to_multiple_of: int = 8):
        self.pad_id, self.audio_id, self.reference, self.multiple = pad_id, audio_id, reference, pad_to_multiple_of

    def __call__(self, items: Sequence[PreferenceItem | UnpairedItem]) -> PreferenceBatch:
        if not items:
            raise ValueError("PreferenceCollate: no items")
        ids = [it.id for it in items]
        if isinstance(items[0], PreferenceItem):
            rows = [it.chosen for it in items] + [it.rejected for it in items]
            ref = None if self.reference is None else self.reference.lookup(ids)  # (2B,)
            return PreferenceBatch(collate(rows, self.pad_id, pad_to_multiple_of=self.multiple), ids, ref)
        exs = [it.example for it in items]
        kl = [splice(exs[i], exs[i - 1], self.audio_id) for i in range(len(exs))]  # prompt i, completion i-1 (cyclic)
        desirable = torch.tensor([it.desirable for it in items], dtype=torch.bool)
        return PreferenceBatch(collate(exs + kl, self.pad_id, pad_to_multiple_of=self.multiple), ids, None, desirable)

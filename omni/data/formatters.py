"""Task formatters: manifest rows -> conversations (or plain documents) with targets -> model examples.

One formatter per task family. Each turns one validated :class:`~omni.data.manifest.ManifestRow`
(or, for ASR/TTS/S2TT, a list of consecutive short rows merged into one longer example) into a
:class:`Sample`: a list of :class:`~omni.model.chat.Message` and whether it is a chat or a plain
document. :func:`encode_sample` renders it with the model's chat template into an
:class:`~omni.model.batch.OmniExample`: prompts are masked (labels ``-100``), assistant turns (or the
whole document) are targets, and every target audio frame carries all K codebooks.

==================  ===================================================================================
formatter           layout (``T`` = task/language tags, ``A`` = audio frames, ``->`` = assistant turn)
==================  ===================================================================================
``asr``             user: ``<|en|><|US|><|transcribe|>`` A -> transcript
``tts``             user: ``<|en|><|US|><|tts|>`` text -> A (speech out: all 8 codebooks are targets)
``s2tt``            user: ``<|de|><|DE|><|translate|><|en|>`` A -> translation
``audio_qa``        conversation; user speech as A, assistant answers as text only
``spoken_chat``     conversation; user speech as A, assistant answers as text + its speech A
``image_caption``   user: image ``<|caption|>`` -> caption
``image_qa``        conversation with images (row-level image joins the first user turn), speech in/out
``video_qa``        the same with videos
``text``            ``text`` field: a plain document; ``conversation``: a text chat
``interleaved``     INTLV document: sentences in order, about a quarter replaced by their speech
                    (chosen from ``seed`` and the row's line, so the same every epoch and on every rank)
``interleaved_tts`` ITTS document: every sentence's text followed by its speech
==================  ===================================================================================

Tags follow Whisper (``<|en|>``, ``<|transcribe|>``, ``<|translate|>``) with Dolphin's two-level
language then region tag (``<|zh|><|CN|>``, ``<|ru|><|BY|>``). They are written as text in the prompt
(so they need no new embeddings and a frozen LLM still tells them apart); ``tags: false`` uses plain
instructions instead. A plain document is ``<eos> content <eos>`` with every token after the first a
target, spoken sentences entering with the modality switch ``<|audio_gen_start|>``.

Media come from a :class:`Media` (cached codes, processed images / videos); the data index uses a
shape-only one to measure lengths without reading audio or pixels (:mod:`omni.data.media`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from omni.config import check, option
from omni.data.manifest import ManifestRow, Turn
from omni.model.batch import OmniExample
from omni.model.chat import Audio, Image, Message, SequenceBuilder, Text, Video, encode_conversation
from omni.model.special_tokens import TokenIds
from omni.model.vision_inputs import VisionInputs


class DataError(ValueError):
    """A manifest row that cannot become a training example: the message names the row and the problem."""


class Media(Protocol):
    """Where formatters get media from (see :mod:`omni.data.media`)."""

    def codes(self, manifest: str, holder: Any, where: str) -> torch.Tensor:
        """Audio-token codes (T, K) of the audio reference held by ``holder`` (a row, turn or segment)."""

    def image(self, manifest: str, path: str) -> VisionInputs:
        """One processed image."""

    def video(self, manifest: str, path: str) -> VisionInputs:
        """One processed video."""


@dataclass
class FormatConfig:
    """How rows become prompts and targets."""

    tags: bool = option(True, help="Prefix prompts with Whisper-style task tags and Dolphin-style language/region "
                                   "tags (<|en|><|US|><|transcribe|>); false: plain-language instructions.")
    speech_fraction: float = option(0.25, help="INTLV documents: share of sentences replaced by their speech, chosen "
                                               "per row from the seed and the row's line.")
    system_prompt: str | None = option(None, help="System message put before every chat (null: none).")

    def __post_init__(self) -> None:
        check(0.0 <= self.speech_fraction <= 1.0, "speech_fraction", f"must be in [0, 1], got {self.speech_fraction}")
        check(self.system_prompt is None or bool(self.system_prompt.strip()), "system_prompt", "must be text or null")


@dataclass
class Sample:
    """A formatted example before tokenization.

    Attributes:
        task: the formatter's name (losses are logged per task).
        messages: chat turns; for a document, one assistant message holding its segments in order.
        document: a plain document (no chat template) instead of a chat.
    """

    task: str
    messages: list[Message]
    document: bool = False


@dataclass
class RowContext:
    """What a formatter knows besides the rows: their manifest, position and the media source.

    Attributes:
        manifest: path of the manifest (media paths are relative to its directory).
        line: line of the (first) row in the manifest (seeds per-row choices).
        seed: run seed.
        media: codes / image / video source.
        cfg: formatting options.
    """

    manifest: str
    line: int
    seed: int
    media: Media
    cfg: FormatConfig


INSTRUCTIONS = {
    "transcribe": "Transcribe the speech.",
    "translate": "Translate the speech into {target}.",
    "tts": "Read this aloud: ",
    "caption": "Describe the image.",
}


def tags(task: str, language: str | None, region: str | None, target: str | None = None) -> str:
    """``<|lang|><|REGION|><|task|>`` (+ ``<|target|>``), leaving out what is unknown."""
    parts = [x for x in (language, region, task, target) if x]
    return "".join(f"<|{x}|>" for x in parts)


def _prompt(ctx: RowContext, task: str, row: ManifestRow, target: str | None = None) -> str:
    if ctx.cfg.tags:
        return tags(task, row.language, row.region, target)
    return INSTRUCTIONS[task].format(target=target or "English")


def _need(row: ManifestRow, *names: str) -> None:
    missing = [n for n in names if getattr(row, n) is None]
    if missing:
        raise DataError(f"row '{row.id}' (task {row.task}): missing {', '.join(missing)}")


def _codes(ctx: RowContext, holder: Any, row: ManifestRow, where: str) -> torch.Tensor:
    return ctx.media.codes(ctx.manifest, holder, f"row '{row.id}' {where}".rstrip())


def _system(ctx: RowContext) -> list[Message]:
    return [Message("system", ctx.cfg.system_prompt)] if ctx.cfg.system_prompt else []


# ---------------------------------------------------------------------------------------------- speech tasks
def format_asr(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """Speech -> transcript; several consecutive rows are merged into one example (codes and text joined)."""
    for row in rows:
        _need(row, "audio", "text")
    codes = torch.cat([_codes(ctx, r, r, "audio") for r in rows])  # (sum T, K)
    text = " ".join(r.text.strip() for r in rows)
    user = Message("user", [Text(_prompt(ctx, "transcribe", rows[0])), Audio(codes)])
    return Sample("asr", [*_system(ctx), user, Message("assistant", [Text(text)])])


def format_tts(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """Text -> speech (the codes of every frame, all codebooks, are targets)."""
    for row in rows:
        _need(row, "audio", "text")
    codes = torch.cat([_codes(ctx, r, r, "audio") for r in rows])
    text = " ".join(r.text.strip() for r in rows)
    user = Message("user", [Text(_prompt(ctx, "tts", rows[0]) + text)])
    return Sample("tts", [*_system(ctx), user, Message("assistant", [Audio(codes)])])


def format_s2tt(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """Speech -> translation into ``target_language``."""
    for row in rows:
        _need(row, "audio", "translation")
    codes = torch.cat([_codes(ctx, r, r, "audio") for r in rows])
    text = " ".join(r.translation.strip() for r in rows)
    user = Message("user", [Text(_prompt(ctx, "translate", rows[0], rows[0].target_language)), Audio(codes)])
    return Sample("s2tt", [*_system(ctx), user, Message("assistant", [Text(text)])])


# ---------------------------------------------------------------------------------------------- conversations
def _conversation(row: ManifestRow, ctx: RowContext, task: str, speech_out: bool) -> Sample:
    """Generic conversation: user speech as audio (its transcript is not shown), images/videos in place,
    assistant turns as text, plus their speech when ``speech_out`` and the turn has audio."""
    if not row.conversation:
        raise DataError(f"row '{row.id}' (task {row.task}): a '{task}' example needs a conversation")
    messages = _system(ctx)
    pending: list[Any] = []  # row-level image / video: they join the first user turn
    if row.image is not None:
        pending.append(Image(ctx.media.image(ctx.manifest, row.image)))
    if row.video is not None:
        pending.append(Video(ctx.media.video(ctx.manifest, row.video)))
    for i, turn in enumerate(row.conversation):
        segs: list[Any] = []
        if turn.role == "user" and pending:
            segs, pending = pending, []
        if turn.image is not None:
            segs.append(Image(ctx.media.image(ctx.manifest, turn.image)))
        if turn.video is not None:
            segs.append(Video(ctx.media.video(ctx.manifest, turn.video)))
        segs.extend(_turn_content(row, turn, i, ctx, speech_out))
        if not segs:
            raise DataError(f"row '{row.id}': conversation.{i} has nothing this formatter can use")
        messages.append(Message(turn.role, segs))
    if not any(m.role == "assistant" for m in messages):
        raise DataError(f"row '{row.id}': the conversation has no assistant turn to learn from")
    return Sample(task, messages)


def _turn_content(row: ManifestRow, turn: Turn, i: int, ctx: RowContext, speech_out: bool) -> list[Any]:
    where = f"conversation.{i}"
    if turn.role == "assistant":
        out: list[Any] = [Text(turn.text)] if turn.text else []
        if speech_out and turn.audio is not None:
            out.append(Audio(_codes(ctx, turn, row, where)))
        if not out:
            raise DataError(f"row '{row.id}': {where}: an assistant turn needs text"
                            + ("" if speech_out else " (this formatter answers in text)"))
        return out
    if turn.audio is not None:  # speech in: the model hears it, the transcript stays hidden
        return [Audio(_codes(ctx, turn, row, where))]
    return [Text(turn.text)] if turn.text else []


def format_audio_qa(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """Speech (or audio) question -> text answer."""
    return _conversation(_single(rows), ctx, "audio_qa", speech_out=False)


def format_spoken_chat(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """Speech in -> text + speech out, over any number of turns."""
    return _conversation(_single(rows), ctx, "spoken_chat", speech_out=True)


def format_image_qa(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """Questions about images (text or speech), answers in text (+ speech where the row has it)."""
    return _conversation(_single(rows), ctx, "image_qa", speech_out=True)


def format_video_qa(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """Questions about a video."""
    return _conversation(_single(rows), ctx, "video_qa", speech_out=True)


def format_image_caption(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """Image -> caption."""
    row = _single(rows)
    _need(row, "image", "text")
    image = Image(ctx.media.image(ctx.manifest, row.image))
    user = Message("user", [image, Text(_prompt(ctx, "caption", row))])
    return Sample("image_caption", [*_system(ctx), user, Message("assistant", [Text(row.text)])])


def format_text(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """Pure text: a ``text`` row is a plain document, a ``conversation`` row a text chat."""
    row = _single(rows)
    if row.text is not None:
        return Sample("text", [Message("assistant", [Text(row.text)])], document=True)
    return _conversation(row, ctx, "text", speech_out=False)


# ---------------------------------------------------------------------------------------------- documents
def spoken_sentences(n: int, fraction: float, seed: int, line: int) -> list[bool]:
    """Which of ``n`` sentences are spoken: ``round(fraction * n)`` of them (at least one when ``n >= 2`` and
    ``fraction > 0``), at positions drawn from ``(seed, line)``."""
    k = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        k = max(k, 1)
    chosen = set(np.random.default_rng([seed, line]).choice(n, size=min(k, n), replace=False).tolist())
    return [i in chosen for i in range(n)]


def _document(segments: list[Any], task: str) -> Sample:
    merged: list[Any] = []
    for seg in segments:  # consecutive text sentences become one text segment, sentences separated by spaces
        if isinstance(seg, Text):
            if merged and isinstance(merged[-1], Text):
                merged[-1] = Text(merged[-1].text + " " + seg.text)
            else:
                merged.append(Text(seg.text if not merged else " " + seg.text))
        else:
            merged.append(seg)
    return Sample(task, [Message("assistant", merged)], document=True)


def format_interleaved(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """INTLV: the sentences in order, about ``speech_fraction`` of them replaced by their speech."""
    row = _single(rows)
    if not row.segments:
        raise DataError(f"row '{row.id}': an interleaved document needs segments")
    has_audio = [s.audio is not None for s in row.segments]
    spoken_idx = [i for i, a in enumerate(has_audio) if a]
    chosen = spoken_sentences(len(spoken_idx), ctx.cfg.speech_fraction, ctx.seed, ctx.line)
    spoken = {i for i, c in zip(spoken_idx, chosen) if c}
    segs: list[Any] = []
    for i, seg in enumerate(row.segments):
        segs.append(Audio(_codes(ctx, seg, row, f"segments.{i}")) if i in spoken else Text(seg.text))
    return _document(segs, "interleaved")


def format_interleaved_tts(rows: Sequence[ManifestRow], ctx: RowContext) -> Sample:
    """ITTS: every sentence's text, then its speech."""
    row = _single(rows)
    if not row.segments:
        raise DataError(f"row '{row.id}': an interleaved document needs segments")
    segs: list[Any] = []
    for i, seg in enumerate(row.segments):
        if seg.audio is None:
            raise DataError(f"row '{row.id}': segments.{i} has no audio (every ITTS sentence needs its speech)")
        segs += [Text(seg.text), Audio(_codes(ctx, seg, row, f"segments.{i}"))]
    return _document(segs, "interleaved_tts")


def _single(rows: Sequence[ManifestRow]) -> ManifestRow:
    if len(rows) != 1:
        raise DataError(f"rows {[r.id for r in rows]}: this formatter takes one row at a time (concatenation is "
                        "for asr / tts / s2tt)")
    return rows[0]


Formatter = Callable[[Sequence[ManifestRow], RowContext], Sample]

FORMATTERS: dict[str, Formatter] = {
    "asr": format_asr,
    "tts": format_tts,
    "s2tt": format_s2tt,
    "audio_qa": format_audio_qa,
    "spoken_chat": format_spoken_chat,
    "image_caption": format_image_caption,
    "image_qa": format_image_qa,
    "video_qa": format_video_qa,
    "text": format_text,
    "interleaved": format_interleaved,
    "interleaved_tts": format_interleaved_tts,
}

#: Formatters that may merge several consecutive rows into one example (logical concatenation of clips).
CONCATENABLE = ("asr", "tts", "s2tt")

#: The formatter used for a row when a source does not name one: the row's own task.
DEFAULT_FORMATTER = {**{t: t for t in FORMATTERS}, "spoken_qa": "spoken_chat"}


def formatter_for(row: ManifestRow, task: str | None) -> str:
    """The formatter name for ``row``: the source's ``task``, or the row's own task."""
    if task is not None:
        return task
    if row.task not in DEFAULT_FORMATTER:
        raise DataError(f"row '{row.id}': task '{row.task}' is not a training task of this stage "
                        f"(known: {', '.join(DEFAULT_FORMATTER)}); preference rows are for DPO")
    return DEFAULT_FORMATTER[row.task]


def format_rows(rows: Sequence[ManifestRow], task: str | None, ctx: RowContext) -> Sample:
    """Format one example from ``rows`` (one row, or consecutive rows to concatenate)."""
    name = formatter_for(rows[0], task)
    return FORMATTERS[name](rows, ctx)


def encode_sample(sample: Sample, tokenizer: PreTrainedTokenizerBase, ids: TokenIds, *, merge_size: int = 2,
                  think_block: bool = False) -> OmniExample:
    """Tokenize a :class:`Sample`: chats through the chat template, documents as ``<eos> segments <eos>``."""
    if not sample.document:
        return encode_conversation(sample.messages, tokenizer, ids, think_block=think_block, merge_size=merge_size)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else ids.im_end
    b = SequenceBuilder(tokenizer, ids, merge_size).tokens([eos], False)
    for seg in (s for m in sample.messages for s in m.segments()):
        if isinstance(seg, Text):
            b.text(seg.text, True)
        elif isinstance(seg, Audio):
            b.audio(seg.codes, True, generated=True)
        elif isinstance(seg, Image):
            b.image(seg.inputs)
        elif isinstance(seg, Video):
            b.video(seg.inputs)
    return b.tokens([eos], True).build()


# ---------------------------------------------------------------------------------------------- evaluation
#: Fields of a row that are the *answer* of a task (hidden from the prompt): what evaluation generates.
TARGET_FIELDS = {"asr": ("text",), "s2tt": ("translation",), "tts": ("audio", "offset", "duration", "codes")}

_TARGET_AUDIO = "<generation target>"


class _PromptMedia:
    """Wraps a media source: the placeholder target audio of a TTS prompt gets one dummy frame (dropped with
    the assistant turn); every other reference goes to the wrapped source."""

    def __init__(self, media: Media):
        self.media = media

    def codes(self, manifest: str, holder: Any, where: str) -> torch.Tensor:
        if getattr(holder, "audio", None) == _TARGET_AUDIO:
            return torch.zeros(1, 1, dtype=torch.long)
        return self.media.codes(manifest, holder, where)

    def image(self, manifest: str, path: str) -> VisionInputs:
        return self.media.image(manifest, path)

    def video(self, manifest: str, path: str) -> VisionInputs:
        return self.media.video(manifest, path)


def prompt_messages(rows: Sequence[ManifestRow], task: str, ctx: RowContext) -> list[Message]:
    """The prompt of ``task``'s training example for ``rows``: its messages before the final assistant turn.

    Evaluation renders them with ``add_generation_prompt=True`` and lets the model generate the answer, so
    the model sees exactly the conversation it was trained on. The rows' answer fields
    (:data:`TARGET_FIELDS`: the transcript for asr, the speech for tts) are not needed and not shown.

    Raises:
        DataError: the rows lack what the prompt needs (the input speech of an asr row, the text of a tts row).
    """
    if task not in TARGET_FIELDS:
        raise DataError(f"no evaluation prompt for task '{task}' (known: {', '.join(TARGET_FIELDS)})")
    placeholder = {"text": "", "translation": "", "audio": _TARGET_AUDIO, "offset": None, "duration": None,
                   "codes": None}
    patched = [replace(r, **{f: placeholder[f] for f in TARGET_FIELDS[task]}) for r in rows]
    sample = FORMATTERS[task](patched, replace(ctx, media=_PromptMedia(ctx.media)))
    if not sample.messages or sample.messages[-1].role != "assistant":
        raise DataError(f"rows {[r.id for r in rows]}: the '{task}' formatter did not end with an assistant turn")
    return sample.messages[:-1]

"""Run a recogniser over this rank's batches of manifest audio, with per-utterance failures and timings.

A batch is loaded (files that fail to load become failed utterances), then recognised in one call.
When the batch call raises, its utterances are retried one by one, so a single bad clip (too short for
the tokenizer, say) fails alone. Processing time excludes file reading; each utterance is attributed its
duration's share of its batch's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from omni.audio.io import Audio, AudioError
from omni.eval.data import EvalItem, load_item_audio
from omni.eval.recognizers.base import Recognizer


@dataclass
class Recognized:
    """What the recogniser made of one item.

    Attributes:
        index: the item's manifest position.
        text: the transcript ('' when failed).
        seconds: processing seconds attributed to it.
        audio_seconds: seconds of audio recognised.
        error: why it failed, or None.
    """

    index: int
    text: str = ""
    seconds: float = 0.0
    audio_seconds: float = 0.0
    error: str | None = None


def short_error(e: BaseException) -> str:
    """One line: the exception's message (its type when the message is empty)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return msg if isinstance(e, (AudioError, ValueError, FileNotFoundError)) and msg else f"{type(e).__name__}: {msg}"


def timed_transcribe(recognizer: Recognizer, audios: Sequence[Audio], rows: Sequence, indices: Sequence[int],
                     sync: Callable[[], None] | None = None) -> list[Recognized]:
    """Recognise one loaded batch; on an exception, one by one. Returns one :class:`Recognized` per audio."""
    durations = [a.duration for a in audios]
    t0 = time.perf_counter()
    try:
        texts = recognizer.transcribe(audios, rows)
        if sync:
            sync()
        elapsed = time.perf_counter() - t0
        total = sum(durations) or 1.0
        return [Recognized(i, t, elapsed * d / total, d) for i, t, d in zip(indices, texts, durations)]
    except Exception as e:  # noqa: BLE001 - isolate the utterance that breaks the batch
        if len(audios) == 1:
            return [Recognized(indices[0], audio_seconds=durations[0],
                               error=f"{recognizer.name} failed: {short_error(e)}")]
    return [r for a, row, i in zip(audios, rows, indices) for r in timed_transcribe(recognizer, [a], [row], [i], sync)]


def recognize_items(recognizer: Recognizer, items: list[EvalItem], batches: list[list[int]], *,
                    progress: bool = False, desc: str = "recognise",
                    sync: Callable[[], None] | None = None) -> dict[int, Recognized]:
    """Recognise the items of ``batches`` (indices into ``items``); {index: Recognized}."""
    out: dict[int, Recognized] = {}
    bar = tqdm(total=sum(len(b) for b in batches), desc=desc, unit="utt", disable=not progress)
    for batch in batches:
        audios, rows, idx = [], [], []
        for i in batch:
            item = items[i]
            try:
                audio = load_item_audio(item, recognizer.sample_rate)
            except (AudioError, ValueError, OSError) as e:
                out[i] = Recognized(i, audio_seconds=item.duration or 0.0, error=short_error(e))
                continue
            audios.append(audio)
            rows.append(item.row)
            idx.append(i)
        if audios:
            for r in timed_transcribe(recognizer, audios, rows, idx, sync):
                out[r.index] = r
        bar.update(len(batch))
    bar.close()
    return out

"""Speech (+ transcript) examples for tokenizer training, from any manifest.

Every audio reference of a row becomes an example: the row's ``audio`` with
its ``text`` (ASR, s2tt transcripts), each conversation turn's audio with
that turn's text, each interleaved segment's audio with its sentence. Audio
without text still trains the mel and commitment losses.

Data flow: manifest rows -> :class:`SpeechItem` (path, segment, text) ->
dataset sample (waveform (S,), token ids) -> :func:`collate_speech` ->
:class:`SpeechBatch`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from omni.audio.io import AudioLimits, load_audio, probe_audio
from omni.data.manifest import ManifestRow, load_manifest, resolve_media


@dataclass(frozen=True)
class SpeechItem:
    """One clip: a file (or a segment of it) and its transcript (None when the manifest gives none)."""

    id: str
    path: str
    offset: float | None
    duration: float | None
    text: str | None


def row_speech(row: ManifestRow) -> Iterable[tuple[str, object, str | None]]:
    """(where, object holding audio/offset/duration, transcript) for every audio reference in a row."""
    if row.audio is not None:
        yield "", row, row.text
    for name in ("conversation", "segments", "prompt"):
        for i, item in enumerate(getattr(row, name) or []):
            if item.audio is not None:
                yield f"{name}.{i}", item, item.text
    for name in ("chosen", "rejected", "completion"):
        turn = getattr(row, name)
        if turn is not None and turn.audio is not None:
            yield name, turn, turn.text


def manifest_speech(paths: Sequence[str | os.PathLike]) -> list[SpeechItem]:
    """Every clip of the given manifests, in file order.

    Raises:
        FileNotFoundError / ValueError: a missing manifest, or bad lines (listed with their line numbers).
    """
    items = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: manifest not found")
        for row in load_manifest(path):
            for where, obj, text in row_speech(row):
                items.append(SpeechItem(f"{row.id}{'.' + where if where else ''}", str(resolve_media(path, obj.audio)),
                                        obj.offset, obj.duration, text))
    return items


def clip_seconds(item: SpeechItem) -> float:
    """Length of a clip: its ``duration`` when given, else read from the file header."""
    if item.duration is not None:
        return item.duration
    return probe_audio(item.path).duration - (item.offset or 0.0)


def filter_by_length(items: Sequence[SpeechItem], min_seconds: float, max_seconds: float) -> tuple[list[SpeechItem], int, int]:
    """Keep clips with ``min_seconds <= length <= max_seconds``; returns (kept, too short, too long)."""
    kept, short, long = [], 0, 0
    for item in items:
        seconds = clip_seconds(item)
        if seconds < min_seconds:
            short += 1
        elif seconds > max_seconds:
            long += 1
        else:
            kept.append(item)
    return kept, short, long


class SpeechDataset(torch.utils.data.Dataset):
    """Map-style data set of (waveform, transcript ids).

    Args:
        items: the clips.
        sample_rate: rate the audio is loaded at (resampled with soxr).
        encode_text: transcript -> token ids (with end-of-text), or None to skip text.
        max_seconds: longest clip accepted (a longer file is an AudioError naming it).
        phonemes: phoneme ids of each item's transcript (:mod:`audio_tokenizer.phonemes`), or None.
    """

    def __init__(self, items: Sequence[SpeechItem], sample_rate: int,
                 encode_text: Callable[[str], list[int]] | None = None, max_seconds: float = 30.0,
                 phonemes: Sequence[list[int]] | None = None):
        if not items:
            raise ValueError("no audio clips to train on (check the manifests and the length limits)")
        if phonemes is not None and len(phonemes) != len(items):
            raise ValueError(f"{len(phonemes)} phoneme sequences for {len(items)} clips")
        self.phonemes = list(phonemes) if phonemes is not None else None
        self.items = list(items)
        self.sample_rate = sample_rate
        self.encode_text = encode_text
        self.limits = AudioLimits(max_seconds=max_seconds + 0.5, allow_silence=True)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        audio = load_audio(item.path, self.sample_rate, offset=item.offset or 0.0,
                           duration=item.duration if item.offset is not None else None, limits=self.limits)
        ids = self.encode_text(item.text) if (self.encode_text is not None and item.text) else []
        phonemes = self.phonemes[i] if self.phonemes is not None else []
        return {"wav": audio.samples, "text_ids": ids, "phoneme_ids": phonemes, "id": item.id}


@dataclass
class SpeechBatch:
    """A padded batch of clips.

    Attributes:
        wav: (B, S) float32 waveforms, zero past each length; lengths (B,) samples.
        text_ids: (B, L) int64 transcript ids (end-of-text included), 0 past each length; text_lengths (B,),
            0 for a clip without transcript.
        phoneme_ids: (B, P) int64 phoneme ids of the transcripts (no end token), 0 past each length;
            phoneme_lengths (B,), 0 without phonemes.

    Example (clips of 3 and 2 samples, transcripts [7, 8, E] and [9, E], phonemes [4 1 2] and [3])::

        wav = [[a b c], [d e 0]]   lengths = [3, 2]
        text_ids = [[7 8 E], [9 E 0]]   text_lengths = [3, 2]
        phoneme_ids = [[4 1 2], [3 0 0]]   phoneme_lengths = [3, 1]
    """

    wav: torch.Tensor
    lengths: torch.Tensor
    text_ids: torch.Tensor
    text_lengths: torch.Tensor
    phoneme_ids: torch.Tensor | None = None
    phoneme_lengths: torch.Tensor | None = None


def collate_speech(samples: list[dict]) -> SpeechBatch:
    """Pad a list of dataset samples into a :class:`SpeechBatch`."""
    wavs = [torch.from_numpy(np.asarray(s["wav"], dtype=np.float32)) for s in samples]
    lengths = torch.tensor([len(w) for w in wavs], dtype=torch.long)
    texts = [torch.tensor(s["text_ids"], dtype=torch.long) for s in samples]
    wav = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)  # (B, S)
    return SpeechBatch(wav, lengths, *_pad_ids(texts), *_pad_ids(
        [torch.tensor(s.get("phoneme_ids", []), dtype=torch.long) for s in samples]))


def _pad_ids(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Id sequences -> (B, L) right-padded with 0 (at least one column) and lengths (B,)."""
    lengths = torch.tensor([len(t) for t in seqs], dtype=torch.long)
    if int(lengths.max()) == 0:
        return torch.zeros(len(seqs), 1, dtype=torch.long), lengths
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True), lengths


__all__ = ["SpeechBatch", "SpeechDataset", "SpeechItem", "clip_seconds", "collate_speech",
           "filter_by_length", "manifest_speech", "row_speech"]

"""Chunked synthesis: token chunks -> mel chunks -> waveform chunks, with context, look-ahead and cross-fades.

Two stages, each of which recomputes a little of the previous chunk and cross-fades over it::

    tokens  |.... left context ....|====== chunk ======|.. look-ahead ..|
    flow    mel of the whole window, noise fixed per absolute frame (same as whole-utterance synthesis)
    mel     [held-back tail of the previous chunk] x-fade [same frames, recomputed]  -> final mel frames;
            the last ``crossfade_frames`` of this chunk are held back for the next chunk
    vocoder final mel frames with ``vocoder_context_frames`` of left context and ``vocoder_lookahead_frames``
            of right context (held back until the next chunk arrives); the last
            ``vocoder_crossfade_frames`` x hop samples are held back and cross-faded the same way

At the end of the stream every held-back frame and sample is flushed. Because the estimator, the token
encoder and the vocoder only see a bounded neighbourhood of each frame (windowed attention, convolutions),
a window with enough context reproduces whole-utterance synthesis closely and the cross-fades hide the
rest (the figures in reports/decoder_tiny.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch


def fade_in(n: int) -> torch.Tensor:
    """(n,) raised-cosine ramp from near 0 to near 1 (its mirror ``1 - w`` fades out; they sum to 1)."""
    return torch.sin(0.5 * math.pi * (torch.arange(n, dtype=torch.float32) + 0.5) / n).pow(2)


def crossfade(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """Blend two versions of the same span along the last axis: ``old (1 - w) + new w``. (..., n) -> (..., n)."""
    w = fade_in(old.shape[-1]).to(old)
    return old * (1 - w) + new * w


@dataclass
class AudioChunk:
    """A piece of streamed waveform.

    Attributes:
        samples: (n,) float32 waveform.
        start: index of its first sample in the whole utterance.
        sample_rate: Hz.
        final: True for the last chunk of the utterance.
    """

    samples: torch.Tensor
    start: int
    sample_rate: int
    final: bool


class ChunkedStage:
    """One cross-faded streaming stage over a growing input sequence (last axis).

    ``compute(lo, hi, final)`` returns the outputs for input positions ``lo .. hi`` (times ``scale``
    outputs per position); the stage asks for ``left`` positions of context before and ``right`` after
    each new span, holds back the last ``hold`` positions' outputs and cross-fades them with their
    recomputation in the next call.

    Args:
        compute: ``(lo, hi) -> (..., (hi - lo) * scale)``, using inputs lo .. hi.
        scale: outputs per input position (1 for mel frames, hop for samples).
        left: positions of left context (>= hold).
        right: positions of right context waited for (except at the end).
        hold: positions held back for the cross-fade.
    """

    def __init__(self, compute: Callable[[int, int], torch.Tensor], scale: int, left: int, right: int, hold: int):
        if hold > left:
            raise ValueError(f"the cross-fade ({hold}) cannot be longer than the left context ({left})")
        self.compute, self.scale, self.left, self.right, self.hold = compute, scale, left, right, hold
        self.done = 0  # input positions whose outputs were emitted or are held back
        self.tail: torch.Tensor | None = None  # outputs of positions done - hold .. done, not yet emitted

    def step(self, available: int, upto: int, final: bool) -> torch.Tensor | None:
        """Process positions ``done .. upto`` given ``available`` inputs; returns newly final outputs or None.

        Outputs cover positions ``done - hold .. upto - hold`` (``.. upto`` when ``final``).
        """
        if upto <= self.done and not (final and self.tail is not None):
            return None
        lo = max(0, self.done - self.left)
        hi = available if final else min(available, upto + self.right)
        out = self.compute(lo, hi)  # (..., (hi - lo) * scale)
        s = self.scale
        start = self.done - (self.hold if self.tail is not None else 0)  # first position we output
        new = out[..., (start - lo) * s:(upto - lo) * s]  # positions start .. upto
        if self.tail is not None:
            n = self.tail.shape[-1]
            new = torch.cat([crossfade(self.tail, new[..., :n]), new[..., n:]], dim=-1)
        keep = 0 if final else min(self.hold, upto - start) * s  # hold back the last positions
        self.tail = new[..., new.shape[-1] - keep:] if keep else None
        self.done = upto
        return new[..., :new.shape[-1] - keep]


def chunk_size(index: int, first: int, chunk: int, growth: float = 1.0, max_chunk: int | None = None) -> int:
    """Tokens of chunk ``index`` (0-based): ``first``, then ``chunk``, each later one ``growth`` times the one
    before (rounded), capped at ``max_chunk`` (None: no cap); CosyVoice 2's ``stream_scale_factor`` and
    ``token_max_hop_len``. With growth 2, chunks 6 / 12 / 24 / 48 ...: the first stays small for latency, and
    each later chunk's re-decoded context is a shrinking share of it.
    """
    if index == 0:
        return first
    size = max(1, round(chunk * growth ** min(index - 1, 64)))  # exponent capped: no float overflow
    return size if max_chunk is None else min(size, max_chunk)


def chunk_plan(n_available: int, done: int, first: int, chunk: int, lookahead: int, final: bool,
               growth: float = 1.0, max_chunk: int | None = None, index: int | None = None) -> Iterator[int]:
    """Ends (exclusive, in tokens) of the chunks that can be decoded now.

    Chunk sizes follow :func:`chunk_size` (``first``, then ``chunk`` growing by ``growth`` up to
    ``max_chunk``); a chunk is decoded once its tokens and ``lookahead`` more have arrived, or when the
    stream has ended. ``index`` is the number of chunks decoded so far (``done`` tokens); when None it is
    counted along the schedule.
    """
    if index is None:
        index, end = 0, 0
        while end < done:
            end += chunk_size(index, first, chunk, growth, max_chunk)
            index += 1
    while True:
        end = done + chunk_size(index, first, chunk, growth, max_chunk)
        if end + lookahead <= n_available:
            yield end
            done, index = end, index + 1
        elif final and done < n_available:
            yield n_available
            return
        else:
            return

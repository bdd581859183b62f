"""Speech frames -> waveform chunks in a background thread, while the LLM keeps generating.

The LLM thread ``push``-es each generated frame (K,) and ``end_segment``-s each speech
segment; a worker thread feeds every segment to ``SpeechDecoder.stream`` (chunked, cross-faded)
or, with ``stream=False``, synthesises each segment whole once it is complete. Decoded chunks go
to ``on_chunk(SpeechChunk)``. The two threads overlap (torch releases the GIL), which is where
streaming wins: the decoder works on segment 1 while the LLM writes segment 2.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

_SEGMENT_END = object()
_CLOSE = object()


@dataclass
class SpeechChunk:
    """Decoded waveform.

    Attributes:
        samples: (n,) float32 at ``sample_rate``.
        sample_rate: Hz (24 kHz for the flow decoder + vocoder).
        segment: index of the speech segment of the reply it belongs to.
        frames_read: frames of the reply the decoder had read when it produced this chunk.
        llm_step: the LLM step (1-based count) that generated the newest of those frames.
    """

    samples: np.ndarray
    sample_rate: int
    segment: int
    frames_read: int
    llm_step: int


class FrameDecoder:
    """Decodes pushed frames in a worker thread.

    Args:
        decoder: a loaded :class:`~decoders.speech_decoder.SpeechDecoder`.
        speaker: speaker name or (speaker_dim,) embedding, passed to the decoder.
        on_chunk: called (in the worker thread) with every :class:`SpeechChunk`.
        on_error: called (in the worker thread) with an exception that stopped decoding.
        stream: chunked streaming (true) or one synthesis per finished segment.
    """

    def __init__(self, decoder, speaker: str | torch.Tensor | None, on_chunk: Callable[[SpeechChunk], None],
                 on_error: Callable[[BaseException], None], stream: bool = True):
        self.decoder = decoder
        self.speaker = speaker
        self.on_chunk, self.on_error = on_chunk, on_error
        self.stream = stream
        self._q: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._segment = -1
        self._open = False
        self.frames_read = 0
        self._step_read = 0
        self._thread = threading.Thread(target=self._run, name="speech-decoder", daemon=True)
        self._thread.start()

    # ---- producer side (LLM thread)
    def push(self, codes: torch.Tensor, llm_step: int) -> None:
        """One frame (K,) generated at LLM step ``llm_step``."""
        self._open = True
        self._q.put((codes, llm_step))

    def end_segment(self) -> None:
        if self._open:
            self._q.put(_SEGMENT_END)
            self._open = False

    def close(self) -> None:
        """No more frames; the worker flushes what it holds and stops."""
        self._q.put(_CLOSE)

    def cancel(self) -> None:
        """Stop as soon as possible, dropping what is not decoded yet."""
        self._cancel.set()
        self._q.put(_CLOSE)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # ---- worker
    def _frames(self, first: tuple, state: dict) -> Iterator[torch.Tensor]:
        """Frames of one segment, from ``first`` up to the segment end (``state['closed']`` on close).

        Yields (t, K): one frame at a time until the segment's first chunk is out (``state['emitted']``), then
        every frame already queued at once, so a decoder behind the LLM decodes them in one window.
        """
        item = first
        while True:
            block, end = [item], None
            while state.get("emitted") and end is None:  # drain what the LLM has queued meanwhile
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _SEGMENT_END or nxt is _CLOSE:
                    end = nxt
                else:
                    block.append(nxt)
            self.frames_read += len(block)
            self._step_read = block[-1][1]
            yield torch.stack([codes.view(-1) for codes, _ in block])  # (t, K)
            item = self._q.get() if end is None else end
            if item is _SEGMENT_END:
                return
            if item is _CLOSE or self._cancel.is_set():
                state["closed"] = True
                return

    def _emit(self, samples: torch.Tensor) -> None:
        if self._cancel.is_set() or samples.numel() == 0:
            return
        self.on_chunk(SpeechChunk(samples.numpy().astype(np.float32, copy=False), self.decoder.sample_rate,
                                  self._segment, self.frames_read, self._step_read))

    def _run(self) -> None:
        try:
            with torch.inference_mode():
                state = {"closed": False}
                while not state["closed"]:
                    item = self._q.get()
                    if item is _CLOSE or self._cancel.is_set():
                        return
                    if item is _SEGMENT_END:
                        continue
                    self._segment += 1
                    state["emitted"] = False
                    frames = self._frames(item, state)
                    if self.stream:
                        for chunk in self.decoder.stream(frames, speaker=self.speaker):
                            self._emit(chunk.samples)
                            state["emitted"] = True
                            if self._cancel.is_set():
                                return
                    else:
                        codes = torch.cat(list(frames))  # (n, K)
                        if not self._cancel.is_set():
                            self._emit(self.decoder.synthesize(codes, speaker=self.speaker))
        except BaseException as e:  # reported to the consumer, which raises it there
            self.on_error(e)

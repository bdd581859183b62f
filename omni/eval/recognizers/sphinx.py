"""CMU PocketSphinx as an offline judge: the English acoustic model, dictionary and language model ship
inside the ``pocketsphinx`` pip package, so it runs without a network and was trained by no one here."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from omni.audio.io import Audio
from omni.data.manifest import ManifestRow
from omni.eval.recognizers.base import at_rate
from omni.eval.sphinx_pool import SphinxPool, cpu_count, decode, new_decoder


class PocketSphinxRecognizer:
    """PocketSphinx 5 with its default US-English model, 16 kHz, one utterance at a time per process (it has no
    batch API and holds the GIL).

    Args:
        workers: processes that transcribe a batch in parallel (0: one per core this process may use; 1: in this
            process). Each utterance is decoded from a fresh front end, so the transcripts depend neither on
            it nor on the order of the clips.
    """

    name = "pocketsphinx"
    sample_rate = 16000

    def __init__(self, workers: int = 1) -> None:
        if workers < 0:
            raise ValueError(f"pocketsphinx workers must be >= 0, got {workers}")
        self.workers = workers or cpu_count()
        self.decoder = new_decoder(self.sample_rate)
        self._pool: SphinxPool | None = None

    def _pcm16(self, audio: Audio) -> bytes:
        pcm = np.clip(at_rate(audio, self.sample_rate), -1.0, 1.0)
        return (pcm * 32767.0).astype("<i2").tobytes()  # 16-bit little-endian PCM, what process_raw reads

    def transcribe(self, audios: Sequence[Audio], rows: Sequence[ManifestRow] | None = None) -> list[str]:
        pcms = [self._pcm16(a) for a in audios]
        if self.workers == 1 or len(pcms) < 2:
            return [decode(self.decoder, p) for p in pcms]
        if self._pool is None:  # started on first use; shut down when this recogniser goes away
            self._pool = SphinxPool(self.workers, self.sample_rate)
            weakref.finalize(self, self._pool.close)
        return self._pool.map(pcms)

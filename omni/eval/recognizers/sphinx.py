"""CMU PocketSphinx as an offline judge: the English acoustic model, dictionary and language model ship
inside the ``pocketsphinx`` pip package, so it runs without a network and was trained by no one here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from omni.audio.io import Audio
from omni.data.manifest import ManifestRow
from omni.eval.recognizers.base import at_rate


class PocketSphinxRecognizer:
    """PocketSphinx 5 with its default US-English model, 16 kHz, one utterance at a time (it has no batch API)."""

    name = "pocketsphinx"
    sample_rate = 16000

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=self.sample_rate, loglevel="FATAL")

    def transcribe(self, audios: Sequence[Audio], rows: Sequence[ManifestRow] | None = None) -> list[str]:
        out = []
        for audio in audios:
            pcm = np.clip(at_rate(audio, self.sample_rate), -1.0, 1.0)
            pcm16 = (pcm * 32767.0).astype("<i2").tobytes()  # 16-bit little-endian PCM, what process_raw reads
            self.decoder.start_utt()
            self.decoder.process_raw(pcm16, full_utt=True)
            self.decoder.end_utt()
            hyp = self.decoder.hyp()
            out.append(hyp.hypstr if hyp is not None else "")
        return out

"""The audio tokenizer's own CTC head as a recogniser: what the codes alone say (the tokenizer's gate).

``omni eval asr MANIFEST --recognizer codes-ctc --model-dir <saved tokenizer>``: each clip is encoded to
codes and the CTC head trained beside the tokenizer spells them greedily
(:class:`audio_tokenizer.ctc.CodesTranscriber`). A tokenizer whose codes carry what was said scores a low
WER; one whose codes carry only acoustics cannot.
"""

from __future__ import annotations

from collections.abc import Sequence

from omni.audio.io import Audio
from omni.data.manifest import ManifestRow
from omni.eval.recognizers.base import RecognizerConfig, at_rate, model_directory


class CodesCTCRecognizer:
    """Greedy CTC over the codes of a saved audio tokenizer (its ``ctc/`` head), batched."""

    def __init__(self, cfg: RecognizerConfig):
        from audio_tokenizer.ctc import CodesTranscriber

        path = model_directory(cfg.model_dir, "codes-ctc (a saved audio tokenizer with its CTC head)")
        self.transcriber = CodesTranscriber.from_pretrained(path, device=cfg.device)
        self.sample_rate = int(self.transcriber.tokenizer.sample_rate)
        self.name = f"codes-ctc:{path.parent.name if path.name == 'tokenizer' else path.name}"

    def transcribe(self, audios: Sequence[Audio], rows: Sequence[ManifestRow] | None = None) -> list[str]:
        if not audios:
            return []
        return self.transcriber.transcribe([at_rate(a, self.sample_rate) for a in audios], self.sample_rate)

"""A ``transformers`` Whisper model from a local directory as a recogniser (batched, greedy or beam)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from omni.audio.io import Audio
from omni.data.manifest import ManifestRow
from omni.eval.normalize import base_language
from omni.eval.recognizers.base import RecognizerConfig, at_rate, model_directory


class WhisperRecognizer:
    """``WhisperForConditionalGeneration`` + ``WhisperProcessor`` loaded with ``local_files_only=True``.

    Multilingual models get the language of ``cfg.language`` or of each row (rows of one batch share a
    language or the model detects it); English-only models are used as they are.
    """

    sample_rate = 16000

    def __init__(self, cfg: RecognizerConfig):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        path = model_directory(cfg.model_dir, "whisper")
        self.cfg = cfg
        try:
            self.processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
            self.model = WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True,
                                                                         use_safetensors=True)
        except OSError as e:
            raise FileNotFoundError(f"{path}: not a Whisper model directory ({str(e).splitlines()[0]})") from None
        self.model = self.model.to(cfg.device).eval()
        self.name = f"whisper:{path.name}"

    def _language(self, rows: Sequence[ManifestRow] | None) -> str | None:
        if not getattr(self.model.generation_config, "is_multilingual", False):
            return None
        if self.cfg.language:
            return self.cfg.language
        langs = {base_language(r.language) for r in rows or []}
        return langs.pop() if len(langs) == 1 and None not in langs else None

    @torch.no_grad()
    def transcribe(self, audios: Sequence[Audio], rows: Sequence[ManifestRow] | None = None) -> list[str]:
        if not audios:
            return []
        feats = self.processor.feature_extractor([at_rate(a, self.sample_rate) for a in audios],
                                                 sampling_rate=self.sample_rate, return_tensors="pt",
                                                 return_attention_mask=True)
        kwargs = dict(max_new_tokens=self.cfg.max_new_tokens, num_beams=self.cfg.beam_size)
        language = self._language(rows)
        if language is not None:
            kwargs.update(language=language, task="transcribe")
        ids = self.model.generate(feats.input_features.to(self.model.device, self.model.dtype),
                                  attention_mask=feats.attention_mask.to(self.model.device), **kwargs)
        return [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]

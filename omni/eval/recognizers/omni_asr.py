"""The omni model as a recogniser: speech -> audio-token codes -> the training ASR prompt -> text (greedy, or
transformers' beam search with ``beam_size > 1``: :mod:`omni.model.beam`).

The prompt is built by the training formatter (:func:`omni.data.formatters.prompt_messages` on an
``asr`` row: task, language and region tags, then the speech frames) and rendered with
``add_generation_prompt=True``, so the model sees exactly what it was trained on. A batch is encoded
by the audio tokenizer in one padded pass and decoded in one left-padded ``generate`` call, whose rows
give what they would alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from omni.audio.io import Audio
from omni.data.formatters import RowContext, prompt_messages
from omni.data.manifest import ManifestRow
from omni.eval.recognizers.base import RecognizerConfig, at_rate
from omni.model.beam import text_replies


class _BatchCodes:
    """Media source of one batch: the codes of item ``i`` for the audio reference ``<batch item i>``."""

    def __init__(self, codes: list[torch.Tensor]):
        self.by_ref = {f"<batch item {i}>": c for i, c in enumerate(codes)}

    def codes(self, manifest: str, holder: Any, where: str) -> torch.Tensor:
        return self.by_ref[holder.audio]

    def image(self, manifest: str, path: str):  # pragma: no cover - ASR prompts have no images
        raise ValueError(f"{path}: images are not part of an ASR prompt")

    video = image


def asr_rows(n: int, rows: Sequence[ManifestRow] | None) -> list[ManifestRow]:
    """ASR rows whose audio points at batch item i (language / region kept from ``rows``)."""
    out = []
    for i in range(n):
        base = rows[i] if rows is not None else ManifestRow(id=f"item-{i}", task="asr")
        out.append(replace(base, id=f"item-{i}", task="asr", audio=f"<batch item {i}>", codes=None, text=""))
    return out


class OmniRecognizer:
    """ASR with a checkpoint bundle's omni model and audio tokenizer.

    Args:
        bundle: :class:`omni.bundle.OmniBundle` (its model and audio tokenizer are used).
        cfg: ``max_new_tokens`` and the prompt ``format``.
    """

    name = "omni"

    def __init__(self, bundle: Any, cfg: RecognizerConfig):
        self.model = bundle.model.eval()
        self.tokenizer = bundle.audio_tokenizer.eval()
        self.cfg = cfg
        self.sample_rate = int(self.tokenizer.sample_rate)

    def prompts(self, audios: Sequence[Audio], rows: Sequence[ManifestRow] | None = None) -> list:
        """The encoded generation prompts (OmniExample each) of a batch."""
        wavs = [at_rate(a, self.sample_rate) for a in audios]
        codes = self.tokenizer.encode_many(wavs, self.sample_rate, batch_size=max(1, len(wavs)))  # (T_i, K) each
        ctx = RowContext(manifest="<memory>", line=0, seed=0, media=_BatchCodes(codes), cfg=self.cfg.format)
        return [self.model.encode(prompt_messages([row], "asr", ctx), add_generation_prompt=True)
                for row in asr_rows(len(audios), rows)]

    @torch.no_grad()
    def transcribe(self, audios: Sequence[Audio], rows: Sequence[ManifestRow] | None = None) -> list[str]:
        if not audios:
            return []
        texts = text_replies(self.model, self.prompts(audios, rows), self.cfg.max_new_tokens, self.cfg.beam_size)
        return [t.strip() for t in texts]

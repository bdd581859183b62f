"""``omni eval tts``: synthesise each row's text with the omni model and the speech decoder, judge it.

The prompt is the training TTS prompt (:func:`omni.data.formatters.prompt_messages` on a ``tts`` row:
tags then the text), rendered with ``add_generation_prompt=True``. With ``force_speech`` (default) the
modality switch ``<|audio_gen_start|>`` that every TTS training answer starts with is appended to the
prompt, so generation starts inside the speech segment (like forced decoder ids); the model then
generates frames until it emits ``<|audio_end|>`` (or ``max_audio_frames``). One left-padded
``generate`` call serves a batch; its frames go to the speech decoder once per voice (see
:mod:`omni.eval.speech` for judging, MCD and timings).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from omni.audio.io import Audio
from omni.config import check, option
from omni.data.formatters import DataError, FormatConfig, RowContext, prompt_messages
from omni.eval.asr import EvalRun
from omni.eval.data import EvalItem
from omni.eval.parallel import DistContext
from omni.eval.recognize import short_error
from omni.eval.recognizers.base import Recognizer
from omni.eval.speech import DecoderInput, SpeechEvalConfig, bundle_voices, evaluate_speech
from omni.model.generation import GenerationConfig
from omni.model.sampling import SamplingConfig


@dataclass
class TtsEvalConfig(SpeechEvalConfig):
    """``omni eval tts`` settings (``kind: eval_tts``)."""

    format: FormatConfig = option(default_factory=FormatConfig, help="Prompt format; must match training.")
    force_speech: bool = option(
        True, help="Append the modality switch <|audio_gen_start|> to the prompt (every TTS answer starts with it).")
    max_audio_frames: int = option(375, help="Most frames per utterance (375 = 30 s at 12.5 Hz).")
    min_audio_frames: int = option(1, help="<|audio_end|> is masked before this many frames.")
    max_new_tokens: int = option(400, help="Most generated positions per row (frames + markers).")
    audio: SamplingConfig = option(default_factory=SamplingConfig, help="Sampling of audio codes (greedy by default).")
    seed: int = option(0, help="Sampling seed (used when audio.do_sample).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(1 <= self.min_audio_frames <= self.max_audio_frames, "min_audio_frames", "must be in [1, max_audio_frames]")
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")


class _TextOnly:
    """Media source of TTS prompts: they hold text only."""

    def codes(self, manifest: str, holder: Any, where: str) -> torch.Tensor:
        raise DataError(f"{where}: a TTS prompt has no input audio")

    image = video = codes


def tts_prompt(model: Any, row: Any, cfg: TtsEvalConfig) -> Any:
    """The encoded generation prompt (OmniExample) of one TTS row, optionally ending in the modality switch."""
    ctx = RowContext(manifest="<memory>", line=0, seed=0, media=_TextOnly(), cfg=cfg.format)
    ex = model.encode(prompt_messages([replace(row, task="tts")], "tts", ctx), add_generation_prompt=True)
    if cfg.force_speech:
        switch = torch.tensor([model.token_ids.audio_gen_start])
        ex = replace(ex, input_ids=torch.cat([ex.input_ids, switch]), labels=torch.cat([ex.labels, torch.tensor([-100])]))
    return ex


def tts_codes(bundle: Any, cfg: TtsEvalConfig) -> Any:
    """``make`` for :func:`evaluate_speech`: one batched generate call, the frames of each row's first segment."""
    model = bundle.model.eval()
    gen = GenerationConfig(max_new_tokens=cfg.max_new_tokens, max_audio_frames=cfg.max_audio_frames,
                           min_audio_frames=cfg.min_audio_frames, audio=cfg.audio, allow_audio=True, seed=cfg.seed)

    def make(items: list[EvalItem], refs: list[Audio | None]) -> list[DecoderInput]:
        prompts, ok = [], []
        out: list[DecoderInput | None] = [None] * len(items)
        for i, it in enumerate(items):
            try:
                prompts.append(tts_prompt(model, it.row, cfg))
                ok.append(i)
            except (DataError, ValueError) as e:
                out[i] = DecoderInput(None, 0.0, short_error(e))
        if prompts:
            t0 = time.perf_counter()
            with torch.no_grad():
                res = model.generate(prompts, gen)
            elapsed = time.perf_counter() - t0
            n_frames = [len(res.segments[j][0]) if res.segments[j] else len(res.frames[j]) for j in range(len(ok))]
            total = sum(n_frames) or 1
            for j, i in enumerate(ok):
                codes = res.segments[j][0] if res.segments[j] else res.frames[j]  # (T, K)
                out[i] = DecoderInput(codes, elapsed * (n_frames[j] / total if sum(n_frames) else 1 / len(ok)))
        return out  # type: ignore[return-value]

    return make


def evaluate_tts(cfg: TtsEvalConfig, manifest: str | Path, bundle: Any, judge: Recognizer, ctx: DistContext,
                 out_dir: str | Path | None = None, progress: bool = True) -> EvalRun:
    """Synthesise every row's text, judge it (and the reference audio), gather every rank's results."""
    return evaluate_speech("tts", cfg, manifest, bundle.speech_decoder, bundle_voices(bundle, cfg.voices), judge, ctx,
                           tts_codes(bundle, cfg), need_audio=False, out_dir=out_dir, progress=progress)

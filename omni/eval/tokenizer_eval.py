"""``omni eval tokenizer``: resynthesis through the audio tokenizer and the speech decoder, judged.

Each row's audio is encoded to codes (``AudioTokenizer.encode_many``, one padded pass per batch) and
decoded back to speech by the speech decoder (flow decoder + vocoder); the judge transcribes both the
resynthesis and the original, so the report's intelligibility gap is what the codes + decoder lose. MCD
compares the resynthesis with the original. RTF = (encode + decode seconds) / resynthesised seconds.

The components come from a checkpoint bundle, or straight from the training runs' outputs (a saved
tokenizer, flow decoder and vocoder): the recipe's resynthesis gate judges them before any LLM stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.audio.io import Audio
from omni.eval.asr import EvalRun
from omni.eval.data import EvalItem
from omni.eval.parallel import DistContext
from omni.eval.recognize import short_error
from omni.eval.recognizers.base import Recognizer, at_rate
from omni.eval.speech import (
    DecoderInput,
    SpeechEvalConfig,
    bundle_voices,
    choose_voices,
    evaluate_speech,
)


@dataclass
class TokenizerEvalConfig(SpeechEvalConfig):
    """``omni eval tokenizer`` settings (``kind: eval_tokenizer``)."""


@dataclass
class Resynthesis:
    """The components a resynthesis runs through.

    Attributes:
        tokenizer: an :class:`~audio_tokenizer.model.AudioTokenizer` (audio -> codes).
        decoder: a :class:`~decoders.speech_decoder.SpeechDecoder` (codes -> waveform).
        voices: the voices to decode with (flow decoder speakers; "" = its default).
    """

    tokenizer: Any
    decoder: Any
    voices: list[str]


def bundle_resynthesis(bundle: Any, voices: list[str]) -> Resynthesis:
    """The bundle's tokenizer and speech decoder, with ``voices`` checked against its flow decoder."""
    return Resynthesis(bundle.audio_tokenizer, bundle.speech_decoder, bundle_voices(bundle, voices))


def component_resynthesis(tokenizer_dir: str | Path, flow_dir: str | Path, vocoder_dir: str | Path,
                          voices: list[str], device: str = "cpu") -> Resynthesis:
    """A tokenizer, flow decoder and vocoder loaded from their saved directories (local only).

    Without ``voices`` the flow decoder's first speaker is used (the reply voice of the corpus recipes).
    """
    from audio_tokenizer.model import AudioTokenizer
    from decoders.speech_decoder import SpeechDecoder, SpeechDecoderConfig

    tokenizer = AudioTokenizer.from_pretrained(tokenizer_dir, device=device)
    decoder = SpeechDecoder.from_config(SpeechDecoderConfig(flow_dir=str(flow_dir), vocoder_dir=str(vocoder_dir),
                                                            device=device))
    speakers = list(decoder.flow.cfg.speakers)
    return Resynthesis(tokenizer, decoder, choose_voices(speakers, speakers, voices, f"the flow decoder {flow_dir}"))


def resynthesis_codes(tok: Any) -> Any:
    """``make`` for :func:`evaluate_speech`: the tokenizer's codes of each row's own audio."""
    tok = tok.eval()
    sr = int(tok.sample_rate)

    def make(items: list[EvalItem], refs: list[Audio | None]) -> list[DecoderInput]:
        wavs = [at_rate(a, sr) for a in refs]  # type: ignore[arg-type]
        t0 = time.perf_counter()
        try:
            codes = tok.encode_many(wavs, sr, batch_size=max(1, len(wavs)))
        except (ValueError, RuntimeError):  # one clip breaks the batch: encode one by one
            out = []
            for w in wavs:
                t1 = time.perf_counter()
                try:
                    out.append(DecoderInput(tok.encode(w, sr), time.perf_counter() - t1))
                except (ValueError, RuntimeError) as e:
                    out.append(DecoderInput(None, 0.0, f"audio tokenizer failed: {short_error(e)}"))
            return out
        elapsed = time.perf_counter() - t0
        total = sum(len(w) for w in wavs) or 1
        return [DecoderInput(c, elapsed * len(w) / total) for c, w in zip(codes, wavs)]

    return make


def evaluate_tokenizer(cfg: TokenizerEvalConfig, manifest: str | Path, system: Resynthesis, judge: Recognizer,
                       ctx: DistContext, out_dir: str | Path | None = None, progress: bool = True) -> EvalRun:
    """Resynthesise every row's audio, judge resynthesis and original, gather every rank's results."""
    return evaluate_speech("tokenizer", cfg, manifest, system.decoder, system.voices, judge, ctx,
                           resynthesis_codes(system.tokenizer), need_audio=True, out_dir=out_dir, progress=progress)

"""``omni eval tokenizer``: resynthesis through the audio tokenizer and the speech decoder, judged.

Each row's audio is encoded to codes (``AudioTokenizer.encode_many``, one padded pass per batch) and
decoded back to speech by the bundle's speech decoder; the judge transcribes both the resynthesis and
the original, so the report's intelligibility gap is what the codes + decoder lose. MCD compares the
resynthesis with the original. RTF = (encode + decode seconds) / resynthesised seconds.
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
from omni.eval.speech import Codes, SpeechEvalConfig, evaluate_speech


@dataclass
class TokenizerEvalConfig(SpeechEvalConfig):
    """``omni eval tokenizer`` settings (``kind: eval_tokenizer``)."""


def resynthesis_codes(bundle: Any) -> Any:
    """``make_codes`` for :func:`evaluate_speech`: the tokenizer's codes of each row's own audio."""
    tok = bundle.audio_tokenizer.eval()
    sr = int(tok.sample_rate)

    def make(items: list[EvalItem], refs: list[Audio | None]) -> list[Codes]:
        wavs = [at_rate(a, sr) for a in refs]  # type: ignore[arg-type]
        t0 = time.perf_counter()
        try:
            codes = tok.encode_many(wavs, sr, batch_size=max(1, len(wavs)))
        except (ValueError, RuntimeError):  # one clip breaks the batch: encode one by one
            out = []
            for w in wavs:
                t1 = time.perf_counter()
                try:
                    out.append(Codes(tok.encode(w, sr), time.perf_counter() - t1))
                except (ValueError, RuntimeError) as e:
                    out.append(Codes(None, 0.0, f"audio tokenizer failed: {short_error(e)}"))
            return out
        elapsed = time.perf_counter() - t0
        total = sum(len(w) for w in wavs) or 1
        return [Codes(c, elapsed * len(w) / total) for c, w in zip(codes, wavs)]

    return make


def evaluate_tokenizer(cfg: TokenizerEvalConfig, manifest: str | Path, bundle: Any, judge: Recognizer,
                       ctx: DistContext, out_dir: str | Path | None = None, progress: bool = True) -> EvalRun:
    """Resynthesise every row's audio, judge resynthesis and original, gather every rank's results."""
    return evaluate_speech("tokenizer", cfg, manifest, bundle, judge, ctx, resynthesis_codes(bundle),
                           need_audio=True, out_dir=out_dir, progress=progress)

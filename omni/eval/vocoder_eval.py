"""``omni eval vocoder``: the vocoder's copy-synthesis gate (reference mel -> vocoder -> judge).

Each row's audio is resampled to the vocoder's rate, turned into the log-mel the vocoder was trained on
(the shared front end, :mod:`decoders.mel`) and vocoded back to a waveform; the judge transcribes both the
copy and the original. The WER ratio copy / original is what the vocoder alone loses: nothing upstream
(codes, flow decoder, LLM) is involved, so a failing TTS can be attributed.

``vocoder: griffin-lim`` runs the same gate on Griffin-Lim (:class:`decoders.griffin_lim.GriffinLimVocoder`),
the no-training baseline a trained vocoder must beat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omni.audio.io import Audio
from omni.config import check, option
from omni.eval.asr import EvalRun
from omni.eval.data import EvalItem
from omni.eval.parallel import DistContext
from omni.eval.recognizers.base import Recognizer, at_rate
from omni.eval.speech import DecoderInput, SpeechEvalConfig, evaluate_speech

GRIFFIN_LIM = "griffin-lim"


@dataclass
class VocoderEvalConfig(SpeechEvalConfig):
    """``omni eval vocoder`` settings (``kind: eval_vocoder``)."""

    griffin_lim_iters: int = option(32, help="Griffin-Lim iterations (with --vocoder griffin-lim).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.griffin_lim_iters >= 1, "griffin_lim_iters", "must be >= 1")
        check(not self.voices, "voices", "a vocoder has no voices (copy-synthesis keeps the reference's)")


class CopySynthesis:
    """A vocoder as the speech evaluation's decoder: log-mel (M, F) -> waveform (F hop,).

    Args:
        vocoder: ``"griffin-lim"`` or a saved HiFi-GAN directory.
        griffin_lim_iters: iterations of the Griffin-Lim baseline.
        device: where a HiFi-GAN runs.
    """

    def __init__(self, vocoder: str | Path, griffin_lim_iters: int = 32, device: str = "cpu"):
        from decoders.griffin_lim import GriffinLimVocoder
        from decoders.mel import MelConfig, MelFrontEnd
        from decoders.vocoder import HiFiGANVocoder

        self.device = torch.device(device)
        if str(vocoder) == GRIFFIN_LIM:
            self.model: Any = GriffinLimVocoder(MelConfig(), griffin_lim_iters)
            mel = self.model.mel
            self.name = f"{GRIFFIN_LIM} ({griffin_lim_iters} iterations)"
        else:
            path = Path(vocoder)
            if not path.is_dir():
                raise FileNotFoundError(f"{path}: vocoder directory not found (a saved HiFi-GAN, or '{GRIFFIN_LIM}')")
            self.model = HiFiGANVocoder.from_pretrained(path).to(self.device)
            mel = self.model.cfg.mel
            self.name = f"hifigan:{path.parent.name if path.name == 'model' else path.name}"
        self.front_end = MelFrontEnd(mel)
        self.sample_rate = mel.sample_rate

    def mel(self, audio: Audio) -> torch.Tensor:
        """The log-mel (M, F) of a reference clip at the vocoder's rate."""
        return self.front_end(torch.from_numpy(at_rate(audio, self.sample_rate)).float())[0]

    @torch.no_grad()
    def synthesize(self, mel: torch.Tensor, speaker: str | None = None) -> torch.Tensor:
        """(M, F) log-mel -> (F hop,) waveform."""
        return self.model(mel.unsqueeze(0).to(self.device))[0].float().cpu()


def copy_mels(system: CopySynthesis) -> Any:
    """``make`` for :func:`evaluate_speech`: the log-mel of each row's own audio."""

    def make(items: list[EvalItem], refs: list[Audio | None]) -> list[DecoderInput]:
        out = []
        for ref in refs:
            t0 = time.perf_counter()
            mel = system.mel(ref)  # type: ignore[arg-type]
            out.append(DecoderInput(mel, time.perf_counter() - t0, frames=mel.shape[-1]))
        return out

    return make


def evaluate_vocoder(cfg: VocoderEvalConfig, manifest: str | Path, system: CopySynthesis, judge: Recognizer,
                     ctx: DistContext, out_dir: str | Path | None = None, progress: bool = True) -> EvalRun:
    """Copy-synthesise every row's audio, judge copy and original, gather every rank's results."""
    return evaluate_speech("vocoder", cfg, manifest, system, [""], judge, ctx, copy_mels(system), need_audio=True,
                           out_dir=out_dir, progress=progress)

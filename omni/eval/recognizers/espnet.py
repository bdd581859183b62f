"""ESPnet ``Speech2Text`` from a local model directory as a recogniser (when espnet is installed).

The directory is an unpacked ESPnet model (as ``espnet_model_zoo`` or a recipe's ``exp/`` leaves it): one
training config (``config.yaml`` beside or below it) and one ``*.pth`` checkpoint. Files the config
refers to by relative paths (BPE model, normalisation statistics) are resolved from the directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omni.audio.io import Audio
from omni.data.manifest import ManifestRow
from omni.eval.recognizers.base import RecognizerConfig, at_rate, model_directory


def find_model_files(path: Path) -> tuple[Path, Path]:
    """(training config, checkpoint) of an unpacked ESPnet model directory; FileNotFoundError naming what is missing."""
    configs = sorted(p for p in path.rglob("config.yaml") if p.is_file())
    checkpoints = sorted(p for p in path.rglob("*.pth") if p.is_file())
    if not configs or not checkpoints:
        missing = " and ".join(x for x, found in (("config.yaml", configs), ("*.pth checkpoint", checkpoints))
                               if not found)
        raise FileNotFoundError(f"{path}: not an ESPnet model directory (no {missing} found below it)")
    config = next((c for c in configs if "asr" in c.parent.name), configs[0])
    checkpoint = min(checkpoints, key=lambda p: (p.parent != config.parent, p.name != "valid.acc.ave.pth", str(p)))
    return config, checkpoint


def _rate(fs: int | str) -> int:
    """ESPnet writes rates as 16000 or "16k"."""
    text = str(fs).strip().lower()
    return int(float(text[:-1]) * 1000) if text.endswith("k") else int(float(text))


class EspnetRecognizer:
    """``espnet2.bin.asr_inference.Speech2Text`` over a batch, one utterance at a time (its own API)."""

    def __init__(self, cfg: RecognizerConfig):
        path = model_directory(cfg.model_dir, "espnet")
        config, checkpoint = find_model_files(path)
        try:
            from espnet2.bin.asr_inference import Speech2Text
        except ImportError as e:
            raise ValueError(f"the espnet recogniser needs espnet and its ASR dependencies ({e}); "
                             "see the README (make setup installs espnet)") from None
        cwd = os.getcwd()
        os.chdir(path)  # ESPnet configs name their BPE model and stats files relative to the model directory
        try:
            self.s2t = Speech2Text(asr_train_config=str(config), asr_model_file=str(checkpoint), device=cfg.device,
                                   beam_size=cfg.beam_size, nbest=1)
        finally:
            os.chdir(cwd)
        self.sample_rate = _rate((getattr(self.s2t.asr_train_args, "frontend_conf", None) or {}).get("fs", 16000))
        self.name = f"espnet:{path.name}"

    def transcribe(self, audios: Sequence[Audio], rows: Sequence[ManifestRow] | None = None) -> list[str]:
        out = []
        for audio in audios:
            results = self.s2t(at_rate(audio, self.sample_rate))
            out.append((results[0][0] or "").strip() if results else "")
        return out

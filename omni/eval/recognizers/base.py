"""One interface for every speech recogniser, used as the system under test and as a judge.

A :class:`Recognizer` turns a batch of waveforms into text. Implementations:

==============  ===============================================================================
name            what it runs
==============  ===============================================================================
``omni``        the omni model of a checkpoint bundle with the training ASR prompt (batched)
``pocketsphinx``  CMU PocketSphinx with the English model its pip package ships (offline, a judge
                no one here trained; one utterance at a time)
``whisper``     a ``transformers`` Whisper model from a local directory (batched)
``espnet``      ESPnet ``Speech2Text`` from a local model directory (when espnet imports)
``codes-ctc``   the audio tokenizer's CTC head on its codes (a saved tokenizer directory): the codes'
                phonetic-content gate
==============  ===============================================================================

Model directories are local only: a missing one is a clear error, never a download.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from omni.audio.io import Audio
from omni.config import check, option
from omni.data.formatters import FormatConfig
from omni.data.manifest import ManifestRow

RECOGNIZERS = ("omni", "pocketsphinx", "whisper", "espnet", "codes-ctc")


@dataclass
class RecognizerConfig:
    """Which recogniser to run and its decoding settings (``kind: recognizer``)."""

    name: str = option("omni", help="Recogniser: omni (the bundle's model), pocketsphinx, whisper, espnet or codes-ctc "
                       "(the audio tokenizer's CTC head on its codes).")
    model_dir: str | None = option(
        None, help="whisper / espnet: local model directory; codes-ctc: a saved audio tokenizer with its ctc/ head "
        "(never downloaded). omni uses --checkpoint instead.")
    device: str = option("cpu", help="Torch device (cpu, cuda, cuda:1); under torchrun each rank uses its own GPU.")
    max_new_tokens: int = option(128, help="omni / whisper: most tokens generated per utterance.")
    beam_size: int = option(
        1, help="omni / whisper / espnet: beam width (1 = greedy; omni: transformers' beam search over the "
        "prompt's embeddings, omni.model.beam).")
    language: str | None = option(
        None, help="whisper: language forced on a multilingual model (null: each row's language, else detection).")
    workers: int = option(
        1, help="pocketsphinx: processes that transcribe a batch in parallel (it is single-threaded; 0: one per core "
        "this process may use, per rank). The transcripts do not depend on it.")
    format: FormatConfig = option(
        default_factory=FormatConfig, help="omni: prompt format; must match the one the model was trained with.")

    def __post_init__(self) -> None:
        check(self.name in RECOGNIZERS, "name", f"must be one of {', '.join(RECOGNIZERS)}, got '{self.name}'")
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        check(self.beam_size >= 1, "beam_size", "must be >= 1")
        check(self.workers >= 0, "workers", f"must be >= 0 (0: one per core), got {self.workers}")
        check(self.name not in ("whisper", "espnet", "codes-ctc") or bool(self.model_dir), "model_dir",
              f"the {self.name} recogniser needs a local model directory")


@runtime_checkable
class Recognizer(Protocol):
    """Speech -> text.

    Attributes:
        name: short label used in reports ("omni", "pocketsphinx", "whisper:whisper-tiny").
        sample_rate: the rate it wants; callers may pass any rate (it resamples).
    """

    name: str
    sample_rate: int

    def transcribe(self, audios: Sequence[Audio], rows: Sequence[ManifestRow] | None = None) -> list[str]:
        """One transcript per waveform. ``rows`` (same length) give language/region hints where known."""


def model_directory(path: str | None, what: str) -> Path:
    """A local model directory, or FileNotFoundError naming it (models are never downloaded)."""
    if not path:
        raise ValueError(f"{what}: no model directory given (model_dir / --model-dir)")
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: {what} model directory not found (models are loaded from local "
                                "directories only, never downloaded)")
    return p


def at_rate(audio: Audio, sample_rate: int) -> Any:
    """The samples (T,) float32 at ``sample_rate``."""
    from omni.audio.io import resample

    if audio.sample_rate == sample_rate:
        return audio.samples
    return resample(audio.samples, audio.sample_rate, sample_rate)


def build_recognizer(cfg: RecognizerConfig, bundle: Any = None) -> Recognizer:
    """The recogniser ``cfg`` names; ``omni`` needs a loaded bundle (:func:`omni.bundle.load_bundle`)."""
    if cfg.name == "omni":
        from omni.eval.recognizers.omni_asr import OmniRecognizer

        if bundle is None:
            raise ValueError("the omni recogniser needs a checkpoint bundle (--checkpoint DIR)")
        return OmniRecognizer(bundle, cfg)
    if cfg.name == "pocketsphinx":
        from omni.eval.recognizers.sphinx import PocketSphinxRecognizer

        return PocketSphinxRecognizer(cfg.workers)
    if cfg.name == "whisper":
        from omni.eval.recognizers.whisper import WhisperRecognizer

        return WhisperRecognizer(cfg)
    if cfg.name == "codes-ctc":
        from omni.eval.recognizers.codes_ctc import CodesCTCRecognizer

        return CodesCTCRecognizer(cfg)
    from omni.eval.recognizers.espnet import EspnetRecognizer

    return EspnetRecognizer(cfg)

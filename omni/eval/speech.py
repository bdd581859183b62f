"""Shared core of the speech-output evaluations (``omni eval tts``, ``tokenizer`` and ``vocoder``).

For every batch of this rank::

    items --make--> the decoder's input per item  (TTS: codes (T, 8) from the omni model; tokenizer: codes of
                    the row's audio; vocoder: the log-mel (M, F) of the row's audio)
      --decoder, per voice--> waveforms --judge--> transcripts --score--> WER vs the row's text
    reference audio (when the row has it) --judge--> transcript --score--> WER of the references
    waveform vs reference --mel-cepstral distortion (DTW)--> MCD

The decoder is anything with ``synthesize(x, speaker=None) -> (S,) waveform`` and ``sample_rate`` (the
bundle's :class:`~decoders.speech_decoder.SpeechDecoder` for codes, a vocoder wrapper for mels).
RTF of the speech output = (making + decoding seconds) / generated audio seconds; the judge's own time is
reported apart. A few waveforms are saved under ``OUT/samples``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from omni.audio.io import Audio, AudioError, save_audio
from omni.config import check, option
from omni.eval.asr import EvalRun
from omni.eval.data import (
    EvalDataConfig,
    EvalItem,
    load_item_audio,
    plan_batches,
    rank_batches,
    read_items,
)
from omni.eval.judge_cache import ReferenceCache
from omni.eval.mcd import McdConfig, mel_cepstral_distortion
from omni.eval.metrics import score_pair
from omni.eval.normalize import NORMALIZERS
from omni.eval.parallel import DistContext, gather
from omni.eval.recognize import short_error, timed_transcribe
from omni.eval.recognizers.base import Recognizer, RecognizerConfig
from omni.eval.results import UtteranceResult, summarize


@dataclass
class SpeechEvalConfig:
    """Settings shared by the speech-output evaluations."""

    judge: RecognizerConfig = option(
        default_factory=lambda: RecognizerConfig(name="pocketsphinx"),
        help="The independent recogniser that listens to the speech (pocketsphinx, whisper, espnet; omni = self-judged).")
    data: EvalDataConfig = option(default_factory=EvalDataConfig, help="Rows, batching and report buckets.")
    normalizer: str = option("auto", help="Text normalisation before scoring (auto, whisper, basic, none).")
    voices: list[str] = option(
        default_factory=list, help="Voices (speakers of the flow decoder) to synthesise with; empty = the bundle's first.")
    judge_references: bool = option(True, help="Also judge the manifest's own audio (the intelligibility gap).")
    reference_cache: str | None = option(
        None, help="Directory that keeps the judge's transcripts of the reference audio, keyed by judge and file "
        "(omni.eval.judge_cache): evaluations that judge the same references (a recipe's gates and TTS "
        "evaluation) judge them once. null: judge them every time.")
    mcd: McdConfig = option(default_factory=McdConfig, help="Mel-cepstral distortion to the reference audio.")
    samples: int = option(4, help="Save the waveforms of the first N rows (per voice) under OUT/samples.")

    def __post_init__(self) -> None:
        check(self.normalizer in NORMALIZERS, "normalizer", f"must be one of {', '.join(NORMALIZERS)}")
        check(self.samples >= 0, "samples", "must be >= 0")
        check(len(set(self.voices)) == len(self.voices), "voices", "lists a voice twice")


@dataclass
class DecoderInput:
    """What was made for one item: the decoder's input (codes (T, K) or a mel (M, F)) or None with the error;
    seconds spent making it."""

    data: torch.Tensor | None
    seconds: float
    error: str | None = None
    frames: int | None = None  # frames of the input (None: len(data), the code frames)

    @property
    def num_frames(self) -> int:
        """Frames the decoder's input holds (code frames at 12.5 Hz, or mel frames)."""
        return self.frames if self.frames is not None else len(self.data) if self.data is not None else 0


#: make(items, references) -> one DecoderInput per item (references: the loaded reference audio or None).
MakeInputs = Callable[[list[EvalItem], list[Audio | None]], list[DecoderInput]]


class Decoder(Protocol):
    """Turns what ``make`` produced into speech."""

    sample_rate: int

    def synthesize(self, x: torch.Tensor, speaker: str | None = None) -> torch.Tensor:
        """One item's input -> (S,) float waveform at :attr:`sample_rate`."""


def choose_voices(known: list[str], defaults: list[str], voices: list[str], what: str = "the flow decoder") -> list[str]:
    """The voices to synthesise with: ``voices`` (each checked against ``known``), else the first default.

    Raises:
        ValueError: a requested voice is not one of ``known``.
    """
    if not voices:
        return [defaults[0]] if defaults else [""]
    unknown = [v for v in voices if v not in known]
    if unknown:
        raise ValueError(f"voices {unknown} are not speakers of {what} (known: {', '.join(known)})")
    return list(voices)


def bundle_voices(bundle: Any, voices: list[str]) -> list[str]:
    """:func:`choose_voices` for a checkpoint bundle (its flow decoder's speakers, its offered voices)."""
    return choose_voices(list(bundle.speech_decoder.flow.cfg.speakers), list(bundle.voices), voices,
                         "the bundle's flow decoder")


def _item_result(item: EvalItem, group: str) -> UtteranceResult:
    row = item.row
    return UtteranceResult(item.index, item.line, item.id, group=group, language=row.language if row else None,
                           reference=(row.text or "") if row else "")


def evaluate_speech(task: str, cfg: SpeechEvalConfig, manifest: str | Path, decoder: Decoder, voices: list[str],
                    judge: Recognizer, ctx: DistContext, make: MakeInputs, *, need_audio: bool,
                    out_dir: str | Path | None = None, progress: bool = True) -> EvalRun:
    """Run the pipeline of the module docstring over this rank's batches; gather every rank's results.

    Args:
        voices: speakers to synthesise each item with ("" = the decoder's default); one result per voice.

    Returns:
        EvalRun whose results are per (row, voice), grouped by voice; ``extra["reference_results"]`` holds
        the judge's results on the reference audio (grouped by the rows' speakers).
    """
    d = cfg.data
    items = read_items(manifest, need_audio=need_audio, need_text=True, limit=d.limit,
                       max_audio_seconds=d.max_audio_seconds)
    batches = rank_batches(plan_batches(items, d.batch_size, d.sort_by_duration), ctx.rank, ctx.world)
    samples_dir = Path(out_dir) / "samples" if out_dir is not None and cfg.samples > 0 else None
    cache = ReferenceCache(cfg.reference_cache, judge.name, cfg.judge) if cfg.reference_cache else None
    mine: list[tuple[tuple[int, int], UtteranceResult]] = []
    refs_mine: list[tuple[int, UtteranceResult]] = []
    bar = tqdm(total=sum(len(b) for b in batches), desc=f"{task} [judge {judge.name}]", unit="utt",
               disable=not (progress and ctx.is_main))
    t_start = time.perf_counter()
    for batch in batches:
        batch_items = [items[i] for i in batch]
        refs: list[Audio | None] = []
        usable: list[EvalItem] = []
        for it in batch_items:  # reference audio (the input itself for the tokenizer evaluation)
            ref = None
            if it.audio_path is not None:
                try:
                    ref = load_item_audio(it)
                except (AudioError, ValueError, OSError) as e:
                    for v, voice in enumerate(voices):
                        r = _item_result(it, voice)
                        r.error, r.audio = short_error(e), str(it.audio_path)
                        mine.append(((it.index, v), r))
                    continue
            usable.append(it)
            refs.append(ref)
        made = make(usable, refs) if usable else []

        # references: the judge on the manifest's own audio (or what it made of it before, from the cache)
        with_ref = [(it, a) for it, a in zip(usable, refs) if a is not None]
        if cfg.judge_references and with_ref:
            known = [cache.get(it) if cache else None for it, _ in with_ref]
            todo = [(it, a) for (it, a), c in zip(with_ref, known) if c is None]
            fresh = timed_transcribe(judge, [a for _, a in todo], [it.row for it, _ in todo],
                                     [it.index for it, _ in todo]) if todo else []
            if cache:
                for rec in fresh:
                    cache.put(items[rec.index], rec)
            for rec in [c for c in known if c is not None] + fresh:
                it = items[rec.index]
                r = _item_result(it, it.row.speaker or "")
                r.audio, r.duration, r.seconds, r.hypothesis, r.error = (str(it.audio_path), rec.audio_seconds,
                                                                         rec.seconds, rec.text, rec.error)
                if r.error is None:
                    r.score = score_pair(r.reference, r.hypothesis, r.language, cfg.normalizer)
                refs_mine.append((it.index, r))

        for v, voice in enumerate(voices):
            waves: list[tuple[EvalItem, Audio, float, Audio | None, int]] = []
            for it, ref, c in zip(usable, refs, made):
                r = _item_result(it, voice)
                if c.error is not None or c.data is None or c.data.numel() == 0:
                    r.error = c.error or "no speech generated (zero audio frames)"
                    mine.append(((it.index, v), r))
                    continue
                t0 = time.perf_counter()
                try:
                    wav = decoder.synthesize(c.data, speaker=voice or None).numpy()
                except (ValueError, RuntimeError) as e:
                    r.error = f"speech decoder failed: {short_error(e)}"
                    mine.append(((it.index, v), r))
                    continue
                seconds = time.perf_counter() - t0 + c.seconds / len(voices)
                waves.append((it, Audio(wav.astype(np.float32), decoder.sample_rate), seconds, ref, c.num_frames))
            if not waves:
                continue
            recs = timed_transcribe(judge, [w[1] for w in waves], [w[0].row for w in waves],
                                    [w[0].index for w in waves])
            for (it, audio, seconds, ref, frames), rec in zip(waves, recs):
                r = _item_result(it, voice)
                r.duration, r.seconds, r.hypothesis, r.error = audio.duration, seconds, rec.text, rec.error
                r.extra = {"voice": voice, "frames": frames, "judge_seconds": round(rec.seconds, 6)}
                if r.error is None:
                    r.score = score_pair(r.reference, r.hypothesis, r.language, cfg.normalizer)
                if ref is not None:
                    try:
                        r.extra["mcd"] = round(mel_cepstral_distortion(audio.samples, audio.sample_rate, ref.samples,
                                                                       ref.sample_rate, cfg.mcd), 4)
                    except (ValueError, librosa_error()) as e:  # e.g. a clip shorter than one analysis frame
                        r.extra["mcd_error"] = short_error(e)
                if samples_dir is not None and it.index < cfg.samples:
                    path = samples_dir / f"{it.index:04d}_{_safe(it.id)}_{_safe(voice) or 'default'}.wav"
                    save_audio(path, audio.samples, audio.sample_rate)
                    r.audio = str(path)
                mine.append(((it.index, v), r))
        bar.update(len(batch))
    bar.close()
    wall = time.perf_counter() - t_start
    if ctx.is_main:  # rows that failed before batching are reported once, by rank 0
        for it in items:
            if it.error is not None:
                for v, voice in enumerate(voices):
                    r = _item_result(it, voice)
                    r.error, r.audio = it.error, str(it.audio_path) if it.audio_path else None
                    mine.append(((it.index, v), r))
    results = [r for _, r in sorted(gather(ctx, mine), key=lambda x: x[0])]
    references = [r for _, r in sorted(gather(ctx, refs_mine), key=lambda x: x[0])]
    return EvalRun(results, max(gather(ctx, [wall])), ctx.world, {"reference_results": references, "voices": voices})


def librosa_error() -> type[Exception]:
    from librosa.util.exceptions import ParameterError

    return ParameterError


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


REFERENCE_WER_FLOOR = 0.01  # 1 point: the smallest reference WER a WER ratio divides by


def wer_ratio(wer: float | None, reference_wer: float | None) -> float | None:
    """The judge's WER on generated speech over its WER on the reference audio: the intelligibility bar of the
    speech gates and of TTS. The reference WER is floored at :data:`REFERENCE_WER_FLOOR`, so a judge that
    reads every reference right still gives a ratio. None when either is unknown."""
    if wer is None or reference_wer is None:
        return None
    return wer / max(reference_wer, REFERENCE_WER_FLOOR)


def speech_report_extra(run: EvalRun) -> dict[str, Any]:
    """The TTS / tokenizer / vocoder report sections: references, WER ratio (and the unfloored intelligibility
    gap), MCD, synthesis timings."""
    refs = run.extra["reference_results"]
    ok = [r for r in run.results if r.ok]
    ref_totals = summarize(refs) if refs else None
    ours = summarize(run.results)["wer"]
    gap = None
    if ref_totals and ref_totals["wer"] and ours is not None:
        gap = ours / ref_totals["wer"]
    mcds = [r.extra["mcd"] for r in run.results if "mcd" in r.extra]
    by_voice: dict[str, list[float]] = {}
    for r in run.results:
        if "mcd" in r.extra:
            by_voice.setdefault(r.group, []).append(r.extra["mcd"])
    judge_seconds = float(sum(r.extra.get("judge_seconds", 0.0) for r in ok))
    generated = float(sum(r.duration for r in ok))
    seconds = float(sum(r.seconds for r in ok))
    return {
        "references": ref_totals,
        "wer_ratio": wer_ratio(ours, ref_totals["wer"] if ref_totals else None),
        "intelligibility_gap": gap,
        "mcd": {"mean": float(np.mean(mcds)) if mcds else None, "count": len(mcds),
                "by_group": {k: float(np.mean(v)) for k, v in sorted(by_voice.items())},
                "formula": "10/ln10 * sqrt(2 * sum_{d=1..D} (c_d - c'_d)^2), DTW-aligned, c0 excluded"},
        "synthesis": {"seconds": seconds, "generated_seconds": generated,
                      "rtf": seconds / generated if generated else None, "frames": int(sum(r.extra.get("frames", 0)
                                                                                           for r in ok)),
                      "judge_seconds": judge_seconds, "judge_rtf": judge_seconds / generated if generated else None},
        "voices": run.extra["voices"],
    }

"""Rendering planned utterances to audio files, in parallel, resumably.

Each utterance is synthesised once at the engine's native rate, resampled
(soxr) to every configured rate and written atomically as
``audio/{rate // 1000}k/{utt_id}.{fmt}``. Files already on disk are kept (a
rerun after an interruption renders only what is missing). Worker processes
each load their own engine instance.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from omni.audio.io import probe_audio, resample, save_audio
from omni.data.synth.engines import synthesize
from omni.data.synth.plan import Utterance


def audio_path(utt_id: str, sample_rate: int, fmt: str) -> str:
    """Path of an utterance's file, relative to the corpus directory."""
    return f"audio/{sample_rate // 1000}k/{utt_id}.{fmt}"


@dataclass(frozen=True)
class _Job:
    utt: Utterance
    out_dir: str
    rates: tuple[int, ...]
    fmt: str


def _render(job: _Job) -> tuple[str, dict[int, float]]:
    """Synthesise one utterance and write it at every rate; returns (utt_id, {rate: seconds})."""
    paths = {sr: Path(job.out_dir) / audio_path(job.utt.utt_id, sr, job.fmt) for sr in job.rates}
    if all(p.exists() for p in paths.values()):
        return job.utt.utt_id, {sr: probe_audio(p).duration for sr, p in paths.items()}
    speech = synthesize(job.utt.text, job.utt.voice, rate=job.utt.rate, pitch=job.utt.pitch)
    durations = {}
    for sr, path in paths.items():
        samples = resample(speech.samples, speech.sample_rate, sr)
        save_audio(path, samples, sr)
        durations[sr] = len(samples) / sr
    return job.utt.utt_id, durations


def render_utterances(
    utterances: list[Utterance],
    out_dir: str | os.PathLike,
    rates: tuple[int, ...],
    fmt: str,
    workers: int = 0,
    progress: bool = True,
) -> dict[str, dict[int, float]]:
    """Render every utterance (skipping files already there); returns utt_id -> {rate: seconds}.

    Args:
        workers: processes to use; 0 means one per CPU core, 1 renders in this process.
    """
    jobs = [_Job(u, str(out_dir), tuple(rates), fmt) for u in utterances]
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(jobs), desc="render", unit=" utt", disable=not progress)
    durations: dict[str, dict[int, float]] = {}
    if workers == 1:
        for job in jobs:
            uid, d = _render(job)
            durations[uid] = d
            bar.update()
    else:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            for uid, d in pool.imap_unordered(_render, jobs, chunksize=16):
                durations[uid] = d
                bar.update()
    bar.close()
    return durations

"""Offline code caching (``omni data tokenize``): every clip of a manifest -> codes (T, K) in sharded files.

The input manifest is never modified. The clips it references (top-level
audio, conversation turns, interleaved segments, preference turns; each
distinct file/segment once) are split into shards of ``shard_size`` clips in
manifest order; each shard becomes one safetensors file written atomically by
:func:`omni.data.codes.write_codes_shard`::

    <out dir>/codes/<out stem>/shard-00000.safetensors   {"audio/16k/p000017.flac": (T, 8), ...}

and a new manifest (default ``<stem>.codes.jsonl`` beside the input) repeats
every row with a ``codes: {"path", "key"}`` next to each audio reference.

* Batched: within a shard, clips are sorted by length and grouped so each
  padded batch holds at most ``batch_seconds`` of audio; the codes equal
  ``AudioTokenizer.encode`` on each clip alone.
* Resumable: a shard whose file exists with the same tokenizer fingerprint and
  key list is kept; rerunning the command computes only what is missing.
* Parallel: under ``torchrun``/``accelerate launch`` each rank takes every
  N-th shard; ``workers=N`` does the same with N local processes.
* Shared across manifests: pass one :class:`KnownCodes` to several calls and a
  clip that an earlier manifest's shards already hold (same file and segment,
  same tokenizer) is not encoded again; the later manifest points at that shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from audio_tokenizer.data import row_speech
from omni.audio.io import AudioError, AudioLimits, load_audio
from omni.data.codes import write_codes_shard
from omni.data.manifest import CodesRef, ManifestRow, load_manifest, resolve_media, write_manifest

SHARD_NAME = "shard-{:05d}.safetensors"


@dataclass(frozen=True)
class ClipRef:
    """One distinct clip: its key in the shard, its file and segment."""

    key: str
    path: str
    offset: float | None
    duration: float | None


@dataclass
class ShardJob:
    """Everything a process needs to write one shard (picklable for worker processes)."""

    index: int
    path: str
    clips: list[ClipRef]
    metadata: dict[str, str]


@dataclass
class TokenizeResult:
    """Outcome of :func:`tokenize_manifest`."""

    manifest: Path
    codes_dir: Path
    clips: int
    shards: int
    computed: int  # shards written by this run (the rest were kept from an earlier run)
    skipped: list[str]  # keys of clips that could not be read (with skip_bad)
    seconds: float
    reused: int = 0  # clips found in earlier manifests' shards (``known``), not encoded again


ClipIdentity = tuple[str, float | None, float | None]  # resolved file, offset, duration


@dataclass
class KnownCodes:
    """Clips already in shards of one tokenizer (filled by :func:`tokenize_manifest`): identity -> (shard, key)."""

    where: dict[ClipIdentity, tuple[str, str]] = field(default_factory=dict)
    tokenizer: str | None = None  # fingerprint of the tokenizer that wrote them; another one starts afresh

    def for_tokenizer(self, fingerprint: str) -> dict[ClipIdentity, tuple[str, str]]:
        """The map for ``fingerprint``, emptied when it was filled by another tokenizer."""
        if self.tokenizer != fingerprint:
            self.where.clear()
            self.tokenizer = fingerprint
        return self.where


def identity(clip: ClipRef) -> ClipIdentity:
    """What makes two references (perhaps from manifests in different folders) the same clip."""
    return (str(Path(clip.path).resolve()), clip.offset, clip.duration)


def clip_key(audio: str, offset: float | None, duration: float | None) -> str:
    """Shard key of an audio reference: its manifest path, plus ``@offset+duration`` for a segment."""
    if offset is None:
        return audio
    return f"{audio}@{offset:g}+{duration:g}" if duration is not None else f"{audio}@{offset:g}"


def manifest_clips(manifest: str | os.PathLike, rows: list[ManifestRow]) -> list[ClipRef]:
    """Distinct clips of ``rows`` in first-seen order."""
    seen: dict[str, ClipRef] = {}
    for row in rows:
        for _, obj, _ in row_speech(row):
            key = clip_key(obj.audio, obj.offset, obj.duration)
            if key not in seen:
                seen[key] = ClipRef(key, str(resolve_media(manifest, obj.audio)), obj.offset, obj.duration)
    return list(seen.values())


def tokenizer_fingerprint(tokenizer_dir: str | os.PathLike) -> str:
    """sha256 of a saved tokenizer's config and weights (shards of another tokenizer are recomputed)."""
    from audio_tokenizer.model import CONFIG_FILE, WEIGHTS_FILE

    digest = hashlib.sha256()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        with open(Path(tokenizer_dir) / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def shard_is_done(job: ShardJob) -> bool:
    """True when the shard file exists and was written for the same tokenizer and clips."""
    from safetensors import safe_open

    path = Path(job.path)
    if not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # a foreign or damaged file: rewrite it
        return False
    return meta.get("tokenizer") == job.metadata["tokenizer"] and meta.get("keys_sha") == job.metadata["keys_sha"]


def _batches(lengths: list[int], max_samples: int) -> list[list[int]]:
    """Indices sorted by length, grouped so that count x longest <= max_samples (at least one per batch)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) + 1) * lengths[i] > max_samples:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def encode_shard(tokenizer, job: ShardJob, batch_seconds: float, skip_bad: bool,
                 on_clip: Callable[[int], None] | None = None) -> list[str]:
    """Encode a shard's clips and write its file. Returns the keys of unreadable clips (skipped)."""
    from audio_tokenizer.model import pad_batch

    limits = AudioLimits(max_seconds=1e6, allow_silence=True)
    waves, keys, skipped = [], [], []
    for clip in job.clips:
        try:
            audio = load_audio(clip.path, tokenizer.sample_rate, offset=clip.offset or 0.0,
                               duration=clip.duration if clip.offset is not None else None, limits=limits)
            if len(audio.samples) < tokenizer.samples_per_frame:
                raise AudioError(clip.path, f"too short: {audio.duration * 1000:.0f} ms is less than one "
                                 f"{tokenizer.samples_per_frame / tokenizer.sample_rate * 1000:g} ms token frame")
        except AudioError:
            if not skip_bad:
                raise
            skipped.append(clip.key)
            continue
        waves.append(audio.samples)
        keys.append(clip.key)
    codes: dict[str, torch.Tensor] = {}
    max_samples = max(int(batch_seconds * tokenizer.sample_rate), 1)
    for batch in _batches([len(w) for w in waves], max_samples):
        wav, lengths = pad_batch([waves[i] for i in batch])
        for i, c in zip(batch, tokenizer.encode_batch(wav, lengths).unbatch()):
            codes[keys[i]] = c.cpu()
        if on_clip is not None:
            on_clip(len(batch))
    write_codes_shard(job.path, codes, {**job.metadata, "skipped": json.dumps(skipped)})
    return skipped


def _run_jobs(tokenizer_dir: str, jobs: list[ShardJob], device: str, batch_seconds: float, skip_bad: bool,
              threads: int = 0, progress: bool = False) -> int:
    """Load the tokenizer and write every job's shard (in this process). Returns the number written."""
    from tqdm import tqdm

    from audio_tokenizer.model import AudioTokenizer

    if threads:
        torch.set_num_threads(threads)
    tokenizer = AudioTokenizer.from_pretrained(tokenizer_dir, device=device)
    total = sum(len(j.clips) for j in jobs)
    with tqdm(total=total, unit=" clip", desc="tokenize", disable=not progress, dynamic_ncols=True) as bar:
        for job in jobs:
            encode_shard(tokenizer, job, batch_seconds, skip_bad, on_clip=bar.update)
    return len(jobs)


def _rebase(path: str, source_dir: Path, target_dir: Path) -> str:
    """A manifest media path of ``source_dir`` expressed for a manifest in ``target_dir``."""
    p = Path(path)
    if p.is_absolute() or source_dir == target_dir:
        return path
    full = (source_dir / p).resolve()
    return full.relative_to(target_dir).as_posix() if full.is_relative_to(target_dir) else str(full)


def tokenize_manifest(
    manifest: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    codes_dir: str | os.PathLike | None = None,
    shard_size: int = 1000,
    batch_seconds: float = 120.0,
    workers: int = 1,
    device: str = "cpu",
    skip_bad: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    known: KnownCodes | None = None,
) -> TokenizeResult:
    """Cache the codes of every clip of ``manifest`` and write the manifest that references them.

    Args:
        manifest: input JSONL (never modified).
        tokenizer_dir: a saved :class:`~audio_tokenizer.model.AudioTokenizer`.
        out: output manifest; default ``<stem>.codes.jsonl`` beside the input.
        codes_dir: shard directory; default ``codes/<out stem>/`` beside the output manifest.
        shard_size: clips per shard file.
        batch_seconds: padded audio per encoder batch (clips sorted by length first).
        workers: local processes (each takes every N-th shard); under torchrun, ranks split shards instead.
        device: "cpu", "cuda", "cuda:1", ... (each rank uses its local GPU under torchrun with "cuda").
        skip_bad: leave unreadable clips without codes (listed in the result) instead of stopping.
        known: clips earlier calls encoded with the same tokenizer; they are referenced, not encoded again, and
            this manifest's new clips are added to it.

    Raises:
        FileNotFoundError: missing manifest or tokenizer; AudioError: an unreadable clip (without skip_bad);
        ValueError: bad manifest lines, or ``out`` equal to the input.
    """
    from accelerate import PartialState

    start = time.perf_counter()
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    if shard_size < 1 or batch_seconds <= 0 or workers < 1:
        raise ValueError("shard_size and workers must be >= 1 and batch_seconds > 0")
    stem = manifest.name[: -len(".jsonl")] if manifest.name.endswith(".jsonl") else manifest.stem
    out = Path(out) if out is not None else manifest.with_name(f"{stem}.codes.jsonl")
    if out.resolve() == manifest.resolve():
        raise ValueError(f"{out}: the output manifest must differ from the input (the input is never modified)")
    out_stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.stem
    codes_dir = Path(codes_dir) if codes_dir is not None else out.parent / "codes" / out_stem
    tokenizer_dir = Path(tokenizer_dir)
    if not (tokenizer_dir / "config.json").is_file():
        raise FileNotFoundError(f"{tokenizer_dir}: not a saved audio tokenizer (config.json missing)")
    rows = load_manifest(manifest)
    clips = manifest_clips(manifest, rows)
    meta_base = _tokenizer_metadata(tokenizer_dir)
    seen = known.for_tokenizer(meta_base["tokenizer"]) if known is not None else {}
    ids = {c.key: identity(c) for c in clips} if known is not None else {}  # resolved once per clip
    reused = {key: seen[i] for key, i in ids.items() if i in seen}
    new = [c for c in clips if c.key not in reused]
    jobs = []
    for i in range(0, len(new), shard_size):
        part = new[i:i + shard_size]
        keys_sha = hashlib.sha256("\n".join(c.key for c in part).encode()).hexdigest()[:16]
        jobs.append(ShardJob(i // shard_size, str(codes_dir / SHARD_NAME.format(i // shard_size)), part,
                             {**meta_base, "keys_sha": keys_sha}))
    state = PartialState(cpu=device == "cpu")
    rank, world = state.process_index, state.num_processes
    todo = [j for j in jobs[rank::world] if not shard_is_done(j)]
    if state.is_main_process:
        log(f"{len(clips)} clips, {len(reused)} of them in earlier manifests' shards; {len(new)} in {len(jobs)} shards, "
            f"{sum(shard_is_done(j) for j in jobs)} already done")
    run_device = str(state.device) if device == "cuda" and world > 1 else device
    computed = 0
    if min(workers, len(todo)) > 1 and world == 1:  # one shard left: this process, no pool to start
        computed = _run_pool(str(tokenizer_dir), todo, run_device, batch_seconds, skip_bad, workers)
    elif todo:
        computed = _run_jobs(str(tokenizer_dir), todo, run_device, batch_seconds, skip_bad,
                             progress=progress and state.is_main_process)
    state.wait_for_everyone()
    skipped: list[str] = []
    if state.is_main_process:
        skipped = _write_output(manifest, out, rows, jobs, reused)
    state.wait_for_everyone()
    if known is not None:  # every rank: the shards hold the new clips (a skipped one is found missing when reused)
        for job in jobs:
            seen.update({ids[c.key]: (str(Path(job.path).resolve()), c.key) for c in job.clips})
    return TokenizeResult(out, codes_dir, len(clips), len(jobs), computed, skipped, time.perf_counter() - start,
                          len(reused))


def _tokenizer_metadata(tokenizer_dir: Path) -> dict[str, str]:
    config = json.loads((tokenizer_dir / "config.json").read_text())
    from audio_tokenizer.model import AudioTokenizerConfig
    from omni.config import from_data

    config.pop("kind", None)
    cfg = from_data(AudioTokenizerConfig, config, source=str(tokenizer_dir / "config.json"))
    return {"tokenizer": tokenizer_fingerprint(tokenizer_dir), "frame_rate": f"{cfg.frame_rate:g}",
            "codebook_sizes": json.dumps(cfg.quantizer.codebook_sizes), "sample_rate": str(cfg.frontend.sample_rate)}


def _run_pool(tokenizer_dir: str, jobs: list[ShardJob], device: str, batch_seconds: float, skip_bad: bool,
              workers: int) -> int:
    """Spread jobs over ``workers`` spawned processes, each with its share of the CPU threads."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // workers)
    parts = [jobs[w::workers] for w in range(workers) if jobs[w::workers]]
    with ProcessPoolExecutor(max_workers=len(parts), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_run_jobs, tokenizer_dir, part, device, batch_seconds, skip_bad, threads)
                   for part in parts]
        return sum(f.result() for f in futures)


def _media_holders(row: ManifestRow) -> list:
    """The row and every turn / segment in it (anything that may carry a media path)."""
    holders: list = [row]
    for name in ("conversation", "segments", "prompt"):
        holders += list(getattr(row, name) or [])
    holders += [getattr(row, n) for n in ("chosen", "rejected", "completion") if getattr(row, n) is not None]
    return holders


def _write_output(manifest: Path, out: Path, rows: list[ManifestRow], jobs: list[ShardJob],
                  reused: dict[str, tuple[str, str]]) -> list[str]:
    """Point every audio reference of every row at its codes (this manifest's shards, or the earlier shard and key
    of a ``reused`` clip) and write the new manifest; returns skipped keys."""
    from safetensors import safe_open

    where: dict[str, tuple[str, str]] = {}  # this manifest's clip key -> (shard path as referenced, key in it)
    skipped: list[str] = []
    out_dir = out.resolve().parent

    def ref(shard: str) -> str:
        shard = Path(shard).resolve()
        return shard.relative_to(out_dir).as_posix() if shard.is_relative_to(out_dir) else str(shard)

    for job in jobs:
        with safe_open(job.path, framework="pt") as f:
            keys = set(f.keys())
            skipped += json.loads((f.metadata() or {}).get("skipped", "[]"))
        missing = [c.key for c in job.clips if c.key not in keys and c.key not in skipped]
        if missing:
            raise ValueError(f"{job.path}: codes missing for {len(missing)} clips (e.g. {missing[0]}); delete it and rerun")
        for c in job.clips:
            if c.key in keys:
                where[c.key] = (ref(job.path), c.key)
    by_shard: dict[str, list[tuple[str, str]]] = {}
    for key, (shard, other) in reused.items():
        by_shard.setdefault(shard, []).append((key, other))
    for shard, pairs in by_shard.items():
        with safe_open(shard, framework="pt") as f:
            keys = set(f.keys())
        for key, other in pairs:
            if other in keys:
                where[key] = (ref(shard), other)
            else:  # unreadable where it was first met (skip_bad)
                skipped.append(key)
    source_dir = manifest.resolve().parent
    for row in rows:
        for _, obj, _ in row_speech(row):
            key = clip_key(obj.audio, obj.offset, obj.duration)
            obj.codes = CodesRef(*where[key]) if key in where else None
        for obj in _media_holders(row):
            for name in ("audio", "image", "video"):
                if getattr(obj, name, None) is not None:
                    setattr(obj, name, _rebase(getattr(obj, name), source_dir, out_dir))
    write_manifest(out, rows)
    return skipped

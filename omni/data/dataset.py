"""The data set of a training stage: config, loading rows of examples on the fly, and bad-input accounting.

Data flow::

    code-cached manifests --index (this process's shards, lengths)--> DataIndex      (omni.data.index)
    DataIndex --mixture, epochs, packing / buckets--> RowKey per batch row             (omni.data.plan)
    RowKey --StageDataset: parse, format, read codes / pixels, tokenize--> LoadedRow
    LoadedRow list --collate_rows--> StageBatch (OmniBatch + example/task maps)         (omni.data.batching)

An example that fails to load during training (a corrupt codes shard or image) is skipped with a
logged warning and reported in the batch (``StageBatch.failed``); :class:`DataHealth` counts them on
the training process and stops the run when, with the lines that failed at indexing, they exceed
``max_bad_fraction`` of the lines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omni.config import check, option
from omni.data.batching import LoadedRow, StageBatch, collate_rows
from omni.data.formatters import FORMATTERS, DataError, FormatConfig
from omni.data.index import DataIndex, Encoder, SourceConfig, build_index
from omni.data.media import CachedMedia, ShapeMedia
from omni.data.plan import RowKey, StagePlan

log = logging.getLogger("omni.data")

#: Task ids used in batches (``StageBatch.example_task``): the formatter names in this order.
TASK_NAMES: tuple[str, ...] = tuple(FORMATTERS)


@dataclass
class DataConfig:
    """What a stage trains on and how examples become batches."""

    sources: list[SourceConfig] = option(help="Training sources (task + manifests + mixture ratio).")
    dev_sources: list[SourceConfig] = option(default_factory=list,
                                             help="Dev sources evaluated every loop.eval_every steps (ratios unused).")
    max_seq_len: int = option(4096, help="Longest sequence in tokens (audio frames and image tokens included); "
                                         "longer examples are left out; the row length when packing.")
    packing: bool = option(True, help="Pack several examples into each row of max_seq_len tokens (no cross-example "
                                      "attention; loop.batch_size then counts rows); false: one example per row, "
                                      "padded.")
    bucket_seconds: float = option(5.0, help="Without packing: group examples into duration buckets this wide so a "
                                             "step's rows have similar lengths (0 disables).")
    max_seconds: float = option(30.0, help="Upper edge of the duration buckets (longer examples join the last one).")
    shards: int = option(0, help="Shards the manifests are dealt into (line n -> shard n % shards); each process "
                                 "reads only its own. 0: one per process. Fix it to resume on another process "
                                 "count or to compare runs on different process counts.")
    epoch_size: int = option(0, help="Examples per epoch over all sources (0: the sum of the sources' sizes); each "
                                     "source gives ratio x epoch_size of them.")
    max_bad_fraction: float = option(0.01, help="Stop when more than this fraction of a source's lines (at indexing) "
                                                "or of all lines (during training) fail to load.")
    format: FormatConfig = option(default_factory=FormatConfig, help="Prompts, tags and interleaving.")
    eval_batch_size: int = option(8, help="Dev examples per evaluation batch (per process).")
    log_examples: bool = option(False, help="Append the ids of every trained micro-batch to "
                                            "output_dir/data_log/rank-N.jsonl (to audit the data order).")

    def __post_init__(self) -> None:
        check(bool(self.sources), "sources", "needs at least one source")
        names = [s.name for s in self.sources + self.dev_sources]
        check(len(set(s.name for s in self.sources)) == len(self.sources), "sources", f"source names must be unique: {names}")
        check(sum(s.ratio for s in self.sources) > 0, "sources", "at least one source needs a ratio > 0")
        check(self.max_seq_len >= 16, "max_seq_len", f"must be >= 16, got {self.max_seq_len}")
        check(self.bucket_seconds >= 0, "bucket_seconds", "must be >= 0")
        check(self.max_seconds > 0, "max_seconds", "must be > 0")
        check(self.shards >= 0, "shards", "must be >= 0")
        check(self.epoch_size >= 0, "epoch_size", "must be >= 0")
        check(0 <= self.max_bad_fraction <= 1, "max_bad_fraction", "must be in [0, 1]")
        check(self.eval_batch_size >= 1, "eval_batch_size", "must be >= 1")


class StageDataset(torch.utils.data.Dataset):
    """Loads batch rows (:class:`~omni.data.plan.RowKey`) of an index: parses, formats and tokenizes on the fly."""

    def __init__(self, index: DataIndex, encode: Encoder, media: CachedMedia):
        self.index, self.encode, self.media = index, encode, media
        self.task_ids = {t: k for k, t in enumerate(TASK_NAMES)}

    def __len__(self) -> int:
        return self.index.num_examples

    def example_id(self, shard: int, source: int, item: int) -> str:
        part = self.index.parts[(shard, source)]
        rows = [part.rows[k] for k in part.items[item]]
        return f"{Path(rows[0].manifest).name}:" + "+".join(str(r.line) for r in rows)

    def load(self, shard: int, source: int, item: int):
        """One example and its task name (raises DataError / ValueError when it cannot be loaded)."""
        part = self.index.parts[(shard, source)]
        rows = [part.rows[k] for k in part.items[item]]
        return self.encode(rows, self.index.sources[source].task, self.media)

    def __getitem__(self, key: RowKey) -> LoadedRow:
        out = LoadedRow(key.step, [], [], [])
        for shard, source, item in key.examples:
            ident = self.example_id(shard, source, item)
            try:
                example, task = self.load(shard, source, item)
            except (DataError, ValueError, OSError) as e:
                log.warning(f"skipping example {ident} (source '{self.index.sources[source].name}'): {e}")
                out.failed.append(f"{ident}: {e}")
                continue
            out.examples.append(example)
            out.tasks.append(self.task_ids[task])
            out.ids.append(ident)
        return out


class StageCollate:
    """Picklable collate function (DataLoader workers): :func:`~omni.data.batching.collate_rows`."""

    def __init__(self, pad_id: int, packed: bool, num_codebooks: int):
        self.pad_id, self.packed, self.k = pad_id, packed, num_codebooks

    def __call__(self, rows: list[LoadedRow]) -> StageBatch:
        return collate_rows(rows, self.pad_id, self.packed, self.k)


class DataHealth:
    """Counts distinct examples that failed to load during training and stops the run when there are too many.

    Args:
        total_rows: lines indexed (this process's shards).
        bad_at_index: lines that already failed at indexing.
        max_fraction: the tolerated fraction of failed lines.
    """

    def __init__(self, total_rows: int, bad_at_index: int, max_fraction: float):
        self.total, self.bad_at_index, self.max_fraction = total_rows, bad_at_index, max_fraction
        self.failed: set[str] = set()

    def update(self, failed: list[str]) -> None:
        """Record the failures of a batch.

        Raises:
            DataError: failures exceed ``max_fraction`` of the lines.
        """
        for f in failed:
            self.failed.add(f.split(": ", 1)[0])
        bad = self.bad_at_index + len(self.failed)
        if failed and self.total and bad / self.total > self.max_fraction:
            raise DataError(f"{bad} of {self.total} lines ({bad / self.total:.1%}) failed to load, more than "
                            f"data.max_bad_fraction = {self.max_fraction:g}; the last one: {failed[-1]}")


@dataclass
class StageData:
    """Everything the stage's loop needs from the data."""

    index: DataIndex
    plan: StagePlan
    dataset: StageDataset
    collate: StageCollate
    health: DataHealth
    dev: StageDataset | None


def build_stage_data(cfg: DataConfig, model: Any, seed: int, batch_size: int, rank: int, world: int,
                     warn: Any = None) -> StageData:
    """Index this process's shards of the training (and dev) sources for ``model`` and build the plan.

    Args:
        model: the :class:`~omni.model.model.OmniModel` (tokenizer, codebooks, vision settings).
        rank / world: this process and the number of processes.
    """
    num_shards = cfg.shards or world
    if num_shards % world:
        raise ValueError(f"data.shards ({num_shards}) must be a multiple of the number of processes ({world})")
    shards = [j for j in range(num_shards) if j % world == rank]
    vision = model.cfg.vision if model.vision is not None else None
    sizes = list(model.cfg.codebook_sizes)
    encode = Encoder(model.tokenizer, model.token_ids, cfg.format, seed, merge_size=model.cfg.vision.spatial_merge_size,
                     think_block=model.cfg.think_block)
    shape_media = ShapeMedia(sizes, vision)
    index = build_index(cfg.sources, shards, num_shards, encode, shape_media, cfg.max_seq_len, model.cfg.frame_rate,
                        cfg.max_bad_fraction, warn)
    plan = StagePlan(index, batch_size, seed, cfg.packing, cfg.max_seq_len, cfg.bucket_seconds, cfg.max_seconds,
                     cfg.epoch_size)
    dataset = StageDataset(index, encode, CachedMedia(sizes, vision))
    dev = None
    if cfg.dev_sources:
        dev_index = build_index(cfg.dev_sources, [rank], world, encode, shape_media, cfg.max_seq_len,
                                model.cfg.frame_rate, cfg.max_bad_fraction, warn)
        dev = StageDataset(dev_index, encode, CachedMedia(sizes, vision))
    health = DataHealth(index.num_rows, sum(s.bad for s in index.stats), cfg.max_bad_fraction)
    return StageData(index, plan, dataset, StageCollate(model.token_ids.pad, cfg.packing, model.cfg.num_codebooks),
                     health, dev)

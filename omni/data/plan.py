"""The data order of a training stage: mixture by ratio, per-shard epochs, bucketing or packing.

A :class:`StagePlan` is the :class:`~omni.training.sampler.BatchPlan` the shared trainer runs. Every
shard ``j`` of the data (see :mod:`omni.data.index`) has an endless stream of batch *rows*, built
epoch by epoch, each a pure function of ``(seed, j, epoch)``:

1. **Mixture.** An epoch of shard ``j`` holds ``E`` examples (``epoch_size / num_shards``, default
   the shard's examples of all sources); source ``i`` contributes ``ratio_i * E`` of them (largest
   remainder), taken from that source's own endless stream of shuffled passes, so a small source is
   repeated and a large one is consumed over several epochs, never with gaps or repeats inside a pass.
2. **Shuffle** the epoch's examples.
3. **Rows.** Packing: best-fit-decreasing into rows of ``max_seq_len`` tokens, rows shuffled.
   Padding with duration buckets: one example per row, ordered so every step's rows of a shard share
   a 5 s bucket. Plain padding: one example per row in shuffled order.

Step ``s`` takes rows ``[s*b, (s+1)*b)`` of every shard's stream (``b = batch_size / num_shards``),
crossing epoch boundaries without dropping or repeating anything. A process reads only the shards
``j = rank, rank + world, ...``, so 1 process with ``shards: 2`` and 2 processes see the same global
batches. The data position of a step (shard, epoch, row) is stored in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from omni.data.batching import bucketed_order, duration_buckets, pack_lengths
from omni.data.formatters import DataError
from omni.data.index import DataIndex


@dataclass(frozen=True)
class RowKey:
    """What the data set loads for one batch row: the step and its examples as (shard, source, item)."""

    step: int
    examples: tuple[tuple[int, int, int], ...]


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` summing to ``total`` (Hamilton's method; ties to the first)."""
    weights = np.asarray(weights, dtype=np.float64)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = weights / weights.sum() * total
    out = np.floor(exact).astype(np.int64)
    rest = total - int(out.sum())
    order = np.argsort(-(exact - out), kind="stable")
    out[order[:rest]] += 1
    return out


class StagePlan:
    """Sharded, mixed, bucketed or packed data order (see the module docstring).

    Args:
        index: the examples of this process's shards.
        batch_size: rows per optimizer step over all processes (examples when padding, packed rows when packing).
        seed: data-order seed.
        packing: pack examples into rows of ``max_seq_len`` tokens.
        max_seq_len: row capacity when packing.
        bucket_seconds / max_seconds: duration buckets when padding (``bucket_seconds = 0`` disables them).
        epoch_size: examples per epoch over all shards (0: every example of every source once).
    """

    def __init__(self, index: DataIndex, batch_size: int, seed: int, packing: bool, max_seq_len: int,
                 bucket_seconds: float = 5.0, max_seconds: float = 30.0, epoch_size: int = 0):
        if batch_size % index.num_shards:
            raise ValueError(f"batch_size {batch_size} must be a multiple of data.shards ({index.num_shards})")
        self.index, self.seed, self.packing, self.max_seq_len = index, seed, packing, max_seq_len
        self.bucket_seconds, self.max_seconds = bucket_seconds, max_seconds
        self.rows_per_shard = batch_size // index.num_shards
        self.ratios = np.array([s.ratio for s in index.sources], dtype=np.float64)
        self.epoch_size = epoch_size
        self._epochs: dict[int, dict[int, list[tuple[tuple[int, int, int], ...]]]] = {j: {} for j in index.shards}
        self._starts: dict[int, list[int]] = {j: [0] for j in index.shards}
        self._perms: dict[tuple[int, int, int], np.ndarray] = {}
        for j in index.shards:
            if self._counts(j).sum() == 0:
                raise DataError(f"data shard {j} of {index.num_shards} has no usable examples (fewer usable lines than "
                                "data.shards, or every source with a ratio > 0 is empty)")

    # ------------------------------------------------------------------------------ per shard
    def _sizes(self, j: int) -> np.ndarray:
        return np.array([len(self.index.parts[(j, i)]) for i in range(len(self.index.sources))])

    def _counts(self, j: int) -> np.ndarray:
        """Examples each source gives an epoch of shard ``j``."""
        sizes = self._sizes(j)
        weights = np.where(sizes > 0, self.ratios, 0.0)
        total = self.epoch_size // self.index.num_shards if self.epoch_size else int(sizes[weights > 0].sum())
        return largest_remainder(weights, total)

    def _draw(self, j: int, i: int, start: int, count: int) -> np.ndarray:
        """Items ``start .. start+count-1`` of source ``i``'s endless stream of shuffled passes in shard ``j``."""
        n = len(self.index.parts[(j, i)])
        pos = np.arange(start, start + count)
        out = np.empty(count, dtype=np.int64)
        for cycle in np.unique(pos // n):
            key = (j, i, int(cycle))
            if key not in self._perms:
                if len(self._perms) > 64:
                    self._perms.clear()
                self._perms[key] = np.random.default_rng([self.seed, j, i, int(cycle), 7]).permutation(n)
            sel = pos // n == cycle
            out[sel] = self._perms[key][pos[sel] % n]
        return out

    def epoch_rows(self, j: int, epoch: int) -> list[tuple[tuple[int, int, int], ...]]:
        """The rows of epoch ``epoch`` of shard ``j``: tuples of (shard, source, item)."""
        cache = self._epochs[j]
        if epoch in cache:
            return cache[epoch]
        counts = self._counts(j)
        chosen = [(i, int(item)) for i, c in enumerate(counts) if c
                  for item in self._draw(j, i, epoch * int(c), int(c))]
        rng = np.random.default_rng([self.seed, j, epoch, 11])
        chosen = [chosen[k] for k in rng.permutation(len(chosen))]
        parts = self.index.parts
        if self.packing:
            lengths = [int(parts[(j, i)].lengths[item]) for i, item in chosen]
            packs = pack_lengths(lengths, self.max_seq_len)
            rows = [tuple((j, *chosen[k]) for k in p) for p in (packs[x] for x in rng.permutation(len(packs)))]
        else:
            order = list(range(len(chosen)))
            if self.bucket_seconds > 0:
                seconds = np.array([parts[(j, i)].seconds[item] for i, item in chosen])
                order = bucketed_order(order, duration_buckets(seconds, self.bucket_seconds, self.max_seconds),
                                       self.rows_per_shard, rng)
            rows = [((j, *chosen[k]),) for k in order]
        if len(cache) > 3:
            cache.pop(min(cache))
        cache[epoch] = rows
        return rows

    def _locate(self, j: int, pos: int) -> tuple[int, int]:
        """(epoch, row in epoch) of stream position ``pos`` of shard ``j``."""
        starts = self._starts[j]
        while starts[-1] <= pos:
            e = len(starts) - 1
            starts.append(starts[-1] + len(self.epoch_rows(j, e)))
        e = int(np.searchsorted(starts, pos, side="right")) - 1
        return e, pos - starts[e]

    def shard_rows(self, j: int, start: int, count: int) -> list[tuple[tuple[int, int, int], ...]]:
        """Rows ``start .. start+count-1`` of shard ``j``'s stream."""
        out = []
        e, k = self._locate(j, start)
        while len(out) < count:
            rows = self.epoch_rows(j, e)
            take = rows[k:k + count - len(out)]
            out += take
            e, k = e + 1, 0
        return out

    # ------------------------------------------------------------------------------ BatchPlan
    def my_shards(self, rank: int, world: int) -> list[int]:
        """The shards process ``rank`` of ``world`` reads."""
        if self.index.num_shards % world:
            raise ValueError(f"data.shards ({self.index.num_shards}) must be a multiple of the number of processes "
                             f"({world})")
        mine = [j for j in range(self.index.num_shards) if j % world == rank]
        missing = set(mine) - set(self.index.shards)
        if missing:
            raise ValueError(f"process {rank} of {world} reads shards {mine} but the index holds {self.index.shards}")
        return mine

    def micro_batches(self, start_step: int, max_steps: int, rank: int, world: int, grad_accum: int) -> MicroBatches:
        mine = self.my_shards(rank, world)
        local = self.rows_per_shard * len(mine)
        if local % grad_accum:
            raise ValueError(f"{local} rows per step on each process do not split into {grad_accum} micro-batches "
                             "(loop.batch_size / processes must be a multiple of loop.grad_accum)")
        return MicroBatches(self, mine, start_step, max_steps, grad_accum)

    def epoch_of(self, step: int) -> float:
        j = self.index.shards[0]
        e, k = self._locate(j, step * self.rows_per_shard)
        return e + k / max(len(self.epoch_rows(j, e)), 1)

    def position(self, step: int) -> dict[str, Any]:
        pos = step * self.rows_per_shard
        shards = {}
        for j in self.index.shards:
            e, k = self._locate(j, pos)
            shards[str(j)] = {"epoch": e, "row": k}
        return {"step": step, "rows_per_shard": pos, "num_shards": self.index.num_shards, "shards": shards}


class MicroBatches:
    """The batch sampler of one process: ``grad_accum`` lists of :class:`RowKey` per step."""

    def __init__(self, plan: StagePlan, shards: list[int], start: int, stop: int, grad_accum: int):
        self.plan, self.shards, self.start, self.stop, self.accum = plan, shards, start, stop, grad_accum

    def __iter__(self) -> Iterator[list[RowKey]]:
        b = self.plan.rows_per_shard
        micro = b * len(self.shards) // self.accum
        for step in range(self.start, self.stop):
            rows = [r for j in self.shards for r in self.plan.shard_rows(j, step * b, b)]
            for k in range(self.accum):
                yield [RowKey(step, r) for r in rows[k * micro:(k + 1) * micro]]

    def __len__(self) -> int:
        return (self.stop - self.start) * self.accum

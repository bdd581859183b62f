"""Deterministic, resumable data order: the examples of every step are a pure function of (seed, step).

Epoch ``e`` visits the data set in the permutation drawn from ``seed + e``;
step ``s`` takes the next ``batch_size`` indices of that endless stream. Each
process then takes its own interleaved slice of the global batch and cuts it
into ``grad_accum`` micro-batches. Resuming at step ``s`` therefore replays
exactly what an uninterrupted run would have seen, on any number of processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np
import torch


class GlobalBatchSampler:
    """Indices of the global batch of every optimizer step.

    Args:
        n_items: data set size.
        batch_size: global batch (all processes, all micro-batches).
        seed: permutation seed.
        shuffle: False visits the data in order (evaluation, tests).
    """

    def __init__(self, n_items: int, batch_size: int, seed: int = 0, shuffle: bool = True):
        if n_items <= 0:
            raise ValueError("the data set is empty")
        self.n_items, self.batch_size, self.seed, self.shuffle = n_items, batch_size, seed, shuffle
        self._cache: dict[int, np.ndarray] = {}

    def _epoch(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            order = np.arange(self.n_items)
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch]).permutation(self.n_items)
            self._cache[epoch] = order
        return self._cache[epoch]

    def step_indices(self, step: int) -> list[int]:
        """The ``batch_size`` data indices of optimizer step ``step`` (0-based)."""
        start = step * self.batch_size
        out = []
        for pos in range(start, start + self.batch_size):
            epoch, offset = divmod(pos, self.n_items)
            out.append(int(self._epoch(epoch)[offset]))
        return out

    def epoch_of(self, step: int) -> float:
        """Fractional epoch reached at the start of ``step``."""
        return step * self.batch_size / self.n_items


class StepMicroBatches(torch.utils.data.Sampler[list[int]]):
    """Batch sampler for one process: micro-batches of steps ``start_step .. max_steps - 1``.

    Yields ``grad_accum`` lists per step: this process's slice of the global
    batch (``indices[rank::world]``), cut into equal consecutive parts.
    """

    def __init__(self, sampler: GlobalBatchSampler, start_step: int, max_steps: int, rank: int, world: int,
                 grad_accum: int):
        local = sampler.batch_size // world
        if sampler.batch_size % world or local % grad_accum:
            raise ValueError(f"batch_size {sampler.batch_size} must split evenly over {world} processes x "
                             f"{grad_accum} accumulation steps")
        self.sampler, self.start, self.stop = sampler, start_step, max_steps
        self.rank, self.world, self.accum = rank, world, grad_accum
        self.micro = local // grad_accum

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            mine = self.sampler.step_indices(step)[self.rank::self.world]
            for k in range(self.accum):
                yield mine[k * self.micro:(k + 1) * self.micro]

    def __len__(self) -> int:
        return (self.stop - self.start) * self.accum


class BatchPlan(Protocol):
    """Which data-set items each process reads at each step: the data order the :class:`~omni.training.Trainer` runs.

    The items of every step must be a pure function of the step (and the plan's seed), so a resumed
    run reads exactly what an uninterrupted one would. The default plan is :class:`IndexPlan`;
    staged training plugs in a sharded, mixed, packed plan (:mod:`omni.data.plan`).
    """

    def micro_batches(self, start_step: int, max_steps: int, rank: int, world: int,
                      grad_accum: int) -> Iterable[list[Any]]:
        """``grad_accum`` lists of data-set keys per step for process ``rank`` of ``world``, steps
        ``start_step .. max_steps - 1`` (passed to a DataLoader as its ``batch_sampler``)."""

    def epoch_of(self, step: int) -> float:
        """Fractional epoch reached at the start of ``step``."""

    def position(self, step: int) -> dict[str, Any]:
        """The data position at the start of ``step`` (stored in checkpoints, for inspection)."""


class IndexPlan:
    """The default :class:`BatchPlan`: a :class:`GlobalBatchSampler` over integer indices of a map-style data set."""

    def __init__(self, sampler: GlobalBatchSampler):
        self.sampler = sampler

    def micro_batches(self, start_step: int, max_steps: int, rank: int, world: int,
                      grad_accum: int) -> StepMicroBatches:
        return StepMicroBatches(self.sampler, start_step, max_steps, rank, world, grad_accum)

    def epoch_of(self, step: int) -> float:
        return self.sampler.epoch_of(step)

    def position(self, step: int) -> dict[str, Any]:
        return {"samples_seen": step * self.sampler.batch_size, "epoch": self.sampler.epoch_of(step)}

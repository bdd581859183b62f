"""Replay: rows of a staged-training mixture trained beside the preference pairs.

A preference loss moves every weight its pairs touch and holds nothing in place for the tasks the pairs do
not show: DPO on the tiny recipe's text questions costs its ASR 4-5 WER points (reports/learning.md, "H").
InstructGPT mixed pretraining gradients into its RL steps for the same reason (PPO-ptx). With ``replay``
set, every optimizer step also reads ``replay.batch_size`` rows of a stage data mixture (the staged
training's :class:`~omni.data.dataset.DataConfig`: sources, ratios, packing) and adds ``replay.weight`` x
their mean NLL per target unit (text token or audio frame, as a stage scores them) to each pair's loss.

Data order: :class:`JointPlan` zips the pairs' plan with the mixture's own
:class:`~omni.data.plan.StagePlan` step by step, so both are pure functions of the step and a resumed
run reads what an uninterrupted one would. Keys are tagged (``("pairs", i)`` / ``("replay", RowKey)``);
:class:`JointDataset` and :class:`JointCollate` route them, and a micro-batch is a :class:`JointBatch`.

The replay term of a micro-batch of B pairs, R replay rows with U target units and summed NLL S::

    loss = sum_b preference_loss_b + weight * B * S / U

The loop divides by the global number of pairs, so with one micro-batch per step the replay adds
``weight`` x the rows' mean NLL, whatever the number of pairs (with accumulation, each micro-batch's own mean).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from omni.config import check, option
from omni.data.dataset import DataConfig


@dataclass
class ReplayConfig:
    """Stage rows trained beside the pairs (see the module docstring)."""

    data: DataConfig = option(help="The mixture to replay: a stage's data config (sources with ratios, max_seq_len, "
                                   "packing); dev_sources are not read.")
    batch_size: int = option(8, help="Replay rows per optimizer step, all processes together (rows of "
                                     "data.max_seq_len when packing).")
    weight: float = option(1.0, help="Weight of the rows' mean NLL per target unit next to each pair's loss.")

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.weight > 0, "weight", f"must be > 0 (leave replay unset for none), got {self.weight}")


@dataclass
class JointBatch:
    """A micro-batch of pairs (:class:`~omni.align.data.PreferenceBatch`) and replay rows
    (:class:`~omni.data.batching.StageBatch`)."""

    pairs: Any
    replay: Any

    @property
    def num_items(self) -> int:
        return self.pairs.num_items


class JointPlan:
    """A :class:`~omni.training.sampler.BatchPlan` that zips the pairs' plan and the replay's plan step by step.

    Each micro-batch is the pairs' micro-batch tagged ``("pairs", key)`` followed by the replay's tagged
    ``("replay", key)``; epochs and positions are the pairs' (the position also holds the replay's)."""

    def __init__(self, pairs: Any, replay: Any):
        self.pairs, self.replay = pairs, replay

    def micro_batches(self, start_step: int, max_steps: int, rank: int, world: int, grad_accum: int) -> JointBatches:
        return JointBatches(self.pairs.micro_batches(start_step, max_steps, rank, world, grad_accum),
                            self.replay.micro_batches(start_step, max_steps, rank, world, grad_accum))

    def epoch_of(self, step: int) -> float:
        return self.pairs.epoch_of(step)

    def position(self, step: int) -> dict[str, Any]:
        return {**self.pairs.position(step), "replay": self.replay.position(step)}


class JointBatches:
    """The batch sampler of one process: the two samplers' micro-batches, tagged and joined."""

    def __init__(self, pairs: Any, replay: Any):
        self.pairs, self.replay = pairs, replay

    def __iter__(self) -> Iterator[list[tuple[str, Any]]]:
        for p, r in zip(self.pairs, self.replay, strict=True):
            yield [("pairs", k) for k in p] + [("replay", k) for k in r]

    def __len__(self) -> int:
        return len(self.pairs)


class JointDataset:
    """Routes tagged keys to the pairs' data set or the replay's."""

    def __init__(self, pairs: Any, replay: Any):
        self.parts = {"pairs": pairs, "replay": replay}

    def __len__(self) -> int:
        return len(self.parts["pairs"])

    def __getitem__(self, key: tuple[str, Any]) -> tuple[str, Any]:
        tag, inner = key
        return tag, self.parts[tag][inner]


class JointCollate:
    """Tagged items -> :class:`JointBatch` (picklable for DataLoader workers).

    Args:
        pairs: the pairs' collate (:class:`~omni.align.data.PreferenceCollate`, with its cached reference).
        replay: the stage collate (:class:`~omni.data.dataset.StageCollate`).
    """

    def __init__(self, pairs: Any, replay: Any):
        self.pairs, self.replay = pairs, replay

    def __call__(self, items: list[tuple[str, Any]]) -> JointBatch:
        return JointBatch(self.pairs([x for tag, x in items if tag == "pairs"]),
                          self.replay([x for tag, x in items if tag == "replay"]))


def replay_loss(total: torch.Tensor, units: int, num_pairs: int, weight: float) -> torch.Tensor:
    """The replay term added to a micro-batch's summed pair losses: ``weight * num_pairs * total / units``.

    Args:
        total: scalar, the replay rows' summed NLL (text tokens + audio frames, as :func:`~omni.training.stage_task.stage_loss`).
        units: their target tokens + frames (0: the term is 0).
        num_pairs: B, the micro-batch's pairs (the loop's loss unit).
    """
    if units <= 0:
        return total * 0.0
    return total * (weight * num_pairs / units)

"""Data-parallel evaluation: one process per rank under ``torchrun`` / ``accelerate launch``, results gathered.

Outside a launcher there is one process and nothing is gathered. Under a launcher (``WORLD_SIZE`` > 1)
an :class:`accelerate.Accelerator` joins the process group (``cpu=True`` on a machine without CUDA, so
torchrun gives a MULTI_CPU gloo group; see the design brief) and ``gather_object`` collects every rank's
results on every rank. Rank 0 writes the reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class DistContext:
    """Where this process stands.

    Attributes:
        rank, world: process index and count.
        device: the device this rank computes on (its own GPU under a launcher with CUDA).
        accelerator: the Accelerator under a launcher, else None.
    """

    rank: int
    world: int
    device: str
    accelerator: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_context(device: str = "cpu") -> DistContext:
    """The process's rank, world size and device (``device`` = the configured one; a launcher may pick the GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(0, 1, device)
    from accelerate import Accelerator

    acc = Accelerator(cpu=device == "cpu" or not torch.cuda.is_available())
    return DistContext(acc.process_index, acc.num_processes, str(acc.device), acc)


def gather(ctx: DistContext, items: list) -> list:
    """Every rank's ``items`` concatenated (rank order), on every rank."""
    if ctx.accelerator is None:
        return list(items)
    from accelerate.utils import gather_object

    return list(gather_object(list(items)))


def barrier(ctx: DistContext) -> None:
    if ctx.accelerator is not None:
        ctx.accelerator.wait_for_everyone()

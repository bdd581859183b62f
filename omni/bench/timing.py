"""Helpers shared by the stand-alone benchmark scripts under ``bench/``: device set-up and timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_time(fn: Callable[[], object], repeats: int, device: torch.device | str) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after one warm-up call (synchronised on a GPU)."""
    cuda = torch.device(device).type == "cuda"
    fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def use_device(device: str, threads: int) -> bool:
    """Apply a script's ``--device`` / ``--threads``: False (with a note) when ``cuda`` is asked for on a machine
    without a GPU, so the script skips; else sets the CPU threads (0 keeps torch's default) and returns True."""
    if device == "cuda" and not torch.cuda.is_available():
        print("note: --device cuda requested but no GPU is available here; skipped (run on a GPU machine)")
        return False
    if threads:
        torch.set_num_threads(threads)
    return True

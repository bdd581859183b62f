"""Atomic, rotating training checkpoints on top of ``accelerate``'s save/load state.

Layout under the run directory::

    checkpoints/step-00000100/     model (safetensors), optimizers, schedulers, RNG states,
                                   trainer_state.json (step, epoch, samples seen)
    checkpoints/step-00000200/

A checkpoint is written to ``step-N.tmp`` by every process, fsynced, and
renamed to ``step-N`` by the main process only when complete, so a crash
mid-write never leaves a directory that looks finished. Only the newest
``keep`` checkpoints are kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

_STEP_DIR = re.compile(r"^step-(\d{8})$")
STATE_FILE = "trainer_state.json"


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_complete(run_dir: str | os.PathLike) -> bool:
    """True when ``run_dir``'s trainer state says the run reached its last step."""
    state = Path(run_dir) / STATE_FILE
    return state.is_file() and bool(json.loads(state.read_text(encoding="utf-8")).get("complete"))


class CheckpointManager:
    """Saves and finds checkpoints of one run.

    Args:
        run_dir: the run's output directory.
        keep: how many complete checkpoints to keep.
    """

    def __init__(self, run_dir: str | os.PathLike, keep: int = 2):
        self.dir = Path(run_dir) / "checkpoints"
        self.keep = keep

    def list(self) -> list[tuple[int, Path]]:
        """Complete checkpoints as (step, path), oldest first."""
        if not self.dir.is_dir():
            return []
        found = []
        for p in self.dir.iterdir():
            m = _STEP_DIR.match(p.name)
            if m and (p / STATE_FILE).is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> tuple[int, Path] | None:
        """The newest complete checkpoint, or None."""
        found = self.list()
        return found[-1] if found else None

    def save(self, accelerator: Accelerator, step: int, state: dict[str, Any]) -> Path:
        """Write checkpoint ``step`` atomically (call on every process)."""
        final = self.dir / f"step-{step:08d}"
        tmp = self.dir / f"step-{step:08d}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp), safe_serialization=True)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=2) + "\n", encoding="utf-8")
            _fsync_tree(tmp)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            self._prune()
        accelerator.wait_for_everyone()
        return final

    def load(self, accelerator: Accelerator, path: Path) -> dict[str, Any]:
        """Restore model, optimizers, schedulers and RNG from ``path``; returns its trainer state."""
        accelerator.load_state(str(path))
        return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))

    def _prune(self) -> None:
        for _, path in self.list()[: -self.keep]:
            shutil.rmtree(path, ignore_errors=True)
        for stale in self.dir.glob("step-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)

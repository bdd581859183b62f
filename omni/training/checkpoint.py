"""Atomic, rotating training checkpoints on top of ``accelerate``'s save/load state.

Layout under the run directory::

    checkpoints/step-00000100/     model (safetensors), optimizers, schedulers, RNG states,
                                   trainer_state.json (step, epoch, samples seen)
    checkpoints/step-00000200/

A checkpoint is written to ``step-N.tmp`` by every process, fsynced, and
renamed to ``step-N`` by the main process only when complete, so a crash
mid-write never leaves a directory that looks finished. Only the newest
``keep`` checkpoints are kept.

Nothing is unpickled on load: model weights are safetensors, optimizer state
and RNG states go through ``torch.load(weights_only=True)`` (accelerate's
loader), LR schedulers are saved as JSON (``schedulers.json``) instead of
accelerate's pickled custom states, and every tensor file is checked against
the sha256 index ``checksums.json`` (:mod:`omni.integrity`) before loading, so
a truncated or tampered checkpoint is refused with an error naming the file.
A failed write (disk full) removes the partial ``step-N.tmp``, keeps the
previous checkpoints and raises :class:`CheckpointWriteError`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from omni.integrity import verify_checksums, write_atomic, write_checksums

_STEP_DIR = re.compile(r"^step-(\d{8})$")
STATE_FILE = "trainer_state.json"
SCHEDULERS_FILE = "schedulers.json"


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (e.g. the disk is full); the previous checkpoints are intact."""


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
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

    def __init__(self, run_dir: str | os.PathLike, keep: int = 2, schedulers: dict[str, Any] | None = None):
        self.dir = Path(run_dir) / "checkpoints"
        self.keep = keep
        self.schedulers = schedulers or {}
        """name -> LR scheduler, saved as JSON beside accelerate's state (do not also register them with
        ``accelerator.register_for_checkpointing``: accelerate pickles those)."""

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
        """Write checkpoint ``step`` atomically (call on every process).

        Raises:
            CheckpointWriteError: a write failed (disk full, permissions); the partial directory is removed
                and the previous checkpoints are left as they were.
        """
        final = self.dir / f"step-{step:08d}"
        tmp = self.dir / f"step-{step:08d}.tmp"
        try:
            if accelerator.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
            accelerator.wait_for_everyone()
            accelerator.save_state(str(tmp), safe_serialization=True)
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                scheds = {name: s.state_dict() for name, s in self.schedulers.items()}
                write_atomic(tmp / SCHEDULERS_FILE, (json.dumps(scheds, indent=2) + "\n").encode())
                write_atomic(tmp / STATE_FILE, (json.dumps({**state, "step": step}, indent=2) + "\n").encode())
                write_checksums(tmp)
                _fsync_tree(tmp)
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
                _fsync_dir(self.dir)
                self._prune()
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            previous = self.latest()
            kept = f"the previous checkpoint {previous[1]} is intact" if previous else "no earlier checkpoint exists"
            raise CheckpointWriteError(f"could not write checkpoint step {step} to {tmp}: "
                                       f"{e.strerror or e}; {kept}. Free disk space and rerun the same command "
                                       "to resume.") from e
        accelerator.wait_for_everyone()
        return final

    def load(self, accelerator: Accelerator, path: Path) -> dict[str, Any]:
        """Restore model, optimizers, schedulers and RNG from ``path``; returns its trainer state.

        Raises:
            IntegrityError: a tensor file of the checkpoint does not match its ``checksums.json``.
        """
        verify_checksums(path)
        accelerator.load_state(str(path), load_kwargs={"weights_only": True})
        sched_file = path / SCHEDULERS_FILE
        if sched_file.is_file():
            saved = json.loads(sched_file.read_text(encoding="utf-8"))
            for name, sched in self.schedulers.items():
                if name not in saved:
                    raise ValueError(f"{sched_file}: no state for scheduler {name!r}")
                sched.load_state_dict(saved[name])
        else:  # written before schedulers.json: accelerate's custom states, loaded without unpickling objects
            for i, sched in enumerate(self.schedulers.values()):
                sched.load_state_dict(torch.load(path / f"custom_checkpoint_{i}.pkl", weights_only=True))
        return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))

    def _prune(self) -> None:
        for _, path in self.list()[: -self.keep]:
            shutil.rmtree(path, ignore_errors=True)
        for stale in self.dir.glob("step-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)

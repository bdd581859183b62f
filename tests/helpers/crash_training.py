"""A toy training run that SIGKILLs itself at a chosen point, for the kill-and-resume tests.

    python tests/helpers/crash_training.py OUT_DIR [KIND:STEP]
    python tests/helpers/crash_training.py --drive ROOT KIND:STEP [KIND:STEP ...]

KIND is where the process dies at step STEP (it sends itself SIGKILL, so nothing is cleaned up):

=================  ===================================================================
``step``           inside the forward pass of optimizer step STEP
``eval``           inside the evaluation run after step STEP
``ckpt_written``   checkpoint STEP: accelerate's files written, before checksums.json
``ckpt_fsynced``   checkpoint STEP: complete and fsynced in step-N.tmp, before the rename
``ckpt_renamed``   checkpoint STEP: renamed into place, before older ones are pruned
``run_state``      checkpoint STEP: before the run's trainer_state.json is replaced
``slow``           never; every step sleeps 50 ms (for signals sent from outside)
=================  ===================================================================

Without a kill point (or after a resume that finishes) it writes OUT_DIR/final.safetensors.

``--drive`` runs, in forked children of one process (torch is imported once; the parent never
computes, so forking is safe): the uninterrupted reference (ROOT/ref), then for each kill point a
run killed there and its rerun (ROOT/<i>), and writes ROOT/results.json.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import torch
from safetensors.torch import save_file

import omni.training.checkpoint as checkpoint
import omni.training.trainer as trainer_mod
from tests.helpers.toy_training import ToyTask, final_params, make_trainer

MAX_STEPS, SAVE_EVERY, EVAL_EVERY = 12, 3, 4
KINDS = ("step", "eval", "ckpt_written", "ckpt_fsynced", "ckpt_renamed", "run_state")


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def build(out: str, kill: str | None):
    kind, _, at = (kill or "").partition(":")
    at = int(at or 0)
    state = {"step": 0}

    def on_call(calls: int) -> None:
        state["step"] = calls  # grad_accum 1: call n is step n
        if kind == "step" and calls == at:
            die()
        if kind == "slow":
            time.sleep(0.05)

    def evaluate(model, ctx):
        if kind == "eval" and ctx.step == at:
            die()
        x = torch.linspace(-1, 1, 8)[None]  # (1, 8)
        return {"probe": float(model(x).sum())}

    def wrap(module, name):
        real = getattr(module, name)

        def hooked(*args, **kwargs):
            if state["step"] == at:
                die()
            return real(*args, **kwargs)
        setattr(module, name, hooked)

    if kind == "ckpt_written":
        wrap(checkpoint, "write_checksums")
    elif kind == "ckpt_fsynced":
        real_fsync = checkpoint._fsync_tree

        def fsync_then_die(root):
            real_fsync(root)
            if state["step"] == at:
                die()
        checkpoint._fsync_tree = fsync_then_die
    elif kind == "ckpt_renamed":
        wrap(checkpoint.CheckpointManager, "_prune")
    elif kind == "run_state":
        wrap(trainer_mod, "write_atomic")

    t = make_trainer(out, max_steps=MAX_STEPS, save_every=SAVE_EVERY, task=ToyTask(on_call=on_call))
    t.cfg.eval_every = EVAL_EVERY
    t.evaluate_fn = evaluate
    return t


def main(out: str, kill: str | None = None) -> int:
    torch.set_num_threads(1)
    t = build(out, kill)
    res = t.fit()
    print(f"result step={res.step} complete={res.complete} interrupted={res.interrupted}", flush=True)
    if res.complete:
        save_file({k: v.contiguous() for k, v in final_params(t).items()}, os.path.join(out, "final.safetensors"))
    return 0


def _forked(out: str, kill: str | None, log: str) -> int:
    """Run :func:`main` in a forked child with stdout/stderr to ``log``; returns its wait status as
    subprocess does (exit code, or minus the signal number)."""
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            code = main(out, kill)
        except BaseException:  # noqa: BLE001 -- the child must never return into the parent's code
            import traceback

            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def drive(root: str, points: list[str]) -> None:
    import json
    from pathlib import Path

    from omni.integrity import IntegrityError, verify_checksums

    rootp = Path(root)
    rootp.mkdir(parents=True, exist_ok=True)
    results = {"ref": _forked(str(rootp / "ref"), None, str(rootp / "ref.log")), "points": []}
    for i, point in enumerate(points):
        out = rootp / str(i)
        out.mkdir()
        t0 = time.perf_counter()
        killed = _forked(str(out), point, str(out / "killed.log"))
        survivors = sorted(p.name for p in (out / "checkpoints").glob("step-????????")) \
            if (out / "checkpoints").is_dir() else []
        broken = []
        for name in survivors:
            try:
                verify_checksums(out / "checkpoints" / name, required=True)
            except IntegrityError as e:
                broken.append(str(e))
        rerun = _forked(str(out), None, str(out / "rerun.log"))
        results["points"].append({"point": point, "dir": str(out), "killed": killed, "survivors": survivors,
                                  "broken": broken, "rerun": rerun, "seconds": time.perf_counter() - t0})
    (rootp / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if sys.argv[1] == "--drive":
        drive(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))

"""The training loop every training command runs, on ``accelerate`` (1 process, DDP, FSDP, DeepSpeed).

A command supplies a :class:`TrainTask` (how to weigh and score a
micro-batch) plus its model, data set and optimizers; :class:`Trainer` does
the rest: deterministic resumable data order (:mod:`omni.training.sampler`),
gradient accumulation, mixed precision, clipping, LR schedules, TensorBoard
logging through accelerate's tracker, a progress bar, periodic evaluation,
atomic checkpoints, resume, and a clean stop on SIGTERM. A step whose gradient
or loss is NaN/inf is never applied (skipped and counted, or the run stops:
``LoopConfig.nonfinite``), and non-finite weights are never saved
(:mod:`omni.training.nonfinite`).

Loss normalisation is exact for any number of processes and accumulation
steps: ``compute_loss`` returns the *sum* of the loss over the micro-batch's
loss units (examples, tokens, frames), ``batch_weight`` says how many units
the micro-batch holds, and the loop divides by the global number of units of
the step (summed over micro-batches and processes) before ``backward``. So a
2-process run computes the same gradient as a 1-process run with the same
global batch.

Tasks with several optimizers (a GAN's generator and discriminator) list one
phase per optimizer; each step runs the phases in order, each with its own
forward, backward, clipping and optimizer step.

The data order is a :class:`~omni.training.sampler.BatchPlan` (default: a
seeded global permutation of a map-style data set; staged training passes a
sharded, mixed, packed plan). Pipelines that run several trainers in one
process keep the process group alive with :func:`keep_process_group`;
``fit(on_complete=...)`` runs an export (a final ``save_pretrained``) on every
process while collectives still work, also for a run found complete on disk
(after restoring its last checkpoint).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from tqdm import tqdm

from omni.integrity import write_atomic
from omni.training.checkpoint import STATE_FILE, CheckpointManager
from omni.training.config import LoopConfig
from omni.training.nonfinite import (
    ADVICE,
    NonFiniteError,
    first_nonfinite_grad,
    first_nonfinite_weight,
)
from omni.training.sampler import BatchPlan, GlobalBatchSampler, IndexPlan


@dataclass
class StepOutput:
    """What a task returns for one micro-batch in one phase.

    Attributes:
        loss: scalar tensor, the SUM of the loss over the micro-batch's loss units.
        sums: per-unit quantities summed over the micro-batch (logged as global means), e.g. ``{"mel": ...}``.
        stats: other scalars logged as they are (averaged over micro-batches), e.g. codebook perplexity.
        denominators: for some keys of ``sums``, their own unit count (summed over micro-batches and
            processes like the sums): the key is logged as sum / count (e.g. the loss of one task over that
            task's tokens), and left out of a step where the count is 0.
        throughput: amounts processed (tokens, frames), summed over micro-batches and processes and logged
            per second of training as ``<name>_per_s``.

    ``sums``, ``denominators`` and ``throughput`` must have the same keys on every process at every step
    (report 0 for what a micro-batch lacks): they are summed across processes in one collective.
    """

    loss: torch.Tensor
    sums: dict[str, torch.Tensor | float] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    denominators: dict[str, torch.Tensor | float] = field(default_factory=dict)
    throughput: dict[str, torch.Tensor | float] = field(default_factory=dict)


@dataclass
class TrainContext:
    """Handed to ``TrainTask.evaluate``: where and when we are."""

    accelerator: Accelerator
    step: int
    run_dir: Path
    model: torch.nn.Module | None = None
    """The prepared (possibly DDP/FSDP-wrapped) model, for ``accelerator.get_state_dict`` in exports."""

    @property
    def is_main(self) -> bool:
        """True on the process that writes logs and files."""
        return self.accelerator.is_main_process

    def writer(self) -> Any:
        """The TensorBoard ``SummaryWriter`` (main process only), for images and audio."""
        return self.accelerator.get_tracker("tensorboard", unwrap=True)


class TrainTask(Protocol):
    """How a training command scores its batches."""

    phases: tuple[str, ...]
    """Names of the optimizers, stepped in this order each step (one for most tasks)."""

    def batch_weight(self, batch: Any) -> float:
        """Loss units (examples, tokens, frames) in a micro-batch; the loss is normalised by their global sum."""

    def compute_loss(self, model: torch.nn.Module, batch: Any, phase: str) -> StepOutput:
        """Forward one micro-batch for ``phase``; summed loss over its units."""

    # Optional: ``phases_at(step) -> tuple[str, ...]``, the phases that run at a step (0-based; default: all
    # of ``phases``). A phase left out is not forwarded and its optimizer and scheduler do not step (a GAN's
    # discriminator before the adversarial losses start).


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`."""

    step: int
    complete: bool
    interrupted: bool
    last_metrics: dict[str, float]


_KEEP_PROCESS_GROUP: contextvars.ContextVar[bool] = contextvars.ContextVar("keep_process_group", default=False)


@contextlib.contextmanager
def keep_process_group():
    """Inside this block :meth:`Trainer.fit` leaves the process group alive when it ends (it still closes its
    trackers), so a pipeline can run several trainers one after another in the same processes; call
    ``accelerate.PartialState().destroy_process_group()`` when done."""
    token = _KEEP_PROCESS_GROUP.set(True)
    try:
        yield
    finally:
        _KEEP_PROCESS_GROUP.reset(token)


def resolve_mixed_precision(value: str, cpu: bool) -> str:
    """``auto`` -> ``bf16`` on a GPU that supports it, else ``no``; other values unchanged."""
    if value != "auto":
        return value
    if cpu or not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "no"


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor inside dataclasses, dicts, lists and tuples to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if hasattr(obj, "__dataclass_fields__"):
        return type(obj)(**{k: to_device(getattr(obj, k), device) for k in obj.__dataclass_fields__})
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def default_plan(n_items: int, cfg: LoopConfig) -> IndexPlan:
    """The data order a :class:`Trainer` runs without a plan of its own: ``cfg.batch_size`` items a step from a
    permutation of ``n_items`` drawn from ``cfg.seed`` each epoch."""
    return IndexPlan(GlobalBatchSampler(n_items, cfg.batch_size, seed=cfg.seed))


class Trainer:
    """Runs a :class:`TrainTask` for ``cfg.max_steps`` optimizer steps.

    Args:
        cfg: loop settings.
        task: scores micro-batches.
        model: one module holding every trained sub-module.
        dataset: map-style data set (``__len__``, ``__getitem__``).
        collate: list of items -> batch.
        optimizers: phase name -> optimizer (every name in ``task.phases``).
        schedulers: phase name -> LR scheduler, stepped once per optimizer step.
        evaluate: optional ``(model, ctx) -> metrics``, run every ``eval_every`` steps and at the end.
        grad_clip: global-norm clip per phase (a float applies to every phase); 0 disables.
        accelerator: pass one to control distribution; built from ``cfg`` otherwise.
        batches: the data order (:class:`~omni.training.sampler.BatchPlan`); default: every step takes
            ``cfg.batch_size`` indices of a seeded permutation of ``dataset``.
    """

    def __init__(
        self,
        cfg: LoopConfig,
        task: TrainTask,
        model: torch.nn.Module,
        dataset: Any,
        collate: Callable[[list[Any]], Any],
        optimizers: dict[str, torch.optim.Optimizer],
        schedulers: dict[str, Any] | None = None,
        evaluate: Callable[[torch.nn.Module, TrainContext], dict[str, float]] | None = None,
        grad_clip: float | dict[str, float] = 0.0,
        accelerator: Accelerator | None = None,
        batches: BatchPlan | None = None,
    ):
        missing = [p for p in task.phases if p not in optimizers]
        if missing:
            raise ValueError(f"no optimizer for phase(s) {missing}")
        self.cfg, self.task, self.dataset, self.collate, self.evaluate_fn = cfg, task, dataset, collate, evaluate
        self.run_dir = Path(cfg.output_dir)
        self.grad_clip = grad_clip if isinstance(grad_clip, dict) else {p: grad_clip for p in task.phases}
        kwargs = [DistributedDataParallelKwargs(find_unused_parameters=len(task.phases) > 1)]
        # cpu=True on CPU-only machines: otherwise accelerate ignores torchrun's process group (MULTI_CPU)
        cpu = cfg.cpu or not torch.cuda.is_available()
        self.acc = accelerator or Accelerator(
            cpu=cpu, mixed_precision=resolve_mixed_precision(cfg.mixed_precision, cpu), log_with="tensorboard",
            project_dir=str(self.run_dir), kwargs_handlers=kwargs, step_scheduler_with_optimizer=False,
        )
        prepared = self.acc.prepare(model, *[optimizers[p] for p in task.phases])
        self.model, self.optimizers = prepared[0], dict(zip(task.phases, prepared[1:]))
        self.schedulers = schedulers or {}
        # schedulers are saved as JSON by the checkpoint manager (accelerate would pickle them)
        self.ckpt = CheckpointManager(self.run_dir, cfg.keep_checkpoints, self.schedulers)
        self.plan: BatchPlan = batches or default_plan(len(dataset), cfg)
        self._stop = False
        self.nonfinite_skips = 0  # steps not applied because of a NaN/inf (resumed from trainer_state.json)
        self._consecutive_skips = 0

    # ---- public -------------------------------------------------------------------

    def fit(self, on_complete: Callable[[TrainContext], None] | None = None) -> TrainResult:
        """Train (resuming when a checkpoint exists) until ``max_steps``, SIGTERM or Ctrl-C.

        Args:
            on_complete: called on every process once the run is complete, with the final weights in the
                model and the process group still up (e.g. to ``save_pretrained`` the result). For a run
                found already complete on disk, the last checkpoint is restored first; pass it only when
                the export is missing, since that restore reads the whole checkpoint.
        """
        state_file = self.run_dir / STATE_FILE
        if state_file.exists() and json.loads(state_file.read_text()).get("complete") and self.cfg.resume:
            done = json.loads(state_file.read_text())
            if on_complete is not None:
                latest = self.ckpt.latest()
                if latest is None or latest[0] != done["step"]:
                    raise RuntimeError(f"{self.run_dir}: the run is complete at step {done['step']} but its final "
                                       "checkpoint is missing; cannot restore the final weights")
                self.ckpt.load(self.acc, latest[1])
                on_complete(self._context(done["step"]))
            return TrainResult(done["step"], True, False, done.get("metrics", {}))
        step = self._resume()
        if step == 0:
            set_seed(self.cfg.seed)
        self.acc.init_trackers("tensorboard")
        old_handler = signal.signal(signal.SIGTERM, self._on_sigterm) if self._main_thread() else None
        try:
            step, metrics = self._loop(step)
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
        complete = step >= self.cfg.max_steps
        if complete and self.evaluate_fn is not None:
            metrics.update(self._evaluate(step))
        self._save(step, metrics, complete)
        if complete and on_complete is not None:
            on_complete(self._context(step))
        if _KEEP_PROCESS_GROUP.get():
            for tracker in self.acc.trackers:
                tracker.finish()
        else:
            self.acc.end_training()
        return TrainResult(step, complete, not complete, metrics)

    # ---- internals ----------------------------------------------------------------

    def _context(self, step: int) -> TrainContext:
        return TrainContext(self.acc, step, self.run_dir, self.model)

    def _main_thread(self) -> bool:
        import threading

        return threading.current_thread() is threading.main_thread()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._stop = True  # finish the current step, checkpoint, exit cleanly

    def _resume(self) -> int:
        latest = self.ckpt.latest() if self.cfg.resume else None
        if latest is None:
            return 0
        state = self.ckpt.load(self.acc, latest[1])
        self.nonfinite_skips = int(state.get("nonfinite_skips", 0))
        if self.acc.is_main_process:
            print(f"resuming from {latest[1]} (step {state['step']})")
        return int(state["step"])

    def _loader(self, start: int) -> torch.utils.data.DataLoader:
        batches = self.plan.micro_batches(start, self.cfg.max_steps, self.acc.process_index,
                                          self.acc.num_processes, self.cfg.grad_accum)
        # its own generator: creating the iterator must not draw from the global RNG, or a resumed
        # run's dropout masks would differ from an uninterrupted run's
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + start)
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=batches, collate_fn=self.collate,
                                           num_workers=self.cfg.num_workers, generator=generator,
                                           pin_memory=self.acc.device.type == "cuda")

    def _loop(self, step: int) -> tuple[int, dict[str, float]]:
        cfg = self.cfg
        bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit=" step",
                   disable=not (cfg.progress and self.acc.is_main_process), dynamic_ncols=True)
        batches = iter(self._loader(step))
        metrics: dict[str, float] = {}
        window: dict[str, list[float]] = defaultdict(list)
        done: dict[str, float] = defaultdict(float)
        t0, units_done = time.perf_counter(), 0.0
        while step < cfg.max_steps and not self._stop:
            micro = [to_device(next(batches), self.acc.device) for _ in range(cfg.grad_accum)]
            step_metrics, units, amounts = self._train_step(micro, step)
            units_done += units
            for k, v in amounts.items():
                done[k] += v
            step += 1
            bar.update()
            for k, v in step_metrics.items():
                window[k].append(v)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                elapsed = time.perf_counter() - t0
                metrics = {k: sum(v) / len(v) for k, v in window.items()}
                metrics["units_per_s"] = units_done / max(elapsed, 1e-9)
                metrics.update({f"{k}_per_s": v / max(elapsed, 1e-9) for k, v in done.items()})
                metrics["epoch"] = self.plan.epoch_of(step)
                metrics["nonfinite_skips"] = float(self.nonfinite_skips)
                for phase, opt in self.optimizers.items():
                    for i, group in enumerate(opt.param_groups):
                        metrics[f"lr/{phase}/{group.get('name', i)}"] = group["lr"]
                self.acc.log(metrics, step=step)
                bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if k.startswith("loss") and k.count("/") < 2})
                window.clear()
                done.clear()
                t0, units_done = time.perf_counter(), 0.0
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps and self.evaluate_fn:
                metrics.update(self._evaluate(step))
            if step % cfg.save_every == 0 and step < cfg.max_steps:
                self._save(step, metrics, complete=False)
        bar.close()
        return step, metrics

    def _global_units(self, micro: list[Any]) -> float:
        local = torch.tensor(sum(float(self.task.batch_weight(b)) for b in micro), device=self.acc.device,
                             dtype=torch.float64)
        return float(self.acc.reduce(local, reduction="sum"))

    def _train_step(self, micro: list[Any], step: int = 0) -> tuple[dict[str, float], float, dict[str, float]]:
        """One optimizer step per phase over this process's micro-batches: (metrics, loss units, throughput).

        ``step`` is the number of steps done before this one (the task's ``phases_at`` may leave phases out)."""
        total = self._global_units(micro)
        if total <= 0:
            raise RuntimeError("a training step has no loss units (every example of the batch was empty)")
        scale = self.acc.num_processes / total  # DDP averages gradients over processes
        out: dict[str, float] = {}
        amounts: dict[str, float] = {}
        phases_at = getattr(self.task, "phases_at", None)
        skipped = False
        for phase in phases_at(step) if phases_at is not None else self.task.phases:
            opt = self.optimizers[phase]
            opt.zero_grad(set_to_none=True)
            sums: dict[str, float] = defaultdict(float)
            dens: dict[str, float] = defaultdict(float)
            thr: dict[str, float] = defaultdict(float)
            stats: dict[str, list[float]] = defaultdict(list)
            loss_key = f"loss/{phase}" if len(self.task.phases) > 1 else "loss"
            for i, batch in enumerate(micro):
                sync = i == len(micro) - 1
                with self.acc.no_sync(self.model) if not sync else contextlib.nullcontext():
                    with self.acc.autocast():
                        result = self.task.compute_loss(self.model, batch, phase)
                    self.acc.backward(result.loss * scale)
                sums[loss_key] += float(result.loss.detach())
                for k, v in result.sums.items():
                    sums[k] += float(v)
                for k, v in result.denominators.items():
                    dens[k] += float(v)
                for k, v in result.throughput.items():
                    thr[k] += float(v)
                for k, v in result.stats.items():
                    stats[k].append(float(v))
            if not self._finite_step(opt, phase, sums[loss_key], step, out):
                skipped = True
                continue
            opt.step()
            if getattr(opt, "step_was_skipped", False):  # fp16: the loss scaler found an overflow
                self._count_skip(phase, step, None)
                skipped = True
                continue
            if phase in self.schedulers:
                self.schedulers[phase].step()
            keys = [*sums, *(f"\0den:{k}" for k in dens), *(f"\0thr:{k}" for k in thr)]
            values = [*sums.values(), *dens.values(), *thr.values()]
            reduced = dict(zip(keys, self.acc.reduce(torch.tensor(values, device=self.acc.device,
                                                                  dtype=torch.float64), reduction="sum").tolist()))
            for k in sums:
                if k in dens:
                    if reduced[f"\0den:{k}"] > 0:
                        out[k] = reduced[k] / reduced[f"\0den:{k}"]
                else:
                    out[k] = reduced[k] / total
            amounts.update({k: reduced[f"\0thr:{k}"] for k in thr})
            out.update({k: sum(v) / len(v) for k, v in stats.items()})
        if skipped:
            return {}, total, amounts  # the loss of a skipped step is NaN: nothing of it is logged
        self._consecutive_skips = 0
        return out, total, amounts

    def _finite_step(self, opt: torch.optim.Optimizer, phase: str, local_loss: float, step: int,
                     out: dict[str, float]) -> bool:
        """Clip (when the phase clips) and check this phase's gradients before its optimizer step.

        The decision rests on the global gradient norm, the same on every process (DDP all-reduces gradients,
        FSDP's clip reduces the norm; a non-finite local loss makes a non-finite gradient), so every process
        takes the same branch without a collective of its own. Returns False when the step must not be applied
        (its gradients are dropped)."""
        clip = self.grad_clip.get(phase, 0.0)
        # max_norm=inf only measures the norm (clip coefficient 1): the check needs it even without clipping
        norm = self.acc.clip_grad_norm_(_params(opt), clip if clip > 0 else math.inf)
        if norm is None:  # DeepSpeed clips inside its engine: the loss, shared across processes, is what we see
            bad = float(not math.isfinite(local_loss))
            if self.acc.num_processes > 1:
                bad = float(self.acc.reduce(torch.tensor([bad], device=self.acc.device), reduction="sum"))
            finite = bad == 0
        else:
            value = float(norm)
            finite = math.isfinite(value)
            if finite and clip > 0:
                out[f"grad_norm/{phase}"] = value
        if finite or self.acc.scaler is not None:
            return True  # fp16: an overflow is the loss scaler's to skip and recalibrate on (counted after step)
        name = first_nonfinite_grad(self.acc.unwrap_model(self.model))
        if self.cfg.nonfinite == "stop":
            what = f"the gradient of {name}" if name else f"the loss ({local_loss})"
            raise NonFiniteError(f"{self.run_dir}: step {step + 1} ({phase}): {what} is non-finite; the step was "
                                 f"not applied and nothing was saved after the last checkpoint. To try: {ADVICE}")
        opt.zero_grad(set_to_none=True)
        self._count_skip(phase, step, name)
        return False

    def _count_skip(self, phase: str, step: int, name: str | None) -> None:
        self.nonfinite_skips += 1
        self._consecutive_skips += 1
        where = f" (first non-finite gradient: {name})" if name else ""
        if self.acc.is_main_process:
            tqdm.write(f"step {step + 1} ({phase}): non-finite gradient or loss{where}; step skipped "
                       f"({self._consecutive_skips} in a row, {self.nonfinite_skips} in all)")
        if self._consecutive_skips >= self.cfg.max_nonfinite_skips:
            raise NonFiniteError(f"{self.run_dir}: {self._consecutive_skips} steps in a row had a non-finite "
                                 f"gradient or loss (last: step {step + 1}, {phase}{where}); "
                                 f"none was applied. The run is diverging; to try: {ADVICE}")

    def _evaluate(self, step: int) -> dict[str, float]:
        self.model.eval()
        try:
            with torch.no_grad():
                result = self.evaluate_fn(self.acc.unwrap_model(self.model), TrainContext(self.acc, step, self.run_dir))
        finally:
            self.model.train()
        result = {k if k.startswith("eval/") else f"eval/{k}": float(v) for k, v in (result or {}).items()}
        self.acc.log(result, step=step)
        return result

    def _save(self, step: int, metrics: dict[str, float], complete: bool) -> None:
        name = first_nonfinite_weight(self.acc.unwrap_model(self.model))
        bad = float(name is not None)
        if self.acc.num_processes > 1:  # FSDP shards: every process must agree before the collective save
            bad = float(self.acc.reduce(torch.tensor([bad], device=self.acc.device), reduction="sum"))
        if bad:
            raise NonFiniteError(f"{self.run_dir}: not saving step {step}: the weights hold a NaN or inf "
                                 f"({'parameter ' + name if name else 'on another process'}); the last checkpoint "
                                 f"on disk is intact. To try: {ADVICE}")
        state = {"epoch": self.plan.epoch_of(step), "samples_seen": step * self.cfg.batch_size,
                 "data_position": self.plan.position(step), "metrics": metrics, "complete": complete,
                 "nonfinite_skips": self.nonfinite_skips}
        self.ckpt.save(self.acc, step, state)
        if self.acc.is_main_process:
            write_atomic(self.run_dir / STATE_FILE, (json.dumps({**state, "step": step}, indent=2) + "\n").encode())


def _params(opt: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for g in opt.param_groups for p in g["params"]]

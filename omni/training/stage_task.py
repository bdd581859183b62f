"""Loss, training task and evaluation of a training stage.

:func:`stage_loss` is a pure function of the model output and the batch: the text cross-entropy
summed over target tokens plus ``audio_weight`` x the audio-head cross-entropy summed over target
frames (each frame: the level-weighted sum over its K codebooks), with the same sums split per task.
The loss units are target tokens + target frames, so the shared loop's normalisation gives the mean
over units, exact across processes and accumulation steps.

TensorBoard (through :class:`~omni.training.trainer.StepOutput`): ``loss`` (per unit), ``loss/text``
(per target token), ``loss/audio`` (per target frame), ``loss/audio/level_k``, ``loss/task/<task>``
(per unit of that task), ``padding_fraction`` (padding positions / all positions), ``tokens_per_s``
(real tokens a second, all processes), ``lr/main/<group>``; on dev sources ``eval/...`` alike plus
``eval/text_accuracy`` and ``eval/audio_accuracy``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from omni.data.batching import StageBatch, collate_rows
from omni.data.dataset import TASK_NAMES, DataHealth, StageDataset
from omni.data.plan import RowKey
from omni.model.batch import IGNORE
from omni.model.losses import audio_frame_logprobs, text_token_logprobs
from omni.training.trainer import StepOutput, TrainContext


@dataclass
class StageLoss:
    """Summed losses of one batch.

    Attributes:
        total: scalar, text + audio_weight * audio (what is back-propagated, divided by the global units).
        text / audio: scalar sums (audio already level-weighted, not multiplied by audio_weight).
        audio_levels: (K,) unweighted CE summed over target frames, per codebook level.
        num_tokens / num_frames: target tokens and frames.
        task_loss / task_units: (n_tasks,) the same total and units per task.
        text_correct / audio_correct: top-1 hits over target tokens / target codes (all levels).
    """

    total: torch.Tensor
    text: torch.Tensor
    audio: torch.Tensor
    audio_levels: torch.Tensor
    num_tokens: int
    num_frames: int
    task_loss: torch.Tensor
    task_units: torch.Tensor
    text_correct: int
    audio_correct: int


def stage_loss(output, batch: StageBatch, num_tasks: int, audio_weight: float = 1.0,
               level_weights: list[float] | None = None) -> StageLoss:
    """Text + audio cross-entropy of an :class:`~omni.model.model.OmniOutput`, in total and per task.

    Args:
        output: the model output for ``batch.model``.
        batch: the batch, with its position -> example and frame -> example maps.
        num_tasks: length of the per-task vectors (task ids index them).
        audio_weight: weight of the audio loss relative to the text loss.
        level_weights: K per-codebook weights (default all 1).
    """
    labels = batch.model.labels  # (B, T)
    nll = -text_token_logprobs(output.text_logits, labels)  # (B, T), 0 where not a target
    target = labels != IGNORE
    target[:, 0] = False  # position 0 is never predicted
    codes = batch.model.audio_codes[batch.model.audio_target]  # (N_t, K)
    frame_lp = audio_frame_logprobs(output.audio_logits, codes)  # (N_t, K)
    k = frame_lp.shape[-1]
    w = torch.ones(k) if level_weights is None else torch.as_tensor(level_weights, dtype=torch.float32)
    frame_nll = -(frame_lp * w.to(frame_lp.device)).sum(-1)  # (N_t,)
    text, audio = nll.sum(), frame_nll.sum()
    dev = nll.device
    pos_task = batch.example_task.to(dev)[batch.example_index.clamp(min=0)]  # (B, T)
    frame_task = batch.example_task.to(dev)[batch.frame_example.to(dev)[batch.model.audio_target]]  # (N_t,)
    task_loss = torch.zeros(num_tasks, device=dev).index_add(0, pos_task[target], nll[target].detach())
    task_loss = task_loss.index_add(0, frame_task, audio_weight * frame_nll.detach())
    task_units = torch.zeros(num_tasks, device=dev).index_add(0, pos_task[target], torch.ones_like(nll[target]))
    task_units = task_units.index_add(0, frame_task, torch.ones_like(frame_nll))
    with torch.no_grad():
        pred = output.text_logits[:, :-1].argmax(-1)  # (B, T-1) predicts positions 1..T-1
        text_correct = int(((pred == labels[:, 1:]) & target[:, 1:]).sum())
        audio_correct = 0 if codes.shape[0] == 0 else sum(int((lg.argmax(-1) == codes[:, i]).sum())
                                                           for i, lg in enumerate(output.audio_logits))
    return StageLoss(total=text + audio_weight * audio, text=text.detach(), audio=audio.detach(),
                     audio_levels=(-frame_lp).sum(0).detach(), num_tokens=int(target.sum()),
                     num_frames=int(codes.shape[0]), task_loss=task_loss, task_units=task_units,
                     text_correct=text_correct, audio_correct=audio_correct)


def _scalars(loss: StageLoss, prefix: str = "") -> tuple[dict[str, float], dict[str, float]]:
    """(sums, denominators) of the logged losses."""
    sums = {f"{prefix}loss/text": float(loss.text), f"{prefix}loss/audio": float(loss.audio)}
    dens = {f"{prefix}loss/text": loss.num_tokens, f"{prefix}loss/audio": loss.num_frames}
    for k, v in enumerate(loss.audio_levels.tolist()):
        sums[f"{prefix}loss/audio/level_{k}"] = v
        dens[f"{prefix}loss/audio/level_{k}"] = loss.num_frames
    for t, name in enumerate(TASK_NAMES):
        sums[f"{prefix}loss/task/{name}"] = float(loss.task_loss[t])
        dens[f"{prefix}loss/task/{name}"] = float(loss.task_units[t])
    return sums, dens


class StageTask:
    """:class:`~omni.training.trainer.TrainTask` of a stage: one phase, units = target tokens + target frames.

    Args:
        num_codebooks: K, the model's codebooks (``level_weights`` must have K entries).
        audio_weight / level_weights: see :func:`stage_loss`.
        health: counts examples that failed to load (raises when too many).
        log_dir: when set, every micro-batch's step and example ids are appended to ``rank-N.jsonl`` there.
        rank: this process (names the log file).
    """

    phases = ("main",)

    def __init__(self, num_codebooks: int, audio_weight: float = 1.0, level_weights: list[float] | None = None,
                 health: DataHealth | None = None, log_dir: Path | None = None, rank: int = 0):
        if level_weights is not None and len(level_weights) != num_codebooks:
            raise ValueError(f"loss.audio_level_weights: the model has {num_codebooks} codebooks, got "
                             f"{len(level_weights)} weights")
        self.k, self.audio_weight, self.level_weights = num_codebooks, audio_weight, level_weights
        self.health, self.log_dir, self.rank = health, log_dir, rank

    def batch_weight(self, batch: StageBatch) -> float:
        return float(batch.model.num_target_tokens + batch.model.num_target_frames)

    def compute_loss(self, model: nn.Module, batch: StageBatch, phase: str) -> StepOutput:
        if self.health is not None:
            self.health.update(batch.failed)
        if self.log_dir is not None:
            self._log(batch)
        out = model(batch.model, return_loss=False)
        loss = stage_loss(out, batch, len(TASK_NAMES), self.audio_weight, self.level_weights)
        sums, dens = _scalars(loss)  # the same keys on every process (K levels, every task)
        sums["padding_fraction"] = float(batch.num_positions - batch.num_tokens)
        dens["padding_fraction"] = float(batch.num_positions)
        sums["data/skipped_examples"] = float(len(batch.failed))
        dens["data/skipped_examples"] = float(len(batch.ids) + len(batch.failed))
        return StepOutput(loss=loss.total, sums=sums, denominators=dens,
                          throughput={"tokens": float(batch.num_tokens)})

    def _log(self, batch: StageBatch) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"step": batch.step + 1, "pid": os.getpid(), "ids": batch.ids, "failed": len(batch.failed)})
        with open(self.log_dir / f"rank-{self.rank}.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")


def evaluate_stage(model: nn.Module, ctx: TrainContext, dev: StageDataset, batch_size: int,
                   audio_weight: float = 1.0, level_weights: list[float] | None = None) -> dict[str, float]:
    """Dev losses (total, text, audio, per task) and top-1 accuracies, each process on its own dev shard.

    Examples are batched in order of length (padded), so little is spent on padding.
    """
    acc = ctx.accelerator
    keys = [(j, i, item) for (j, i), part in sorted(dev.index.parts.items()) for item in range(len(part))]
    keys.sort(key=lambda x: int(dev.index.parts[(x[0], x[1])].lengths[x[2]]))
    sums: dict[str, float] = {}
    dens: dict[str, float] = {}
    extra = torch.zeros(4, dtype=torch.float64)  # text correct, tokens, audio correct, codes
    pad = model.token_ids.pad
    for start in range(0, len(keys), batch_size):
        rows = [dev[RowKey(0, (key,))] for key in keys[start:start + batch_size]]
        if not any(r.examples for r in rows):
            continue
        batch = collate_rows([r for r in rows if r.examples], pad, packed=False, num_codebooks=model.cfg.num_codebooks)
        batch = StageBatch(batch.model.to(acc.device), batch.example_index.to(acc.device),
                           batch.example_task.to(acc.device), batch.frame_example.to(acc.device), 0, batch.ids, [])
        with acc.autocast():
            out = model(batch.model, return_loss=False)
        loss = stage_loss(out, batch, len(TASK_NAMES), audio_weight, level_weights)
        s, d = _scalars(loss)
        for key in s:
            sums[key] = sums.get(key, 0.0) + s[key]
            dens[key] = dens.get(key, 0.0) + d[key]
        sums["loss"] = sums.get("loss", 0.0) + float(loss.total)
        dens["loss"] = dens.get("loss", 0.0) + loss.num_tokens + loss.num_frames
        extra += torch.tensor([loss.text_correct, loss.num_tokens, loss.audio_correct,
                               loss.num_frames * model.cfg.num_codebooks], dtype=torch.float64)
    names = ["loss", "loss/text", "loss/audio"] + [f"loss/task/{t}" for t in TASK_NAMES] + \
        [f"loss/audio/level_{k}" for k in range(model.cfg.num_codebooks)]
    values = torch.tensor([sums.get(n, 0.0) for n in names] + [dens.get(n, 0.0) for n in names], dtype=torch.float64)
    totals = acc.reduce(torch.cat([values, extra]).to(acc.device), reduction="sum").cpu()
    n = len(names)
    result = {name: float(totals[i] / totals[n + i]) for i, name in enumerate(names) if totals[n + i] > 0}
    if totals[2 * n + 1] > 0:
        result["text_accuracy"] = float(totals[2 * n] / totals[2 * n + 1])
    if totals[2 * n + 3] > 0:
        result["audio_accuracy"] = float(totals[2 * n + 2] / totals[2 * n + 3])
    return result

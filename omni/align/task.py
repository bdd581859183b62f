"""The preference-alignment :class:`~omni.training.trainer.TrainTask` and its evaluation.

One forward of the policy over the 2B rows of a :class:`~omni.align.data.PreferenceBatch` (chosen and
rejected together, so SFT and DPO share the model's forward), the reference log-probs from the
configured :mod:`~omni.align.reference`, then the pure loss of :mod:`omni.align.losses`. The loss
unit is the pair (the completion for KTO): ``compute_loss`` returns the sum of the per-pair losses
and the loop divides by the global number of pairs, which is TRL's ``losses.mean()`` for one batch.

TensorBoard: ``loss``, the TRL metrics (``rewards/chosen``, ``rewards/rejected``, ``rewards/accuracies``,
``rewards/margins``, ``logps/chosen``, ``logps/rejected``; ORPO adds ``nll_loss`` and ``log_odds_ratio``,
KTO ``kl``), ``tokens_per_s``; on the dev pairs the same under ``eval/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from omni.align.config import PreferenceLossConfig
from omni.align.data import PreferenceBatch
from omni.align.logps import ResponseLogProbs, response_logprobs
from omni.align.losses import (
    KTOLoss,
    PreferenceLoss,
    dpo_loss,
    ipo_loss,
    kto_kl,
    kto_loss,
    orpo_loss,
    simpo_loss,
)
from omni.align.metrics import PAIR_METRICS, kto_sums, preference_sums
from omni.align.replay import JointBatch, replay_loss
from omni.data.dataset import TASK_NAMES
from omni.training.stage_task import stage_loss
from omni.training.trainer import StepOutput, TrainContext


@dataclass
class Objective:
    """A batch's loss and metrics: ``loss`` (per-pair losses inside), metric sums and their denominators."""

    loss: PreferenceLoss | KTOLoss
    sums: dict[str, float]
    denominators: dict[str, float]


def preference_objective(cfg: PreferenceLossConfig, policy: ResponseLogProbs, ref: torch.Tensor | None,
                         desirable: torch.Tensor | None = None) -> Objective:
    """The configured loss of a 2B-row batch.

    Args:
        cfg: loss type and hyper-parameters.
        policy: the policy's response log-probs of all 2B rows.
        ref: (2B,) summed reference log-probs in the same order, or None (reference-free losses).
        desirable: (B,) KTO labels (rows B..2B-1 are then the mismatched KL pairs).
    """
    c, r = policy.halves()
    if cfg.type == "kto":
        ref_c, ref_kl = ref[: c.sum.shape[0]], ref[c.sum.shape[0]:]
        z = kto_kl(r.sum, ref_kl)
        loss = kto_loss(c.sum, ref_c, desirable, z, cfg.beta, cfg.desirable_weight, cfg.undesirable_weight)
        sums, dens = kto_sums(loss, c.sum)
        return Objective(loss, sums, dens)
    if cfg.type in ("simpo", "orpo"):
        lc, lr = c.average, r.average
        loss = simpo_loss(lc, lr, cfg.beta, cfg.gamma, cfg.label_smoothing) if cfg.type == "simpo" else \
            orpo_loss(lc, lr, cfg.beta)
        return _with_sft(Objective(loss, preference_sums(loss, lc, lr), {}), cfg, c)
    b = c.sum.shape[0]
    ref_c, ref_r = ref[:b].to(c.sum), ref[b:].to(c.sum)
    if cfg.type == "dpo":
        loss = dpo_loss(c.sum, r.sum, ref_c, ref_r, cfg.beta, cfg.label_smoothing)
    else:
        loss = ipo_loss(c.sum, r.sum, ref_c, ref_r, c.num_tokens, r.num_tokens, cfg.beta)
    return _with_sft(Objective(loss, preference_sums(loss, c.sum, r.sum), {}), cfg, c)


def _with_sft(obj: Objective, cfg: PreferenceLossConfig, chosen: ResponseLogProbs) -> Objective:
    """Add ``sft_weight`` x the chosen response's mean token NLL to each pair's loss (RPO); logs ``nll_loss``."""
    if cfg.sft_weight > 0:
        nll = -chosen.average  # (B,)
        obj.loss.losses = obj.loss.losses + cfg.sft_weight * nll
        obj.sums["nll_loss"] = float(nll.detach().sum())
    return obj


def metric_names(cfg: PreferenceLossConfig) -> list[str]:
    """The keys :func:`preference_objective` reports for this loss (plus ``loss``)."""
    if cfg.type == "kto":
        return ["loss", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected", "kl"]
    extra = ["nll_loss", "log_odds_ratio"] if cfg.type == "orpo" else (["nll_loss"] if cfg.sft_weight > 0 else [])
    return ["loss", *PAIR_METRICS, *extra]


class PreferenceTask:
    """DPO / IPO / SimPO / ORPO / KTO as a task of the shared loop (one phase; unit = pair or completion).

    With replay (:mod:`omni.align.replay`) a micro-batch is a :class:`~omni.align.replay.JointBatch` and its
    loss adds ``replay_weight`` x the replay rows' mean NLL per pair; ``replay/loss`` (per target unit),
    ``replay/loss/text`` and ``replay/loss/audio`` are logged.

    Args:
        cfg: the loss.
        reference: a reference (``logps(policy, batch) -> (2B,)``) or None for reference-free losses.
        replay_weight: weight of the replay rows' mean NLL (used only on joint batches).
    """

    phases = ("main",)

    def __init__(self, cfg: PreferenceLossConfig, reference: Any = None, replay_weight: float = 1.0):
        self.cfg, self.reference, self.replay_weight = cfg, reference, replay_weight

    def batch_weight(self, batch: PreferenceBatch | JointBatch) -> float:
        return float(batch.num_items)

    def compute_loss(self, model: nn.Module, batch: PreferenceBatch | JointBatch, phase: str) -> StepOutput:
        pairs = batch.pairs if isinstance(batch, JointBatch) else batch
        out = model(pairs.model, return_loss=False)
        policy = response_logprobs(out, pairs.model)
        ref = None if self.reference is None else self.reference.logps(model, pairs)
        obj = preference_objective(self.cfg, policy, ref, pairs.desirable)
        tokens = _real_tokens(pairs.model)
        loss, sums, dens = obj.loss.losses.sum(), obj.sums, obj.denominators
        if isinstance(batch, JointBatch):
            rows = batch.replay
            stage = stage_loss(model(rows.model, return_loss=False), rows, len(TASK_NAMES))
            units = stage.num_tokens + stage.num_frames
            loss = loss + replay_loss(stage.total, units, pairs.num_items, self.replay_weight)
            sums = {**sums, "replay/loss": float(stage.total.detach()), "replay/loss/text": float(stage.text),
                    "replay/loss/audio": float(stage.audio)}
            dens = {**dens, "replay/loss": units, "replay/loss/text": stage.num_tokens,
                    "replay/loss/audio": stage.num_frames}
            tokens += float(rows.num_tokens)
        return StepOutput(loss=loss, sums=sums, denominators=dens, throughput={"tokens": tokens})


def _real_tokens(batch: Any) -> float:
    """Non-padding positions of an :class:`~omni.model.batch.OmniBatch`."""
    mask = batch.attention_mask
    return float(mask.sum()) if mask is not None else float(batch.input_ids.numel())


@torch.no_grad()
def evaluate_preference(model: nn.Module, ctx: TrainContext, dev: Any, collate: Any, cfg: PreferenceLossConfig,
                        reference: Any, batch_size: int) -> dict[str, float]:
    """The metrics of the dev pairs (each process its share, summed over processes): ``eval/loss``,
    ``eval/rewards/accuracies``, ... (means over pairs; KTO's per-class metrics over their class)."""
    acc = ctx.accelerator
    idx = list(range(acc.process_index, len(dev), acc.num_processes))
    sums: dict[str, float] = {}
    dens: dict[str, float] = {}
    for start in range(0, len(idx), batch_size):
        batch = collate([dev[i] for i in idx[start:start + batch_size]])
        batch = PreferenceBatch(batch.model.to(acc.device), batch.ids,
                                None if batch.ref_logps is None else batch.ref_logps.to(acc.device),
                                None if batch.desirable is None else batch.desirable.to(acc.device))
        with acc.autocast():
            out = model(batch.model, return_loss=False)
            policy = response_logprobs(out, batch.model)
            ref = None if reference is None else reference.logps(model, batch)
        obj = preference_objective(cfg, policy, ref, batch.desirable)
        n = float(batch.num_items)
        for k, v in {"loss": float(obj.loss.losses.sum()), **obj.sums}.items():
            sums[k] = sums.get(k, 0.0) + v
            dens[k] = dens.get(k, 0.0) + obj.denominators.get(k, n)
    names = metric_names(cfg)  # the same keys on every process, even one without dev pairs
    values = torch.tensor([sums.get(k, 0.0) for k in names] + [dens.get(k, 0.0) for k in names], dtype=torch.float64)
    totals = acc.reduce(values.to(acc.device), reduction="sum").cpu()
    n = len(names)
    return {k: float(totals[i] / totals[n + i]) for i, k in enumerate(names) if totals[n + i] > 0}

"""Preference metrics under TRL's names, as per-pair *sums* so the shared loop averages them exactly.

``rewards/chosen``, ``rewards/rejected``, ``rewards/margins`` (chosen - rejected), ``rewards/accuracies``
(fraction of pairs whose chosen reward is strictly larger), ``logps/chosen``, ``logps/rejected`` (the
log-probs the loss used: sums for DPO / IPO, averages for SimPO / ORPO, as TRL's DPOTrainer and
CPOTrainer log them). With the loop's denominator (pairs, over all processes and accumulation steps)
each becomes the mean over pairs, which is what TRL logs for one batch.
"""

from __future__ import annotations

import torch

from omni.align.losses import KTOLoss, ORPOLoss, PreferenceLoss

PAIR_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
                "logps/rejected")


def preference_sums(loss: PreferenceLoss, chosen_logps: torch.Tensor, rejected_logps: torch.Tensor) -> dict[str, float]:
    """Sums over the B pairs of each metric (divide by B, or by the global pair count, for the mean)."""
    out = {
        "rewards/chosen": float(loss.chosen_rewards.sum()),
        "rewards/rejected": float(loss.rejected_rewards.sum()),
        "rewards/accuracies": float(loss.accuracies.sum()),
        "rewards/margins": float(loss.margins.sum()),
        "logps/chosen": float(chosen_logps.detach().sum()),
        "logps/rejected": float(rejected_logps.detach().sum()),
    }
    if isinstance(loss, ORPOLoss):
        out["nll_loss"] = float(loss.nll.sum())
        out["log_odds_ratio"] = float(loss.log_odds_ratio.sum())
    return out


def kto_sums(loss: KTOLoss, logps: torch.Tensor) -> tuple[dict[str, float], dict[str, float]]:
    """(sums, denominators) of KTO's metrics: rewards and log-probs per class (their own counts), and ``kl``."""
    good, bad = loss.desirable, ~loss.desirable
    sums = {"rewards/chosen": float(loss.rewards[good].sum()), "rewards/rejected": float(loss.rewards[bad].sum()),
            "logps/chosen": float(logps.detach()[good].sum()), "logps/rejected": float(logps.detach()[bad].sum()),
            "kl": float(loss.kl) * logps.shape[0]}
    dens = {"rewards/chosen": float(good.sum()), "rewards/rejected": float(bad.sum()),
            "logps/chosen": float(good.sum()), "logps/rejected": float(bad.sum()), "kl": float(logps.shape[0])}
    return sums, dens

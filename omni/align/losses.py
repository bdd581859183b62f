"""Preference losses as pure functions of sequence log-probabilities (no model, no batch).

Every function takes per-pair (or per-completion) log-probs of shape (B,) and returns a named result
with the per-pair losses (B,) (the caller sums or averages them) and the implicit rewards that TRL
logs. Conventions follow TRL 1.16 so that numbers can be compared one to one:

=============  =======================================================================================
loss           per pair (c = chosen, r = rejected, ``pi`` policy, ``ref`` reference log-probs)
=============  =======================================================================================
``dpo``        ``-(1-ε) log σ(β h) - ε log σ(-β h)``, ``h = (pi_c - ref_c) - (pi_r - ref_r)`` (sums)
``ipo``        ``(h_c / n_c - h_r / n_r - 1 / (2β))²`` with ``h = pi - ref`` and ``n`` the response
               lengths (TRL's length-normalised IPO)
``simpo``      ``-(1-ε) log σ(β (a_c - a_r) - γ) - ε log σ(-(β (a_c - a_r) - γ))``, ``a`` average
               log-probs (reference-free); reward ``β a``
``orpo``       ``-a_c - λ log σ(log odds(a_c) - log odds(a_r))``, ``log odds(a) = a - log(1 - e^a)``;
               the NLL term is the chosen response's mean token NLL; reward ``λ a``
``kto``        desirable: ``w_d (1 - σ(β (h - z)))``, undesirable: ``w_u (1 - σ(β (z - h)))`` with
               ``z = max(0, mean(pi_kl - ref_kl))`` estimated on mismatched pairs (no gradient)
=============  =======================================================================================

Rewards are detached; ``h`` etc. keep their graph so ``losses.sum().backward()`` trains the policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PreferenceLoss:
    """Losses of B preference pairs.

    Attributes:
        losses: (B,) per-pair loss (differentiable).
        chosen_rewards / rejected_rewards: (B,) implicit rewards, detached (TRL's rewards/chosen, rewards/rejected).
    """

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        """(B,) chosen - rejected reward."""
        return self.chosen_rewards - self.rejected_rewards

    @property
    def accuracies(self) -> torch.Tensor:
        """(B,) 1.0 where the chosen reward is strictly larger."""
        return (self.chosen_rewards > self.rejected_rewards).float()


@dataclass
class KTOLoss:
    """Losses of B unpaired completions.

    Attributes:
        losses: (B,) per-completion weighted loss.
        rewards: (B,) ``β (pi - ref)``, detached.
        desirable: (B,) bool, the labels.
        kl: scalar, the clamped KL estimate ``z`` (detached).
    """

    losses: torch.Tensor
    rewards: torch.Tensor
    desirable: torch.Tensor
    kl: torch.Tensor


def _smoothed_sigmoid(logits: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """``-(1-ε) log σ(x) - ε log σ(-x)`` (conservative DPO, cDPO)."""
    return -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


def dpo_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, ref_chosen_logps: torch.Tensor,
             ref_rejected_logps: torch.Tensor, beta: float = 0.1, label_smoothing: float = 0.0) -> PreferenceLoss:
    """Sigmoid DPO (Rafailov et al. 2023), with optional label smoothing (cDPO).

    Args:
        chosen_logps / rejected_logps: (B,) policy log-probs summed over response tokens.
        ref_chosen_logps / ref_rejected_logps: (B,) the same under the reference model.
        beta: inverse temperature β (0.1-0.5 usual).
        label_smoothing: ε, the assumed probability that a label is flipped (0 = plain DPO).
    """
    chosen_ratio = chosen_logps - ref_chosen_logps  # (B,)
    rejected_ratio = rejected_logps - ref_rejected_logps
    losses = _smoothed_sigmoid(beta * (chosen_ratio - rejected_ratio), label_smoothing)
    return PreferenceLoss(losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach())


def ipo_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, ref_chosen_logps: torch.Tensor,
             ref_rejected_logps: torch.Tensor, chosen_lengths: torch.Tensor, rejected_lengths: torch.Tensor,
             beta: float = 0.1) -> PreferenceLoss:
    """IPO (Azar et al. 2023, eq. 17) on log-ratios averaged over the response length, as TRL computes it.

    Args:
        chosen_logps ... ref_rejected_logps: (B,) summed log-probs.
        chosen_lengths / rejected_lengths: (B,) response lengths (target positions), clamped to >= 1.
        beta: the regulariser τ; the target log-ratio gap is ``1 / (2β)``.
    """
    chosen_ratio = chosen_logps - ref_chosen_logps
    rejected_ratio = rejected_logps - ref_rejected_logps
    gap = chosen_ratio / chosen_lengths.clamp(min=1) - rejected_ratio / rejected_lengths.clamp(min=1)  # (B,)
    losses = (gap - 1 / (2 * beta)) ** 2
    return PreferenceLoss(losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach())


def simpo_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, beta: float = 2.0, gamma: float = 0.5,
               label_smoothing: float = 0.0) -> PreferenceLoss:
    """SimPO (Meng et al. 2024): reference-free, length-normalised reward ``β a`` and target margin γ.

    Args:
        chosen_logps / rejected_logps: (B,) *average* log-probs per response position.
        beta: reward scale β (SimPO uses 2-2.5).
        gamma: target reward margin γ (in reward units, TRL's ``simpo_gamma``).
        label_smoothing: ε as in :func:`dpo_loss`.
    """
    logits = beta * (chosen_logps - rejected_logps) - gamma  # (B,)
    losses = _smoothed_sigmoid(logits, label_smoothing)
    return PreferenceLoss(losses, beta * chosen_logps.detach(), beta * rejected_logps.detach())


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for x < 0, stable on both ends (Mächler 2012)."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


@dataclass
class ORPOLoss(PreferenceLoss):
    """:class:`PreferenceLoss` plus ORPO's two terms (B,): the chosen NLL and ``log σ(log odds ratio)``."""

    nll: torch.Tensor | None = None
    log_odds_ratio: torch.Tensor | None = None


def orpo_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, lam: float = 0.1) -> ORPOLoss:
    """ORPO (Hong et al. 2024): SFT NLL on the chosen response + λ x odds-ratio preference term, no reference.

    Args:
        chosen_logps / rejected_logps: (B,) *average* log-probs per response position (< 0).
        lam: weight λ of the odds-ratio term (TRL's ``beta``).
    """
    c, r = chosen_logps.float(), rejected_logps.float()
    log_odds = (c - r) - (log1mexp(c) - log1mexp(r))  # (B,)
    ratio = F.logsigmoid(log_odds)
    nll = -c
    losses = nll - lam * ratio
    return ORPOLoss(losses, lam * c.detach(), lam * r.detach(), nll=nll.detach(), log_odds_ratio=ratio.detach())


def kto_kl(kl_logps: torch.Tensor, ref_kl_logps: torch.Tensor) -> torch.Tensor:
    """KTO's reference point ``z``: the mean log-ratio on mismatched (prompt, completion) pairs, clamped at 0,
    without gradient. (Across processes, average the unclamped means first, then clamp.)

    Args:
        kl_logps / ref_kl_logps: (B,) summed log-probs of the mismatched pairs.
    """
    return (kl_logps - ref_kl_logps).mean().detach().clamp(min=0)


def kto_loss(logps: torch.Tensor, ref_logps: torch.Tensor, desirable: torch.Tensor, kl: torch.Tensor | float,
             beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> KTOLoss:
    """KTO (Ethayarajh et al. 2024) on unpaired completions labelled desirable / undesirable.

    Args:
        logps / ref_logps: (B,) summed log-probs of the completions under the policy and the reference.
        desirable: (B,) bool labels.
        kl: the reference point ``z`` (:func:`kto_kl`), a scalar.
        beta: β; desirable_weight / undesirable_weight: λ_D, λ_U (balance unequal class counts).
    """
    ratio = logps - ref_logps  # (B,)
    kl = torch.as_tensor(kl, dtype=ratio.dtype, device=ratio.device)
    desirable = desirable.bool()
    good = desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio)))
    losses = torch.where(desirable, good, bad)
    return KTOLoss(losses, beta * ratio.detach(), desirable, kl.detach())

"""Preference losses on fixed log-prob numbers, worked by hand (math module, no torch in the expectations)."""

from __future__ import annotations

import math

import pytest
import torch

from omni.align.losses import dpo_loss, ipo_loss, kto_kl, kto_loss, log1mexp, orpo_loss, simpo_loss
from omni.align.metrics import preference_sums

# two pairs: policy / reference summed log-probs
PC, PR = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -18.0])
RC, RR = torch.tensor([-11.0, -19.0]), torch.tensor([-11.0, -19.0])


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_dpo_by_hand():
    # pair 0: h = (-10 + 11) - (-12 + 11) = 2; pair 1: h = (-20 + 19) - (-18 + 19) = -2
    out = dpo_loss(PC, PR, RC, RR, beta=0.5)
    assert out.losses.tolist() == pytest.approx([-logsig(1.0), -logsig(-1.0)], abs=1e-6)  # 0.3133, 1.3133
    assert out.losses.tolist() == pytest.approx([0.31326169, 1.31326169], abs=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([0.5, -0.5])
    assert out.rejected_rewards.tolist() == pytest.approx([-0.5, 0.5])
    assert out.accuracies.tolist() == [1.0, 0.0]
    assert out.margins.tolist() == pytest.approx([1.0, -1.0])


def test_dpo_label_smoothing_by_hand():
    out = dpo_loss(PC[:1], PR[:1], RC[:1], RR[:1], beta=0.5, label_smoothing=0.1)
    assert float(out.losses[0]) == pytest.approx(-0.9 * logsig(1.0) - 0.1 * logsig(-1.0), abs=1e-6)  # 0.41326


def test_dpo_gradient_by_hand():
    pc = PC.clone().requires_grad_(True)
    dpo_loss(pc, PR, RC, RR, beta=0.5).losses.sum().backward()
    # d/dpc -log σ(β h) = -β (1 - σ(β h)); pair 0: -0.5 (1 - σ(1)), pair 1: -0.5 (1 - σ(-1))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert pc.grad.tolist() == pytest.approx([-0.5 * (1 - sig(1)), -0.5 * (1 - sig(-1))], abs=1e-6)


def test_ipo_by_hand():
    # pair 0: chosen ratio 1 over 4 tokens, rejected ratio -1 over 2 -> gap 0.25 + 0.5 = 0.75; target 1/(2*0.5) = 1
    out = ipo_loss(PC, PR, RC, RR, torch.tensor([4, 1]), torch.tensor([2, 1]), beta=0.5)
    assert out.losses.tolist() == pytest.approx([(0.75 - 1) ** 2, (-1 - 1 - 1) ** 2])  # 0.0625, 9
    assert out.chosen_rewards.tolist() == pytest.approx([0.5, -0.5])  # β x unnormalised ratio, as TRL logs


def test_simpo_by_hand():
    ac, ar = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    out = simpo_loss(ac, ar, beta=2.0, gamma=0.5)
    # pair 0: 2 (-1 + 1.5) - 0.5 = 0.5; pair 1: 2 (-2 + 1) - 0.5 = -2.5
    assert out.losses.tolist() == pytest.approx([-logsig(0.5), -logsig(-2.5)], abs=1e-6)  # 0.4741, 2.5789
    assert out.chosen_rewards.tolist() == pytest.approx([-2.0, -4.0])
    assert out.rejected_rewards.tolist() == pytest.approx([-3.0, -2.0])


def test_orpo_by_hand():
    ac, ar = torch.tensor([-0.5]), torch.tensor([-1.0])
    out = orpo_loss(ac, ar, lam=0.1)
    log_odds = (-0.5 + 1.0) - (math.log(1 - math.exp(-0.5)) - math.log(1 - math.exp(-1.0)))  # 0.5 + 0.4587 = 0.9587
    assert float(out.losses[0]) == pytest.approx(0.5 - 0.1 * logsig(log_odds), abs=1e-6)  # 0.5 + 0.0320
    assert float(out.nll[0]) == pytest.approx(0.5)
    assert float(out.log_odds_ratio[0]) == pytest.approx(logsig(log_odds), abs=1e-6)
    assert float(out.chosen_rewards[0]) == pytest.approx(-0.05)


def test_log1mexp_is_stable_on_both_ends():
    x = torch.tensor([-1e-8, -0.1, -0.7, -5.0, -50.0], dtype=torch.float64)
    want = [math.log(-math.expm1(v)) for v in x.tolist()]
    assert log1mexp(x).tolist() == pytest.approx(want, rel=1e-9)
    assert torch.isfinite(log1mexp(torch.tensor([-1e-6, -80.0]))).all()


def test_kto_by_hand():
    logps, ref = torch.tensor([-10.0, -20.0, -5.0]), torch.tensor([-11.0, -19.0, -5.0])  # ratios 1, -1, 0
    desirable = torch.tensor([True, False, True])
    z = kto_kl(torch.tensor([-3.0, -4.0]), torch.tensor([-3.5, -4.1]))  # mean(0.5, 0.1) = 0.3
    assert float(z) == pytest.approx(0.3)
    assert float(kto_kl(torch.tensor([-3.0]), torch.tensor([-2.0]))) == 0.0  # clamped at 0
    out = kto_loss(logps, ref, desirable, z, beta=0.5, desirable_weight=1.0, undesirable_weight=2.0)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    want = [1 - sig(0.5 * (1 - 0.3)), 2 * (1 - sig(0.5 * (0.3 + 1))), 1 - sig(0.5 * (0 - 0.3))]
    assert out.losses.tolist() == pytest.approx(want, abs=1e-6)
    assert out.rewards.tolist() == pytest.approx([0.5, -0.5, 0.0])


def test_metric_sums_use_trl_names():
    out = dpo_loss(PC, PR, RC, RR, beta=0.5)
    sums = preference_sums(out, PC, PR)
    assert set(sums) == {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                         "logps/chosen", "logps/rejected"}
    assert sums["rewards/accuracies"] == 1.0 and sums["rewards/margins"] == pytest.approx(0.0)
    assert sums["logps/chosen"] == -30.0 and sums["logps/rejected"] == -30.0


def test_sft_weight_adds_the_chosen_mean_nll():
    from omni.align.config import PreferenceLossConfig
    from omni.align.logps import ResponseLogProbs
    from omni.align.task import preference_objective

    lp = ResponseLogProbs(sum=torch.cat([PC, PR]), text=torch.cat([PC, PR]), audio=torch.zeros(4),
                          num_tokens=torch.tensor([5, 4, 6, 3]), num_frames=torch.zeros(4, dtype=torch.long))
    ref = torch.cat([RC, RR])
    plain = preference_objective(PreferenceLossConfig(beta=0.5), lp, ref)
    rpo = preference_objective(PreferenceLossConfig(beta=0.5, sft_weight=2.0), lp, ref)
    # chosen mean NLL: 10 / 5 = 2 and 20 / 4 = 5
    assert (rpo.loss.losses - plain.loss.losses).tolist() == pytest.approx([4.0, 10.0])
    assert rpo.sums["nll_loss"] == pytest.approx(7.0)

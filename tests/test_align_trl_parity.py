"""Parity with TRL 1.16 on a tiny text-only Qwen2 and the same batch: DPO (sigmoid) and IPO against
``DPOTrainer.compute_loss``, SimPO against ``CPOTrainer.get_batch_loss_metrics`` (``loss_type='simpo'``,
``cpo_alpha=0``). Compared: the loss, the gradient of every policy parameter, and the TRL metrics
(rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected),
all within 1e-5. Offline: TRL gets an explicit ``ref_model`` and the model's own locally trained tokenizer.

Our side runs the production path: the Qwen2 is the backbone of an :class:`OmniModel`, the pairs are
:class:`OmniExample` rows built from TRL's own token ids, and :class:`PreferenceTask.compute_loss` scores
them with a :class:`FrozenReference`.
"""

from __future__ import annotations

import copy

import pytest
import torch

from omni.align.config import PreferenceLossConfig
from omni.align.data import PreferenceBatch
from omni.align.reference import FrozenReference
from omni.align.task import PreferenceTask
from omni.model.batch import IGNORE, OmniExample, collate
from omni.model.tiny import tiny_model
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)

PAIRS = [
    ("What color is the sky?", " The sky is blue.", " The sky is green, I think."),
    ("What is two plus three?", " Two plus three is five.", " Seven."),
    ("Turn on the kitchen lights.", " Turning on the kitchen lights.", " No."),
]
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected")


@pytest.fixture(scope="module")
def omni():
    model = tiny_model("qwen2", seed=3, vision=False)
    with torch.no_grad():  # a non-trivial policy: move it away from the reference
        for p in model.backbone.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model


def _dataset():
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [p for p, _, _ in PAIRS], "chosen": [c for _, c, _ in PAIRS],
                              "rejected": [r for _, _, r in PAIRS]})


def _example(ids: list[int], labels: list[int]) -> OmniExample:
    return OmniExample(torch.tensor(ids), torch.tensor(labels), torch.zeros(0, 8, dtype=torch.long),
                       torch.zeros(0, dtype=torch.bool))


def _ours(omni, chosen: list[OmniExample], rejected: list[OmniExample], cfg: PreferenceLossConfig):
    """(loss, {param name: grad}, metrics) of our task on the pairs, as the shared loop would normalise them."""
    policy = copy.deepcopy(omni).train()
    reference = None if cfg.type == "simpo" else FrozenReference(omni)
    batch = PreferenceBatch(collate(chosen + rejected, omni.token_ids.pad), [str(i) for i in range(len(chosen))])
    out = PreferenceTask(cfg, reference).compute_loss(policy, batch, "main")
    b = len(chosen)
    loss = out.loss / b  # the loop divides the summed loss by the pairs of the step
    loss.backward()
    grads = {n: p.grad for n, p in policy.backbone.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, {k: out.sums[k] / b for k in METRICS}


def _compare(loss, grads, metrics, trl_loss, trl_model, trl_metrics):
    assert loss == pytest.approx(trl_loss, abs=1e-5)
    trl_grads = {n: p.grad for n, p in trl_model.named_parameters() if p.grad is not None}
    assert set(trl_grads) == set(grads) and len(grads) > 10
    for n, g in trl_grads.items():
        torch.testing.assert_close(grads[n], g, atol=1e-5, rtol=1e-4, msg=n)
    assert any(float(g.abs().max()) > 1e-4 for g in grads.values())  # the comparison is not vacuous
    for k in METRICS:
        assert metrics[k] == pytest.approx(trl_metrics[k], abs=1e-5), k


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_and_ipo_match_trl_dpo_trainer(omni, tmp_path, loss_type):
    from trl import DPOConfig, DPOTrainer

    tok = omni.tokenizer
    policy, ref = copy.deepcopy(omni.backbone).train(), copy.deepcopy(omni.backbone).eval()
    args = DPOConfig(output_dir=str(tmp_path), beta=0.1, loss_type=[loss_type], per_device_train_batch_size=3,
                     report_to="none", use_cpu=True, bf16=False, max_length=None, dataloader_num_workers=0)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=_dataset(), processing_class=tok)
    rows = [trainer.train_dataset[i] for i in range(len(PAIRS))]
    inputs = trainer.data_collator(rows)
    trainer.model.train()
    trl_loss = trainer.compute_loss(trainer.model, inputs)
    trl_loss.backward()
    trl_metrics = {k: trainer._metrics["train"][k][-1] for k in METRICS}

    def ex(r, key):
        p, c = r["prompt_ids"], r[f"{key}_ids"]
        return _example(p + c, [IGNORE] * len(p) + c)

    cfg = PreferenceLossConfig(type="dpo" if loss_type == "sigmoid" else "ipo", beta=0.1)
    loss, grads, metrics = _ours(omni, [ex(r, "chosen") for r in rows], [ex(r, "rejected") for r in rows], cfg)
    _compare(loss, grads, metrics, float(trl_loss.detach()), trainer.model, trl_metrics)


def test_simpo_matches_trl_cpo_trainer(omni, tmp_path):
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    tok = omni.tokenizer
    policy = copy.deepcopy(omni.backbone).train()
    args = CPOConfig(output_dir=str(tmp_path), loss_type="simpo", beta=2.0, simpo_gamma=0.5, cpo_alpha=0.0,
                     per_device_train_batch_size=3, report_to="none", use_cpu=True, bf16=False, max_length=256,
                     dataloader_num_workers=0)
    trainer = CPOTrainer(model=policy, args=args, train_dataset=_dataset(), processing_class=tok)
    rows = [trainer.train_dataset[i] for i in range(len(PAIRS))]
    batch = trainer.data_collator(rows)
    trainer.model.train()
    trl_loss, trl_metrics = trainer.get_batch_loss_metrics(trainer.model, batch)
    trl_loss.backward()

    def ex(r, key):
        ids, labels = r[f"{key}_input_ids"], r[f"{key}_labels"]
        return _example(ids, [IGNORE if x == -100 else x for x in labels])

    cfg = PreferenceLossConfig(type="simpo", beta=2.0, gamma=0.5)
    loss, grads, metrics = _ours(omni, [ex(r, "chosen") for r in rows], [ex(r, "rejected") for r in rows], cfg)
    _compare(loss, grads, metrics, float(trl_loss.detach()), trainer.model, trl_metrics)

"""Additions to the shared Trainer: per-key denominators, throughput, custom data plans, exports on completion,
keeping the process group across trainers, mixed precision 'auto'."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate.state import AcceleratorState, PartialState

from omni.training.trainer import StepOutput, keep_process_group, resolve_mixed_precision
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.toy_training import ToyTask, final_params, make_trainer


class RatioTask(ToyTask):
    """Logs the squared error of 1-unit and 3-unit examples separately, each over its own unit count."""

    def __init__(self):
        super().__init__()
        self.seen: list[dict[str, float]] = []

    def compute_loss(self, model, batch, phase) -> StepOutput:
        out = super().compute_loss(model, batch, phase)
        err = ((model(batch["x"]) - batch["y"]) ** 2 * batch["mask"]).sum(-1).detach()  # (B,)
        units = batch["mask"].sum(-1)
        ones, threes = units == 1, units == 3
        sums = {"err/one": float(err[ones].sum()), "err/three": float(err[threes].sum()), "err/never": 0.0}
        dens = {"err/one": float(units[ones].sum()), "err/three": float(units[threes].sum()), "err/never": 0.0}
        self.seen.append({**sums, **{f"n/{k}": v for k, v in dens.items()}})
        return StepOutput(loss=out.loss, sums=sums, denominators=dens, throughput={"items": float(len(err))})


def test_denominators_and_throughput(tmp_path):
    task = RatioTask()
    trainer = make_trainer(tmp_path / "run", max_steps=2, grad_accum=2, dropout=0.0, task=task)
    trainer.cfg.log_every = 1
    res = trainer.fit()
    last = task.seen[-2:]  # the two micro-batches of step 2
    want = sum(s["err/one"] for s in last) / sum(s["n/err/one"] for s in last)
    assert res.last_metrics["err/one"] == pytest.approx(want, rel=1e-5)
    want3 = sum(s["err/three"] for s in last) / sum(s["n/err/three"] for s in last)
    assert res.last_metrics["err/three"] == pytest.approx(want3, rel=1e-5)
    assert "err/never" not in res.last_metrics  # a zero count leaves the key out
    assert res.last_metrics["items_per_s"] > 0


class ListPlan:
    """A plan that reads given data-set indices at each step (one process)."""

    def __init__(self, steps):
        self.steps = steps

    def micro_batches(self, start, stop, rank, world, accum):
        return [self.steps[s] for s in range(start, stop)]

    def epoch_of(self, step):
        return step / 10

    def position(self, step):
        return {"next": self.steps[step] if step < len(self.steps) else None}


def test_a_custom_plan_decides_what_each_step_reads(tmp_path):
    steps = [[0, 1, 2, 3], [4, 5, 6, 7], [0, 0, 0, 0]]
    seen = []

    class Spy(ToyTask):
        def compute_loss(self, model, batch, phase):
            seen.append(batch["x"][:, 0].tolist())
            return super().compute_loss(model, batch, phase)

    trainer = make_trainer(tmp_path / "run", max_steps=3, batch_size=4, task=Spy(), save_every=2)
    trainer.plan = ListPlan(steps)
    trainer.fit()
    data = trainer.dataset
    assert seen == [[float(data.x[i, 0]) for i in s] for s in steps]
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-00000002" / "trainer_state.json").read_text())
    assert state["data_position"] == {"next": [0, 0, 0, 0]} and state["epoch"] == 0.2


def test_on_complete_exports_and_a_finished_run_restores_its_final_weights(tmp_path):
    calls = []

    def export(ctx):
        calls.append((ctx.step, {k: v.clone() for k, v in ctx.accelerator.unwrap_model(ctx.model).state_dict().items()}))

    trainer = make_trainer(tmp_path / "run", max_steps=4, save_every=2, dropout=0.0)
    trainer.fit(on_complete=export)
    final = final_params(trainer)
    assert len(calls) == 1 and calls[0][0] == 4
    assert all(torch.equal(calls[0][1][k], v) for k, v in final.items())
    # rerun on the finished run: nothing trains; with on_complete the final weights are restored first
    AcceleratorState._reset_state(reset_partial_state=True)
    again = make_trainer(tmp_path / "run", max_steps=4, save_every=2, dropout=0.0, seed=7)  # other init
    assert not all(torch.equal(final_params(again)[k], v) for k, v in final.items())
    res = again.fit(on_complete=export)
    assert res.complete and len(calls) == 2 and calls[1][0] == 4
    assert all(torch.equal(calls[1][1][k], v) for k, v in final.items())
    AcceleratorState._reset_state(reset_partial_state=True)
    untouched = make_trainer(tmp_path / "run", max_steps=4, save_every=2, dropout=0.0, seed=7)
    before = final_params(untouched)
    untouched.fit()  # no export asked: no restore either
    assert all(torch.equal(final_params(untouched)[k], v) for k, v in before.items())


def test_keep_process_group_leaves_it_for_the_next_trainer(tmp_path, monkeypatch):
    destroyed = []
    monkeypatch.setattr(PartialState, "destroy_process_group", lambda self, group=None: destroyed.append(1))
    with keep_process_group():
        make_trainer(tmp_path / "a", max_steps=1).fit()
    assert destroyed == []
    AcceleratorState._reset_state(reset_partial_state=True)
    make_trainer(tmp_path / "b", max_steps=1).fit()
    assert destroyed == [1]


def test_mixed_precision_auto_is_none_on_cpu():
    assert resolve_mixed_precision("auto", cpu=True) == "no"
    assert resolve_mixed_precision("fp16", cpu=True) == "fp16"
    if not torch.cuda.is_available():
        assert resolve_mixed_precision("auto", cpu=False) == "no"

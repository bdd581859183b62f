"""Replay in preference alignment: stage rows zipped with the pairs step by step, their mean NLL added per pair."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate.state import AcceleratorState

from omni.align.config import DPOConfig
from omni.align.replay import JointPlan, replay_loss
from omni.align.train import train_preference
from omni.config import ConfigError, load_config
from omni.model import OmniModel
from omni.training.sampler import GlobalBatchSampler, IndexPlan
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.pref_data import dpo_overrides, write_preference_data
from tests.helpers.stage_data import stage_data
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)


def _plan() -> JointPlan:
    return JointPlan(IndexPlan(GlobalBatchSampler(10, 4, seed=1)), IndexPlan(GlobalBatchSampler(7, 2, seed=2)))


def test_joint_plan_zips_the_two_plans_and_resumes_where_it_stopped():
    plan = _plan()
    pairs = list(IndexPlan(GlobalBatchSampler(10, 4, seed=1)).micro_batches(0, 5, 0, 1, 2))
    rows = list(IndexPlan(GlobalBatchSampler(7, 2, seed=2)).micro_batches(0, 5, 0, 1, 2))
    joint = list(plan.micro_batches(0, 5, 0, 1, 2))
    assert len(joint) == 10  # 5 steps x 2 micro-batches
    assert joint == [[("pairs", k) for k in p] + [("replay", k) for k in r] for p, r in zip(pairs, rows)]
    assert list(plan.micro_batches(3, 5, 0, 1, 2)) == joint[6:]  # a resumed run reads the same
    assert plan.position(3)["replay"] == IndexPlan(GlobalBatchSampler(7, 2, seed=2)).position(3)
    assert plan.epoch_of(3) == IndexPlan(GlobalBatchSampler(10, 4, seed=1)).epoch_of(3)


def test_replay_term_is_weight_times_pairs_times_mean_nll():
    total = torch.tensor(6.0, requires_grad=True)
    term = replay_loss(total, units=3, num_pairs=4, weight=0.5)
    assert float(term.detach()) == pytest.approx(0.5 * 4 * 6.0 / 3)
    term.backward()
    assert float(total.grad) == pytest.approx(0.5 * 4 / 3)
    assert float(replay_loss(total.detach(), units=0, num_pairs=4, weight=0.5)) == 0.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    data = stage_data(tmp_path_factory)
    pairs = write_preference_data(tmp_path_factory.mktemp("replay_pairs"), speech=False)
    return data, pairs


def _cfg(setup, out, replay: dict | None, *extra):
    data, pairs = setup
    values = ["data.speech_in=false", "data.speech_out=false", "optim.lr=3e-3", "loop.max_steps=6", *extra]
    if replay is not None:
        values.append(f"replay={json.dumps(replay)}")
    return load_config("configs/stages/dpo.yaml", DPOConfig,
                       overrides=[*dpo_overrides(data / "model", pairs, out), *values])


def _asr(data) -> dict:
    return {"batch_size": 2, "weight": 1.0, "data": {
        "sources": [{"name": "asr", "manifests": [str(data / "asr_train.codes.jsonl")], "task": "asr", "ratio": 1.0}],
        "max_seq_len": 256, "shards": 1}}


def test_replay_trains_what_the_pairs_do_not_show(setup, tmp_path):
    """Text pairs give the audio embedding no gradient: it moves only when ASR rows are replayed, and the
    replayed rows' loss is logged every step and falls at a high rate."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data, _ = setup
    start = OmniModel.from_pretrained(data / "model").state_dict()
    plain = train_preference(_cfg(setup, tmp_path / "plain", None)).model.state_dict()
    AcceleratorState._reset_state(reset_partial_state=True)
    run = train_preference(_cfg(setup, tmp_path / "replay", _asr(data)))
    assert run.result.complete and (tmp_path / "replay" / "final" / "omni_config.json").is_file()
    replayed = run.model.state_dict()
    embed = [k for k in start if k.startswith("audio_embed.")]
    assert embed and all(torch.equal(plain[k], start[k]) for k in embed)
    assert any(not torch.equal(replayed[k], start[k]) for k in embed)
    ea = EventAccumulator(str(next((tmp_path / "replay" / "tensorboard").iterdir())))
    ea.Reload()
    loss = [e.value for e in ea.Scalars("replay/loss")]
    assert len(loss) == 6 and loss[-1] < loss[0], loss
    assert "rewards/accuracies" in ea.Tags()["scalars"]


@pytest.mark.parametrize("bad, field", [({"weight": 0.0}, "weight"), ({"batch_size": 0}, "batch_size")])
def test_bad_replay_settings_are_named(setup, tmp_path, bad, field):
    data, _ = setup
    with pytest.raises(ConfigError, match=field):
        _cfg(setup, tmp_path, {**_asr(data), **bad})

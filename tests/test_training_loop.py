"""Training core: data order, exact loss normalisation, resume after a crash or SIGTERM, 2 processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

from omni.training.sampler import GlobalBatchSampler, StepMicroBatches
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.toy_training import ToyTask, final_params, make_trainer

ROOT = Path(__file__).resolve().parent.parent


def test_global_batches_cover_each_epoch_once_and_are_reproducible():
    s = GlobalBatchSampler(10, 4, seed=3)
    first_epoch = s.step_indices(0) + s.step_indices(1) + s.step_indices(2)[:2]
    assert sorted(first_epoch) == list(range(10))
    assert GlobalBatchSampler(10, 4, seed=3).step_indices(7) == s.step_indices(7)
    assert s.step_indices(0) != GlobalBatchSampler(10, 4, seed=4).step_indices(0)


def test_ranks_and_micro_batches_partition_the_global_batch():
    s = GlobalBatchSampler(50, 8, seed=0)
    parts = [list(StepMicroBatches(s, 2, 4, rank, 2, 2)) for rank in range(2)]
    for step_i, step in enumerate((2, 3)):
        got = sorted(i for rank in range(2) for mb in parts[rank][2 * step_i:2 * step_i + 2] for i in mb)
        assert got == sorted(s.step_indices(step))
    assert all(len(mb) == 2 for p in parts for mb in p)
    with pytest.raises(ValueError, match="split evenly"):
        StepMicroBatches(s, 0, 1, 0, 3, 1)


def test_loss_falls_and_accumulation_matches_one_big_batch(tmp_path):
    a = make_trainer(tmp_path / "a", grad_accum=1, dropout=0.0)
    res = a.fit()
    assert res.complete and res.step == 12
    first = make_trainer(tmp_path / "probe", max_steps=1, dropout=0.0).fit().last_metrics["loss"]
    assert res.last_metrics["loss"] < 0.5 * first
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "a" / "tensorboard").glob("events*"))))
    events.Reload()
    logged = events.Scalars("loss")
    assert [e.step for e in logged] == [2, 4, 6, 8, 10, 12] and logged[-1].value == pytest.approx(res.last_metrics["loss"])
    assert "lr/main/0" in events.Tags()["scalars"] and "grad_norm/main" in events.Tags()["scalars"]
    b = make_trainer(tmp_path / "b", grad_accum=3, dropout=0.0)
    b.fit()
    for k, v in final_params(a).items():
        torch.testing.assert_close(final_params(b)[k], v, atol=1e-6, rtol=1e-6)


def test_crash_then_rerun_equals_uninterrupted_run(tmp_path):
    ref = make_trainer(tmp_path / "ref")
    ref.fit()
    expected = final_params(ref)

    def crash(calls):
        if calls == 7:  # during step 7, after the checkpoint of step 4
            raise KeyboardInterrupt

    AcceleratorState._reset_state(reset_partial_state=True)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path / "run", task=ToyTask(on_call=crash)).fit()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-00000004"]
    AcceleratorState._reset_state(reset_partial_state=True)
    again = make_trainer(tmp_path / "run")  # same command: resumes at step 4, dropout RNG restored
    res = again.fit()
    assert res.complete and res.step == 12
    for k, v in expected.items():
        torch.testing.assert_close(final_params(again)[k], v, atol=1e-6, rtol=1e-6)
    # kept checkpoints rotate; a finished run is not trained again
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-00000008", "step-00000012"]
    AcceleratorState._reset_state(reset_partial_state=True)
    task = ToyTask()
    assert make_trainer(tmp_path / "run", task=task).fit().complete and task.calls == 0


def test_sigterm_checkpoints_and_stops_cleanly(tmp_path):
    ref = make_trainer(tmp_path / "ref")
    ref.fit()

    def term(calls):
        if calls == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    AcceleratorState._reset_state(reset_partial_state=True)
    res = make_trainer(tmp_path / "run", task=ToyTask(on_call=term)).fit()
    assert res.interrupted and not res.complete and res.step == 5
    AcceleratorState._reset_state(reset_partial_state=True)
    again = make_trainer(tmp_path / "run")
    assert again.fit().complete
    for k, v in final_params(ref).items():
        torch.testing.assert_close(final_params(again)[k], v, atol=1e-6, rtol=1e-6)


def test_two_processes_match_one_process(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for n, out in ((1, tmp_path / "one"), (2, tmp_path / "two")):
        cmd = [str(torchrun), "--nproc_per_node", str(n), "--standalone",
               str(ROOT / "tests" / "helpers" / "toy_training.py"), str(out), "8", "2"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    one = load_file(tmp_path / "one" / "final-rank0.safetensors")
    two = [load_file(tmp_path / "two" / f"final-rank{r}.safetensors") for r in range(2)]
    for k, v in one.items():
        assert torch.equal(two[0][k], two[1][k])  # ranks hold identical weights
        torch.testing.assert_close(two[0][k], v, atol=1e-5, rtol=1e-5)

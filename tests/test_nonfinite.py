"""A non-finite gradient never reaches the weights, and a run never saves non-finite weights (issue 19, point 2)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

from omni.training.nonfinite import NonFiniteError, first_nonfinite
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.toy_training import ToyTask, final_params, make_trainer


class PoisonedTask(ToyTask):
    """The toy regression, with a NaN in the inputs of the listed (1-based) compute_loss calls."""

    def __init__(self, poisoned: set[int]):
        super().__init__()
        self.poisoned = poisoned

    def compute_loss(self, model, batch, phase):
        if self.calls + 1 in self.poisoned:
            batch = {**batch, "x": batch["x"].clone()}
            batch["x"][0, 0] = math.nan
        return super().compute_loss(model, batch, phase)


def _weights_finite(trainer) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in final_params(trainer).values())


def test_first_nonfinite_names_the_first_bad_tensor():
    assert first_nonfinite([("a", torch.ones(2)), ("b", None), ("c", torch.tensor([1.0, math.inf])),
                            ("d", torch.tensor([math.nan]))]) == "c"
    assert first_nonfinite([("a", torch.ones(2)), ("b", None)]) is None


def test_a_nan_step_is_skipped_not_applied_and_counted(tmp_path):
    """Step 3's gradient is NaN. Before the guard the optimizer applied it (every weight NaN, the loss check
    fired a step later); now the weights after step 3 equal those after step 2, and the run goes on."""
    ref = make_trainer(tmp_path / "ref", max_steps=2, dropout=0.0)
    ref.fit()
    AcceleratorState._reset_state(reset_partial_state=True)
    run = make_trainer(tmp_path / "run", max_steps=3, dropout=0.0, task=PoisonedTask({3}))
    res = run.fit()
    assert res.complete and run.nonfinite_skips == 1
    for k, v in final_params(ref).items():
        torch.testing.assert_close(final_params(run)[k], v, atol=0, rtol=0)  # step 3 changed nothing
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["nonfinite_skips"] == 1 and state["complete"]
    AcceleratorState._reset_state(reset_partial_state=True)
    longer = make_trainer(tmp_path / "longer", max_steps=12, dropout=0.0, task=PoisonedTask({3, 8}))
    res = longer.fit()
    assert res.complete and longer.nonfinite_skips == 2 and _weights_finite(longer)
    assert res.last_metrics["nonfinite_skips"] == 2 and math.isfinite(res.last_metrics["loss"])


def test_the_skip_count_survives_a_resume(tmp_path):
    task = PoisonedTask({2})

    def crash(calls):
        if calls == 7:  # during step 7, after the checkpoint of step 4
            raise KeyboardInterrupt

    task.on_call = crash
    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path / "run", max_steps=12, dropout=0.0, task=task).fit()
    AcceleratorState._reset_state(reset_partial_state=True)
    again = make_trainer(tmp_path / "run", max_steps=12, dropout=0.0, task=PoisonedTask({1}))  # resumes at step 4
    again.fit()
    assert again.nonfinite_skips == 2 and _weights_finite(again)


def test_stop_mode_names_the_first_nonfinite_parameter_and_applies_nothing(tmp_path):
    run = make_trainer(tmp_path / "run", max_steps=1, dropout=0.0, task=PoisonedTask({1}), nonfinite="stop")
    before = final_params(run)
    with pytest.raises(NonFiniteError, match=r"step 1 \(main\): the gradient of net\.0\.weight is non-finite"):
        run.fit()
    for k, v in before.items():
        assert torch.equal(final_params(run)[k], v)
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())


def test_consecutive_skips_stop_the_run(tmp_path):
    run = make_trainer(tmp_path / "run", max_steps=12, dropout=0.0, task=PoisonedTask({5, 6, 7}),
                       max_nonfinite_skips=3)
    with pytest.raises(NonFiniteError, match="3 steps in a row"):
        run.fit()
    assert _weights_finite(run)
    # the checkpoint of step 4 (before the bad steps) is on disk, finite
    ckpt = load_file(tmp_path / "run" / "checkpoints" / "step-00000004" / "model.safetensors")
    assert all(bool(torch.isfinite(v).all()) for v in ckpt.values())


def test_non_finite_weights_are_never_saved(tmp_path):
    """Weights that became non-finite some other way (an optimizer state overflow, a bad load) stop the save."""
    run = make_trainer(tmp_path / "run", max_steps=4, save_every=4, dropout=0.0)

    def poison(calls):
        if calls == 4:  # during the last step, before its save
            with torch.no_grad():
                run.acc.unwrap_model(run.model).net[3].bias.fill_(math.inf)

    run.task.on_call = poison
    with pytest.raises(NonFiniteError, match=r"not saving step 4: .*parameter net\.3\.bias"):
        run.fit()
    assert not (tmp_path / "run" / "trainer_state.json").exists()


def test_the_cli_prints_one_line_and_exits_1(tmp_path, capsys):
    import typer

    from omni.cli.common import user_errors

    @user_errors
    def command() -> None:
        make_trainer(tmp_path / "run", max_steps=4, dropout=0.0, task=PoisonedTask({1, 2}), max_nonfinite_skips=2).fit()

    with pytest.raises(typer.Exit) as e:
        command()
    assert e.value.exit_code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "2 steps in a row had a non-finite gradient or loss" in err[-1]
    assert "Traceback" not in "\n".join(err)

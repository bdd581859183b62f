"""``omni train dpo`` end to end on tiny data: every loss trains, margins grow, resume, LoRA export, CLI errors."""

from __future__ import annotations

import pytest
import torch
from accelerate.state import AcceleratorState
from typer.testing import CliRunner

from omni.align.config import DPOConfig
from omni.align.train import train_preference
from omni.cli.main import app
from omni.config import load_config
from omni.model import OmniModel
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.pref_data import dpo_overrides, tiny_aligned_model, write_preference_data
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("align_train")
    return write_preference_data(base / "data"), tiny_aligned_model(base / "model")


def _cfg(setup, out, *extra):
    manifest, model = setup
    return load_config("configs/stages/dpo.yaml", DPOConfig, overrides=[*dpo_overrides(model, manifest, out), *extra])


@pytest.mark.parametrize("extra", [
    ("loss.type=dpo",),
    ("loss.type=ipo", "loss.beta=0.5"),
    ("loss.type=simpo", "reference.mode=none", "loss.beta=2.0"),
    ("loss.type=orpo", "reference.mode=none", "loss.beta=1.0"),
    ("loss.type=kto",),
])
def test_each_loss_trains_on_speech_pairs(setup, tmp_path, extra):
    """12 steps at a high rate on 6 spoken pairs: the dev loss falls; paired losses rank at least 5 of the 6 dev pairs right and
    DPO / SimPO / ORPO margins grow (IPO pulls the gap to its finite target 1 / (2 beta) instead)."""
    run = train_preference(_cfg(setup, tmp_path, *extra, "optim.lr=3e-3", "loop.max_steps=12", "loop.eval_every=4"))
    assert run.result.complete and (tmp_path / "final" / "omni_config.json").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(next((tmp_path / "tensorboard").iterdir())))
    ea.Reload()
    series = {k: [e.value for e in ea.Scalars(k)] for k in ea.Tags()["scalars"] if k.startswith("eval/")}
    assert len(series["eval/loss"]) == 3 and series["eval/loss"][-1] < series["eval/loss"][0], series["eval/loss"]
    if "loss.type=kto" in extra:
        assert series["eval/rewards/chosen"][-1] > series["eval/rewards/rejected"][-1]
        return
    acc = series["eval/rewards/accuracies"]
    assert acc[-1] > 0.8 and acc[-1] >= acc[0], acc
    if "loss.type=ipo" not in extra:
        assert series["eval/rewards/margins"][-1] > series["eval/rewards/margins"][0], series["eval/rewards/margins"]


def test_lora_with_disabled_adapter_reference_trains_adapters_only_and_merges(setup, tmp_path):
    cfg = _cfg(setup, tmp_path, "lora={\"r\": 4}", "trainable=[\"*lora_*\"]", "reference.mode=adapters",
               "optim.lr=1e-2", "loop.max_steps=4")
    start = OmniModel.from_pretrained(cfg.init_from).state_dict()
    run = train_preference(cfg)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    final = OmniModel.from_pretrained(tmp_path / "final").state_dict()
    assert set(final) == set(start)  # merged back into a plain omni model
    changed = [k for k in start if not torch.equal(start[k], final[k])]
    assert changed and all(k.startswith("backbone.") and k.endswith(".weight") for k in changed)
    assert all(torch.equal(start[k], final[k]) for k in start if not k.startswith("backbone."))
    assert run.result.last_metrics["eval/rewards/margins"] > 0


def test_resume_equals_uninterrupted(setup, tmp_path, monkeypatch):
    """A run stopped after 2 of 4 steps (as by SIGTERM) and rerun = 4 steps straight; a complete run is not retrained."""
    from omni.training.trainer import Trainer

    common = ("optim.lr=1e-3", "loop.max_steps=4")
    straight = train_preference(_cfg(setup, tmp_path / "a", *common))
    original = Trainer._train_step

    def stop_after_two(self, micro, step=0):
        out = original(self, micro, step)
        self.calls = getattr(self, "calls", 0) + 1
        self._stop = self.calls >= 2  # what the SIGTERM handler sets
        return out

    monkeypatch.setattr(Trainer, "_train_step", stop_after_two)
    AcceleratorState._reset_state(reset_partial_state=True)
    first = train_preference(_cfg(setup, tmp_path / "b", *common))
    assert first.result.step == 2 and first.result.interrupted and first.final_dir is None
    monkeypatch.setattr(Trainer, "_train_step", original)
    AcceleratorState._reset_state(reset_partial_state=True)
    resumed = train_preference(_cfg(setup, tmp_path / "b", *common))
    assert resumed.result.step == 4 and resumed.final_dir is not None
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    start = OmniModel.from_pretrained(setup[1]).state_dict()
    assert any(not torch.equal(a[k], start[k]) for k in a)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5, msg=k)
    AcceleratorState._reset_state(reset_partial_state=True)
    again = train_preference(_cfg(setup, tmp_path / "b", *common))
    assert again.result.complete and again.result.step == 4


def test_cli_trains_and_reports_bad_config(setup, tmp_path):
    manifest, model = setup
    runner = CliRunner()
    res = runner.invoke(app, ["train", "dpo", "configs/stages/dpo.yaml", *dpo_overrides(model, manifest, tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "reward accuracy" in res.output and "final" in res.output
    res = runner.invoke(app, ["train", "dpo", "configs/stages/dpo.yaml",
                              *dpo_overrides(model, manifest, tmp_path / "s"), "loss.type=simpo"])
    assert res.exit_code != 0 and "reference.mode" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", "dpo", "configs/stages/dpo.yaml",
                              *dpo_overrides(tmp_path / "nope", manifest, tmp_path / "t")])
    assert res.exit_code != 0 and "init_from" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("mode", ["copy", "cached"])
def test_two_processes_match_one_process(setup, tmp_path, mode):
    """torchrun (gloo, 2 ranks) runs `omni train dpo` on the same global batches as one process: the aligned
    weights agree within 1e-5 (each rank takes its share of every batch; with reference.mode=cached each rank
    computes a share of the reference log-probs, gathered into one cache equal to the 1-process cache).
    optim.eps=1e-3: with AdamW's default 1e-8, a weight whose gradient is ~1e-8 (an lm_head row the batch hardly
    touches) moves by a large fraction of lr on summation-order noise alone, which would hide a real mismatch."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    manifest, model = setup
    root = Path(__file__).resolve().parent.parent
    omni = str(Path(sys.executable).parent / "omni")
    runs = {"one": [omni], "two": [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2",
                                   "--standalone", "--no-python", omni]}
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    for name, launch in runs.items():
        args = ["train", "dpo", str(root / "configs/stages/dpo.yaml"),
                *dpo_overrides(model, manifest, tmp_path / name, **{"loop.max_steps": 3, "optim.lr": 3e-3,
                                                                            "optim.eps": 1e-3}),
                f"reference.mode={mode}"]
        proc = subprocess.run([*launch, *args], env=env, capture_output=True, text=True, timeout=600, cwd=root)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    one, two = (load_file(str(next((tmp_path / n / "final").glob("*.safetensors")))) for n in runs)
    start = load_file(str(next(Path(model).glob("*.safetensors"))))
    assert one.keys() == two.keys()
    assert max((one[k] - two[k]).abs().max().item() for k in one) < 1e-5
    assert any(not torch.equal(one[k], start[k]) for k in one if k in start)  # the run trained
    if mode == "cached":
        from omni.align.reference import ReferenceCache

        c1, c2 = (ReferenceCache.load(tmp_path / n / "reference_logps.safetensors") for n in runs)
        ids = sorted(c1.index)
        assert ids == sorted(c2.index) and c1.fingerprint == c2.fingerprint  # rows are in gather order: compare by id
        assert torch.allclose(c1.lookup(ids), c2.lookup(ids), atol=1e-5)

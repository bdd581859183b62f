"""Reference models: cached log-probs (file round trip, fingerprints, reuse), LoRA adapters disabled, and
training with a cached reference = training with a frozen copy."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from accelerate.state import AcceleratorState

from omni.align.config import DPOConfig, LoraSettings
from omni.align.data import PreferenceCollate
from omni.align.reference import (
    AdapterReference,
    FrozenReference,
    ReferenceCache,
    data_fingerprint,
    model_fingerprint,
    precompute_reference,
)
from omni.align.train import apply_lora, build_data, train_preference
from omni.config import load_config
from omni.model import OmniModel
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.pref_data import dpo_overrides, tiny_aligned_model, write_preference_data
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("align_ref")
    return write_preference_data(base / "data"), tiny_aligned_model(base / "model")


def _cfg(setup, out, *extra):
    manifest, model = setup
    return load_config("configs/stages/dpo.yaml", DPOConfig, overrides=[*dpo_overrides(model, manifest, out), *extra])


def test_cache_round_trip_and_lookup_order(tmp_path):
    cache = ReferenceCache(["a", "b", "c"], torch.tensor([[-1.0, -2.0], [-3.0, -4.0], [-5.0, -6.0]]), "fp")
    cache.save(tmp_path / "ref.safetensors")
    back = ReferenceCache.load(tmp_path / "ref.safetensors")
    assert back.fingerprint == "fp"
    assert back.lookup(["c", "a"]).tolist() == [-5.0, -1.0, -6.0, -2.0]  # [chosen..., rejected...]
    with pytest.raises(KeyError, match="'z'"):
        back.lookup(["z"])
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="junk.safetensors"):
        ReferenceCache.load(tmp_path / "junk.safetensors")


def test_fingerprints_change_with_weights_and_data(setup, tmp_path):
    manifest, model_dir = setup
    model = OmniModel.from_pretrained(model_dir)
    fp = model_fingerprint(model)
    assert fp == model_fingerprint(copy.deepcopy(model))
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert model_fingerprint(model) != fp
    d1 = data_fingerprint([str(manifest)], {"speech_out": True})
    assert d1 != data_fingerprint([str(manifest)], {"speech_out": False})
    other = tmp_path / "m.jsonl"
    other.write_text(manifest.read_text().replace("blue", "azure"))
    assert d1 != data_fingerprint([str(other)], {"speech_out": True})


def test_precompute_equals_live_reference_and_is_reused(setup, tmp_path):
    cfg = _cfg(setup, tmp_path / "run")
    model = OmniModel.from_pretrained(cfg.init_from)
    train, _, collate = build_data(cfg, model)
    logs: list[str] = []
    cache = precompute_reference(model, [train], collate, tmp_path / "ref.safetensors", "fp1", 4, logs.append)
    assert "computed 6 pairs" in logs[-1]
    items = [train[i] for i in (4, 1, 2)]
    batch = PreferenceCollate(model.token_ids.pad, model.token_ids.audio)(items)
    live = FrozenReference(model).logps(None, batch)
    torch.testing.assert_close(cache.lookup(batch.ids), live, atol=1e-5, rtol=0)
    precompute_reference(model, [train], collate, tmp_path / "ref.safetensors", "fp1", 4, logs.append)
    assert "read 6 pairs" in logs[-1]
    precompute_reference(model, [train], collate, tmp_path / "ref.safetensors", "fp2", 4, logs.append)
    assert "recomputing" in logs[-2] and "computed 6 pairs" in logs[-1]


def test_disabled_adapters_give_the_base_model(setup, tmp_path):
    cfg = _cfg(setup, tmp_path / "run")
    model = OmniModel.from_pretrained(cfg.init_from).eval()
    train, _, collate = build_data(cfg, model)
    batch = collate([train[0], train[1]])
    base = FrozenReference(model).logps(None, batch)
    apply_lora(model, LoraSettings(r=4))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)  # trained adapters: the policy moves away from the base
    policy = FrozenReference(model).logps(None, batch)
    assert (policy - base).abs().max() > 1e-2
    torch.testing.assert_close(AdapterReference().logps(model, batch), base, atol=1e-5, rtol=0)


def test_cached_reference_trains_exactly_like_a_frozen_copy(setup, tmp_path):
    runs = {}
    for mode in ("copy", "cached"):
        AcceleratorState._reset_state(reset_partial_state=True)
        run = train_preference(_cfg(setup, tmp_path / mode, f"reference.mode={mode}", "optim.lr=1e-3"))
        runs[mode] = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        state = json.loads((tmp_path / mode / "trainer_state.json").read_text())
        runs[mode + "_metrics"] = state["metrics"]
    assert (tmp_path / "cached" / "reference_logps.safetensors").is_file()
    for k, v in runs["copy"].items():
        torch.testing.assert_close(runs["cached"][k], v, atol=1e-5, rtol=1e-4, msg=k)
    for k in ("loss", "rewards/margins", "eval/rewards/accuracies"):
        assert runs["cached_metrics"][k] == pytest.approx(runs["copy_metrics"][k], abs=1e-5)

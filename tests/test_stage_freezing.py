"""Freezing and per-group learning rates: one function, loud failures, and every stage YAML leaves frozen weights untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omni.config import load_config
from omni.model.params import parameter_groups
from omni.model.tiny import tiny_model
from omni.training.config import OptimConfig
from omni.training.stage import (
    ParamGroupConfig,
    StageConfig,
    apply_trainable,
    load_stage_model,
    select,
    train_stage,
)
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.stage_data import params, stage_data, stage_overrides
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parent.parent
STAGE_YAMLS = sorted(p for p in (ROOT / "configs" / "stages").rglob("*.yaml")
                     if "kind: stage" in p.read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return stage_data(tmp_path_factory)


def group(name, match, lr):
    return ParamGroupConfig(name=name, match=match, lr=lr)


def test_trainable_parameters_get_exactly_one_group_and_counts_are_printed(capsys):
    model = tiny_model()
    setup = apply_trainable(model, ["llm", "vision_encoder", "audio_head"],
                            [group("llm", ["llm"], 1e-5), group("vision", ["vision_encoder", "audio_head"], 1e-6)],
                            OptimConfig(weight_decay=0.1))
    out = capsys.readouterr().out
    groups = parameter_groups(model)
    for g, plist in groups.items():
        on = g in ("llm", "vision_encoder", "audio_head")
        assert all(p.requires_grad == on for _, p in plist)
        n = sum(p.numel() for _, p in plist)
        assert setup.counts[g] == ((n, n) if on else (0, n))
        assert f"{g:<18}{(n if on else 0):>14,}{(0 if on else n):>14,}" in out
    assert setup.trainable + setup.frozen == sum(p.numel() for p in model.parameters())
    by_name = {g["name"]: g for g in setup.param_groups}
    assert set(by_name) == {"llm", "llm.no_decay", "vision", "vision.no_decay"}
    assert by_name["llm"]["lr"] == 1e-5 and by_name["vision.no_decay"]["lr"] == 1e-6
    assert by_name["llm"]["weight_decay"] == 0.1 and by_name["llm.no_decay"]["weight_decay"] == 0.0
    assert all(p.dim() < 2 for p in by_name["llm.no_decay"]["params"])  # biases and norms do not decay
    trained = {id(p) for g in setup.param_groups for p in g["params"]}
    assert trained == {id(p) for p in model.parameters() if p.requires_grad}


def test_freezing_fails_loudly():
    model = tiny_model()
    optim = OptimConfig()
    with pytest.raises(ValueError, match="'backbone.model.layers.0.input_layernorm.weight' is trainable but matches no"):
        apply_trainable(model, ["llm"], [group("attn", ["backbone.*self_attn*"], 1e-5)], optim, verbose=False)
    with pytest.raises(ValueError, match=r"matches two param_groups \(a, b\)"):
        apply_trainable(model, ["audio_head"], [group("a", ["audio_head"], 1e-4), group("b", ["audio_*"], 1e-5)],
                        optim, verbose=False)
    with pytest.raises(ValueError, match="param_groups 'v' matches only frozen parameters"):
        apply_trainable(model, ["audio_head"], [group("a", ["audio_head"], 1e-4), group("v", ["vision_encoder"], 1e-6)],
                        optim, verbose=False)
    with pytest.raises(ValueError, match="'audio_heads' is neither a parameter group"):
        apply_trainable(model, ["audio_heads"], [], optim, verbose=False)
    tied = tiny_model(tie_word_embeddings=True)
    with pytest.raises(ValueError, match="tied"):
        apply_trainable(tied, ["embeddings"], [], optim, verbose=False)
    # a glob selects by parameter name; one group at optim.lr when none is declared
    assert select(model, "backbone.model.layers.1.*", "x") == {n for n, _ in model.named_parameters()
                                                               if n.startswith("backbone.model.layers.1.")}
    setup = apply_trainable(model, ["backbone.model.layers.1.*"], [], OptimConfig(lr=3e-4), verbose=False)
    assert [g["name"] for g in setup.param_groups] == ["trainable", "trainable.no_decay"]
    assert setup.param_groups[0]["lr"] == 3e-4


def test_there_are_stage_yamls_for_every_stage_of_the_recipe():
    names = {p.stem for p in STAGE_YAMLS if p.parent.name == "stages"}
    assert names == {"image_text_pretrain_1", "image_text_pretrain_2", "audio_pretrain_1", "audio_pretrain_2",
                     "omni_pretrain", "multimodal_sft"}
    lrs = {p.stem: {g.name: g.lr for g in load_config(p).param_groups} for p in STAGE_YAMLS if p.parent.name == "stages"}
    assert lrs["image_text_pretrain_1"] == {"vision_projector": 1e-3}  # the design brief's reference rates
    assert lrs["image_text_pretrain_2"] == {"llm": 1e-5, "vision_encoder": 1e-6}
    assert lrs["audio_pretrain_1"] == {"audio": 1e-4}
    assert lrs["audio_pretrain_2"] == {"all": 1e-5} and lrs["omni_pretrain"] == {"all": 4e-6}


@pytest.mark.parametrize("path", STAGE_YAMLS, ids=lambda p: str(p.relative_to(ROOT / "configs" / "stages")))
def test_parameters_outside_the_trainable_groups_stay_bit_identical(path, data, tmp_path):
    cfg = load_config(path, StageConfig, overrides=stage_overrides(data, tmp_path / "run"))
    if cfg.projector_init.images is not None:  # a stage that centres its projector measures the test's own images
        cfg = load_config(path, StageConfig, overrides=stage_overrides(
            data, tmp_path / "run", **{"projector_init.images": str(data / "image_caption.jsonl")}))
    before = params(load_stage_model(cfg))  # the start, after the stage's own init (e.g. projector_init)
    run = train_stage(cfg)
    assert run.result.complete and run.result.step == 3
    after = params(run.model)
    groups = parameter_groups(run.model)
    name_of = {n: g for g, plist in groups.items() for n, _ in plist}
    trainable = set()
    for sel in cfg.trainable:
        trainable |= select(run.model, sel, "trainable")
    changed = {n for n in after if n in name_of and not torch.equal(before[n], after[n])}
    frozen = set(name_of) - trainable
    assert frozen and not (changed & frozen), f"frozen parameters changed: {sorted(changed & frozen)[:5]}"
    for g in {name_of[n] for n in trainable}:  # every trainable group learned something
        assert any(name_of[n] == g for n in changed), f"group {g} did not change"
    # the exported final model holds the trained weights
    from omni.model import OmniModel as M

    final = params(M.from_pretrained(run.final_dir))
    assert all(torch.equal(final[k], after[k].to(final[k].dtype)) for k in final)

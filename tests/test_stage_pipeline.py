"""`omni train pipeline`: stages in order (under torchrun, one process group), each from the previous one's output;
finished stages are skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from omni.config import load_config
from omni.training.pipeline import RecipeConfig, run_pipeline
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.stage_data import stage_data, stage_overrides
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return stage_data(tmp_path_factory)


def write_recipe(data: Path, tmp: Path) -> Path:
    shared = [x for x in stage_overrides(data, tmp / "unused", **{"loop.max_steps": 2, "data.shards": 2})
              if not x.startswith(("init_from=", "model=", "loop.output_dir="))]
    lm = ["train_manifests=" + json.dumps([str(data / "text_train.jsonl")]), "dev_manifests=[]", "vocab_size=300",
          "loop.max_steps=3", "loop.batch_size=8", "loop.progress=false", "loop.eval_every=0", "model.hidden_size=32",
          "model.heads=2", "model.kv_heads=1", "model.intermediate_size=64"]
    recipe = {
        "kind": "recipe",
        "output_root": str(tmp / "runs"),
        "stages": [
            {"name": "lm", "config": str(ROOT / "configs/stages/text_lm_warmup.yaml"), "overrides": lm},
            {"name": "audio1", "config": str(ROOT / "configs/stages/tiny/audio_pretrain_1.yaml"),
             "overrides": [*shared, "init_from=null", f"model={ROOT / 'configs/model/tiny.yaml'}"]},
            {"name": "audio2", "config": str(ROOT / "configs/stages/tiny/audio_pretrain_2.yaml"), "overrides": shared},
        ],
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_pipeline_chains_stages_across_processes_and_skips_finished_ones(data, tmp_path):
    recipe = write_recipe(data, tmp_path)
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--standalone",
           str(Path(sys.executable).parent / "omni"), "train", "pipeline", str(recipe)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    runs = tmp_path / "runs"
    lm = load_file(runs / "lm" / "model" / "model.safetensors")
    a1 = load_file(runs / "audio1" / "final" / "model.safetensors")
    a2 = load_file(runs / "audio2" / "final" / "model.safetensors")
    # audio1 built the omni model on the warmed-up LM and trained only the audio modules
    for k, v in lm.items():
        if "embed_tokens" not in k and "lm_head" not in k:
            assert torch.equal(a1[f"backbone.{k}"], v), k
    emb = lm["model.embed_tokens.weight"]
    assert torch.equal(a1["backbone.model.embed_tokens.weight"][: emb.shape[0]], emb)  # + rows of the new tokens
    # audio2 started from audio1's final model: its frozen vision encoder is audio1's, bit for bit; the LLM moved
    vision = [k for k in a1 if k.startswith("vision.tower.") and ".merger." not in k]
    assert vision and all(torch.equal(a1[k], a2[k]) for k in vision)
    assert not torch.equal(a1["backbone.model.layers.0.mlp.up_proj.weight"], a2["backbone.model.layers.0.mlp.up_proj.weight"])
    cfg = yaml.safe_load((runs / "audio2" / "config.yaml").read_text())
    assert cfg["init_from"] == str(runs / "audio1" / "final") and cfg["model"] is None
    # rerun (one process now): every stage is finished and skipped, nothing is written again
    stamp = (runs / "audio2" / "final" / "model.safetensors").stat().st_mtime_ns
    outcomes = run_pipeline(load_config(recipe, RecipeConfig), log=lambda s: None)
    assert [o.skipped for o in outcomes] == [True, True, True]
    assert (runs / "audio2" / "final" / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="no stage 'nope'"):
        run_pipeline(load_config(recipe, RecipeConfig), start="nope")
    # --until: a bounded part of the recipe (every step up to and including it)
    assert [o.name for o in run_pipeline(load_config(recipe, RecipeConfig), log=lambda s: None, until="audio1")] == \
        ["lm", "audio1"]
    with pytest.raises(ValueError, match="--until: no stage 'nope'"):
        run_pipeline(load_config(recipe, RecipeConfig), until="nope")


def test_recipes_load_and_name_their_stages():
    recipe = load_config(ROOT / "configs/recipes/tiny_smoke.yaml", RecipeConfig)
    assert [s.name for s in recipe.stages][:2] == ["text_lm_warmup", "audio_pretrain_1"]
    for s in recipe.stages:
        assert (ROOT / s.config).is_file()

"""The CI variant of the tiny end-to-end recipe (configs/recipes/tiny_ci.yaml): every step kind runs, each
step's output exists, the bundle loads, the report has its keys, and a rerun skips every step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from omni.config import load_config
from omni.eval.qa import score_answers
from omni.training.pipeline import RecipeConfig, rebase, run_pipeline
from omni.training.recipe_steps import STEPS, step_done, step_output

ROOT = Path(__file__).resolve().parent.parent


def test_rebase_rewrites_whole_path_components_only():
    paths = {"data/corpus": "/x/corpus", "runs/tiny": "/x"}
    data = {"a": "data/corpus/asr.jsonl", "b": ["runs/tiny/lm/model", "runs/tiny_smoke/x"], "c": "data/corpus2/y", "d": 3}
    assert rebase(data, paths) == {"a": "/x/corpus/asr.jsonl", "b": ["/x/lm/model", "runs/tiny_smoke/x"],
                                   "c": "data/corpus2/y", "d": 3}


def test_score_answers_counts_whole_word_key_matches():
    from omni.data.manifest import ManifestRow

    rows = [ManifestRow(id=str(i), task="spoken_qa", text="q", meta=m) for i, m in enumerate(
        [{"answer_key": "blue", "question_kind": "color"}, {"answer_key": "three", "question_kind": "count"},
         {"answer_key": "twenty", "question_kind": "count"}, {}])]
    s = score_answers(rows, ["It is Blue.", "threefold", "twenty one", "whatever"])
    assert (s.correct, s.scored, s.unscored) == (1, 3, 1)  # whole words only; "twenty" is not in "twenty one"
    assert s.accuracy == 1 / 3
    assert s.by_group == {"color": {"accuracy": 1.0, "correct": 1, "scored": 1},
                          "count": {"accuracy": 0.0, "correct": 0, "scored": 2}}
    assert score_answers(rows[1:2], ["there are three"]).correct == 1


def test_tiny_recipe_lists_every_step_kind():
    recipe = load_config(ROOT / "configs/recipes/tiny.yaml", RecipeConfig)
    from omni.training.pipeline import load_stage_config

    kinds = {load_stage_config(s, recipe, None)[0] for s in recipe.stages}
    assert kinds == set(STEPS), set(STEPS) ^ kinds
    assert recipe.output_root == "runs/tiny" and recipe.stages[-1].name == "report"
    from serve.demo import DEMO_CHECKPOINT

    assert Path(DEMO_CHECKPOINT) == ROOT / recipe.output_root / "bundle"


def test_ci_recipe_runs_every_step_end_to_end_and_a_rerun_skips_all(tmp_path):
    out = tmp_path / "tiny_ci"
    cmd = [str(Path(sys.executable).parent / "omni"), "train", "pipeline", str(ROOT / "configs/recipes/tiny_ci.yaml"),
           f"output_root={out}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recipe = load_config(ROOT / "configs/recipes/tiny_ci.yaml", RecipeConfig, overrides=[f"output_root={out}"])
    from omni.training.pipeline import load_stage_config

    for entry in recipe.stages:
        kind, _, run_dir = load_stage_config(entry, recipe, None)
        assert step_done(kind, run_dir), entry.name
        assert step_output(kind, run_dir).exists(), entry.name
    # codes were cached beside the corpus manifests the stages read
    assert (out / "corpus" / "spoken_qa_test.codes.jsonl").is_file()
    # the final bundle loads and holds the DPO model
    from omni.bundle import load_bundle

    bundle = load_bundle(out / "bundle")
    assert bundle.voices == ["flite:rms"]
    assert (out / "dpo" / "final" / "omni_config.json").is_file()
    pairs = [json.loads(line) for line in (out / "pairs" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and {"prompt", "chosen", "rejected"} <= set(pairs[0])
    report = json.loads((out / "report" / "report.json").read_text())
    assert set(report) >= {"title", "goals", "metrics", "samples", "steps", "evals"}
    assert set(report["metrics"]) == {"asr_seen", "asr_heldout", "tts", "spoken_qa", "image_qa", "pref_sft", "pref_dpo"}
    assert {g["goal"] for g in report["goals"]} >= {"asr_seen.wer", "tts.wer_ratio", "image_qa.accuracy"}
    assert [s["name"] for s in report["steps"]] == [s.name for s in recipe.stages][:-1]
    assert (out / "report" / "report.md").read_text().startswith("# Tiny recipe")
    assert (out / "report" / "figures" / "step_times.png").is_file()
    # rerun: every step is finished and skipped, nothing is written again
    stamp = (out / "bundle" / "bundle.yaml").stat().st_mtime_ns
    outcomes = run_pipeline(recipe, log=lambda s: None)
    assert all(o.skipped for o in outcomes) and len(outcomes) == len(recipe.stages)
    assert (out / "bundle" / "bundle.yaml").stat().st_mtime_ns == stamp

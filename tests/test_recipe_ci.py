"""The CI variant of the tiny end-to-end recipe (configs/recipes/tiny_ci.yaml): every step kind runs, each
step's output exists, the bundle loads, the report has its keys, and a rerun skips every step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    # the value of a dotted override (a stage's model_overrides) is a path too; its key is never rewritten
    overrides = ["vision.path=runs/tiny/vision/model", "codebook_sizes=[8, 8]", "runs/tiny=runs/tiny/x"]
    assert rebase(overrides, paths) == ["vision.path=/x/vision/model", "codebook_sizes=[8, 8]", "runs/tiny=runs/tiny/x"]


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


def test_score_answers_needs_the_key_as_the_answer_not_in_a_wrong_premise():
    """A prompt row (the question in ``prompt``, the reference in ``chosen``): a reply whose other number words are
    not in the question or the reference restated the question wrongly."""
    from omni.align.pairs import prompt_rows
    from omni.data.manifest import ManifestRow, Turn

    conv = [Turn(role="user", text="What date comes after January fifth?"),
            Turn(role="assistant", text="The day after January fifth is January sixth.")]
    rows = prompt_rows([ManifestRow(id="0", task="text", conversation=conv,
                                    meta={"answer_key": "January sixth", "category": "time_date"})])
    s = score_answers(rows * 3, ["The day after January sixth is January seventh.", "It is January sixth.",
                                 "The day after January fifth is January sixth."], group_by="category")
    assert [i["correct"] for i in s.items] == [False, True, True]


def test_report_reads_evaluations_and_training_runs_and_checks_goals(tmp_path):
    """Goals on an evaluation's headline (TTS: judge WER on the model's speech / on the references) and on a
    training run's final eval/* metrics (DPO's held-out reward accuracy); a missing metric is 'not measured'."""
    from omni.config.fields import FieldError
    from omni.eval.recipe_report import RecipeReportConfig, write_recipe_report

    (tmp_path / "tts").mkdir()
    (tmp_path / "tts" / "report.json").write_text(json.dumps(
        {"task": "tts", "totals": {"wer": 0.3, "cer": 0.2, "scored": 5}, "references": {"wer": 0.15}}))
    (tmp_path / "dpo").mkdir()
    (tmp_path / "dpo" / "trainer_state.json").write_text(json.dumps(
        {"metrics": {"loss": 0.5, "eval/rewards/accuracies": 0.93, "eval/loss": 0.6}, "step": 10}))
    cfg = RecipeReportConfig(evals={"tts": str(tmp_path / "tts")}, train_runs={"dpo": str(tmp_path / "dpo")},
                             max_goals={"tts.wer_ratio": 1.5, "tts.mcd": 5.0},
                             min_goals={"dpo.rewards/accuracies": 0.9})
    files = write_recipe_report(cfg, tmp_path / "report")
    report = json.loads(files["json"].read_text())
    assert report["metrics"]["dpo"] == {"rewards/accuracies": 0.93, "loss": 0.6}
    goals = {g["goal"]: (g["value"], g["met"]) for g in report["goals"]}
    assert goals == {"tts.wer_ratio": (0.3 / 0.15, False), "tts.mcd": (None, None), "dpo.rewards/accuracies": (0.93, True)}
    assert "| dpo.rewards/accuracies | 0.9300 | >= 0.9 | yes |" in files["markdown"].read_text()
    with pytest.raises(FieldError, match="one of"):
        RecipeReportConfig(evals={"tts": "x"}, min_goals={"nope.accuracy": 0.5})


def test_tts_wer_ratio_floors_a_perfect_reference_transcript():
    from omni.eval.recipe_report import headline
    from omni.eval.speech import REFERENCE_WER_FLOOR

    def ratio(wer, ref):
        return headline({"task": "tts", "totals": {"wer": wer}, "references": {"wer": ref}})["wer_ratio"]

    assert ratio(0.3, 0.15) == pytest.approx(2.0)
    assert ratio(0.05, 0.0) == pytest.approx(0.05 / REFERENCE_WER_FLOOR)  # was undefined (None)
    assert ratio(0.0, 0.0) == 0.0
    assert ratio(0.3, None) is None and ratio(None, 0.1) is None  # not measured


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
    assert set(report["metrics"]) == {"gate_codes", "gate_vocoder", "gate_griffin_lim", "gate_resynthesis", "text_qa",
                                      "asr_seen", "asr_heldout", "tts", "spoken_qa", "image_qa", "pref_sft", "pref_dpo",
                                      "lm", "dpo", "vision"}
    assert "rewards/accuracies" in report["metrics"]["dpo"] and "perplexity" in report["metrics"]["lm"]
    assert "acc/shape" in report["metrics"]["vision"]  # the warmed-up tower's heads on the dev images
    assert (out / "vision" / "model" / "model.safetensors").is_file()
    for gate in ("gate_vocoder", "gate_griffin_lim", "gate_resynthesis"):  # judged copies of held-out reply clips
        assert report["metrics"][gate]["wer_ratio"] is not None, gate
    assert report["metrics"]["gate_codes"]["scored"] == 3
    assert {g["goal"] for g in report["goals"]} >= {"asr_seen.wer", "tts.wer_ratio", "image_qa.accuracy", "gate_codes.wer",
                                                   "gate_vocoder.wer_ratio", "gate_resynthesis.wer_ratio",
                                                   "text_qa.accuracy"}
    plan = {r["component"]: r for r in report["plan"]}
    assert plan["vocoder"]["steps"] == 2 and plan["vocoder"]["parameters"] > 1000 and plan["vocoder"]["minutes"] > 0
    assert [g["goal"] for g in plan["vocoder"]["gates"]] == ["gate_vocoder.wer_ratio"]
    md = (out / "report" / "report.md").read_text()
    assert "## Component gates" in md and "## Compute plan" in md
    assert [s["name"] for s in report["steps"]] == [s.name for s in recipe.stages][:-1]
    assert (out / "report" / "report.md").read_text().startswith("# Tiny recipe")
    assert (out / "report" / "figures" / "step_times.png").is_file()
    # rerun: every step is finished and skipped, nothing is written again
    stamp = (out / "bundle" / "bundle.yaml").stat().st_mtime_ns
    outcomes = run_pipeline(recipe, log=lambda s: None)
    assert all(o.skipped for o in outcomes) and len(outcomes) == len(recipe.stages)
    assert (out / "bundle" / "bundle.yaml").stat().st_mtime_ns == stamp


def test_small_recipe_scales_every_tiny_step_up():
    """configs/recipes/small.yaml: the same steps as tiny.yaml, each config loads, every training step runs bf16
    where it can and trains on at least twice the examples, and its LM (built on the meta device) has a few hundred million parameters."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from omni.training.pipeline import load_stage_config

    tiny = load_config(ROOT / "configs/recipes/tiny.yaml", RecipeConfig)
    small = load_config(ROOT / "configs/recipes/small.yaml", RecipeConfig)
    assert [s.name for s in small.stages] == [s.name for s in tiny.stages] and small.output_root == "runs/small"
    tiny_cfgs = {s.name: load_stage_config(s, tiny, None) for s in tiny.stages}
    for entry in small.stages:
        kind, cfg, run_dir = load_stage_config(entry, small, None)
        assert kind == tiny_cfgs[entry.name][0] and run_dir == Path("runs/small") / entry.name
        if hasattr(cfg, "loop"):
            assert cfg.loop.mixed_precision == "auto", entry.name
            seen = cfg.loop.max_steps * cfg.loop.batch_size  # examples: the small recipe's batches are larger
            tiny_loop = tiny_cfgs[entry.name][1].loop
            assert seen >= 2 * tiny_loop.max_steps * tiny_loop.batch_size, entry.name
    lm = load_stage_config(next(s for s in small.stages if s.name == "lm"), small, None)[1]
    m = lm.model
    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(
            vocab_size=lm.vocab_size, hidden_size=m.hidden_size, intermediate_size=m.intermediate_size,
            num_hidden_layers=m.layers, num_attention_heads=m.heads, num_key_value_heads=m.kv_heads,
            tie_word_embeddings=m.tie_word_embeddings))
    assert 2e8 <= sum(p.numel() for p in model.parameters()) <= 5e8
    stage = load_stage_config(next(s for s in small.stages if s.name == "image_text_pretrain_1"), small, None)[1]
    assert stage.model == "configs/model/small.yaml"
    report = load_stage_config(small.stages[-1], small, None)[1]
    assert report.title.startswith("Small recipe") and all(v.startswith("runs/small/") for v in report.evals.values())

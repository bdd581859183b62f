"""`omni eval qa`: the command's report is the library's scoring of the model's greedy replies, and its gate."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from omni.cli.main import app
from tests.helpers.eval_data import bundle_dir, corpus_rows, write_jsonl  # noqa: F401 (fixture)
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    return corpus_rows(tmp_path_factory, "text_test.jsonl", 6)


def _run(manifest, bundle_dir, out, *args):
    return runner.invoke(app, ["eval", "qa", str(manifest), "--checkpoint", str(bundle_dir), "--out", str(out),
                               "--text-in", "--batch-size", "4", "max_new_tokens=6", *args])


def test_report_scores_the_models_own_replies_and_gates(bundle_dir, questions, tmp_path):
    """First pass: the random model's replies. Second pass on a manifest whose keys are a word of each reply (right)
    or a word no reply holds (wrong): accuracy 1/2 exactly, per group, and --min-accuracy gates on it."""
    first = tmp_path / "first"
    res = _run(write_jsonl(tmp_path / "q.jsonl", questions), bundle_dir, first)
    assert res.exit_code == 0, res.output
    replies = [json.loads(line) for line in (first / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in replies] == [q["id"] for q in questions]
    from omni.data.synth.domain import normalize

    keyed = []
    for q, r in zip(questions, replies):
        words = [w for w in normalize(r["answer"]).split() if w.isalpha()]
        if words:
            keyed.append({**q, "id": q["id"] + "-right", "meta": {**q["meta"], "answer_key": words[0], "k": "right"}})
            keyed.append({**q, "id": q["id"] + "-wrong", "meta": {**q["meta"], "answer_key": "zebraxq", "k": "wrong"}})
    assert keyed, "the random model replied with no word at all"
    manifest = write_jsonl(tmp_path / "keyed.jsonl", keyed)
    out = tmp_path / "keyed"
    res = _run(manifest, bundle_dir, out, "--group-by", "k", "--min-accuracy", "0.5")
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    n = len(keyed) // 2
    assert report["totals"]["accuracy"] == 0.5 and report["totals"]["scored"] == 2 * n
    assert report["by_group"] == {"right": {"accuracy": 1.0, "correct": n, "scored": n},
                                  "wrong": {"accuracy": 0.0, "correct": 0, "scored": n}}
    assert "gate passed" in res.output and (out / "report.md").is_file()
    res = _run(manifest, bundle_dir, tmp_path / "gate", "--min-accuracy", "0.6")
    assert res.exit_code == 1 and "gate failed: accuracy 0.500 < 0.6" in res.output


def test_missing_manifest_or_checkpoint_is_a_one_line_error(bundle_dir, questions, tmp_path):
    res = _run(tmp_path / "nope.jsonl", bundle_dir, tmp_path / "o")
    assert res.exit_code != 0 and "nope.jsonl: manifest not found" in res.output
    res = _run(write_jsonl(tmp_path / "q.jsonl", questions), tmp_path / "no_bundle", tmp_path / "o")
    assert res.exit_code != 0 and "checkpoint not found" in res.output


def test_beam_answers_are_the_best_beams(bundle_dir, questions, tmp_path):
    """beam_size=3: each reply is the best beam of omni.model.beam over the row's prompt (read as text)."""
    from omni.align.pairs import encode_prompts, prompt_rows
    from omni.data.manifest import load_manifest
    from omni.data.media import CachedMedia
    from omni.eval.qa import model_dir_of
    from omni.model import OmniModel
    from omni.model.beam import beam_text

    manifest = write_jsonl(tmp_path / "q.jsonl", questions)
    res = _run(manifest, bundle_dir, tmp_path / "beam", "beam_size=3")
    assert res.exit_code == 0, res.output
    replies = [json.loads(line)["answer"] for line in (tmp_path / "beam" / "results.jsonl").read_text().splitlines()]
    model = OmniModel.from_pretrained(model_dir_of(bundle_dir))
    rows = prompt_rows(load_manifest(manifest))
    prompts = encode_prompts(model, rows, str(manifest), CachedMedia(list(model.cfg.codebook_sizes), None),
                             False, speech_out=False)
    assert replies == [beam_text(model, [p], 3, 6)[0].strip() for p in prompts]

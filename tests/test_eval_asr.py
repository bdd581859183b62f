"""`omni eval asr`: the training prompt, batched = one by one, beams, reports, failures, PocketSphinx, 2 processes = 1."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from omni.audio.io import load_audio
from omni.cli.main import app
from omni.data.formatters import FormatConfig, RowContext, encode_sample, format_asr
from omni.data.manifest import ManifestRow
from omni.eval.asr import AsrEvalConfig, evaluate_asr
from omni.eval.parallel import dist_context
from omni.eval.recognizers import RecognizerConfig, build_recognizer
from tests.helpers.eval_data import bundle, bundle_dir, corpus_rows, write_jsonl  # noqa: F401 (fixtures)
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
def good_rows(tmp_path_factory):
    return corpus_rows(tmp_path_factory, "asr_train.jsonl", 10)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, good_rows):
    """10 good rows, then: an unreadable audio file, a missing file, a bad JSON line, a row without text."""
    d = tmp_path_factory.mktemp("asr_manifest")
    (d / "garbage.wav").write_bytes(b"RIFF not really a wav file")
    bad = [{"id": "bad-audio", "task": "asr", "audio": str(d / "garbage.wav"), "text": "hello"},
           {"id": "missing", "task": "asr", "audio": str(d / "nowhere.flac"), "text": "hello"}]
    no_text = {**good_rows[0], "id": "no-text"}
    no_text.pop("text")
    return write_jsonl(d / "eval.jsonl", good_rows + bad, ['{"id": "broken", "task": ', json.dumps(no_text)])


class _Codes:
    def __init__(self, codes):
        self.c = codes

    def codes(self, manifest, holder, where):
        return self.c


def test_omni_prompt_is_the_training_prompt(bundle, good_rows):
    """The recogniser's prompt is the training ASR example cut before the answer, ending with the assistant turn."""
    rec = build_recognizer(RecognizerConfig(name="omni"), bundle)
    row_data = good_rows[0]
    audio = load_audio(row_data["audio"], 16000)
    row = ManifestRow(**{k: v for k, v in row_data.items()})
    prompt = rec.prompts([audio], [row])[0]
    codes = bundle.audio_tokenizer.encode(audio.samples, 16000)
    ctx = RowContext("m.jsonl", 1, 0, _Codes(codes), FormatConfig())
    model = bundle.model
    train = encode_sample(format_asr([row], ctx), model.tokenizer, model.token_ids,
                          merge_size=model.cfg.vision.spatial_merge_size, think_block=model.cfg.think_block)
    n = len(prompt.input_ids)
    assert torch.equal(prompt.input_ids, train.input_ids[:n])
    assert torch.equal(prompt.audio_codes, train.audio_codes)
    assert (train.labels[:n] == -100).all() and (train.labels[n:] != -100).any()  # the answer starts right after
    text = model.tokenizer.decode(prompt.input_ids)
    assert f"<|{row.language}|><|{row.region}|><|transcribe|>" in text and text.endswith("<|im_start|>assistant\n")


def test_batched_recognition_equals_one_by_one(bundle, good_rows):
    rec = build_recognizer(RecognizerConfig(name="omni", max_new_tokens=12), bundle)
    audios = [load_audio(r["audio"], 16000) for r in good_rows[:4]]
    assert len({len(a.samples) for a in audios}) > 1  # different lengths: left padding is exercised
    rows = [ManifestRow(**r) for r in good_rows[:4]]
    batched = rec.transcribe(audios, rows)
    assert batched == [rec.transcribe([a], [r])[0] for a, r in zip(audios, rows)]
    assert all(isinstance(t, str) for t in batched)


def test_beam_recognition_is_beam_search_over_the_asr_prompts(bundle, good_rows):
    """beam_size > 1: the best beam of transformers' search over the same prompts (rows of a random model tie
    often, so batched and alone may break ties differently: not compared)."""
    from omni.model.beam import beam_text

    rec = build_recognizer(RecognizerConfig(name="omni", max_new_tokens=12, beam_size=3), bundle)
    audios = [load_audio(r["audio"], 16000) for r in good_rows[:3]]
    rows = [ManifestRow(**r) for r in good_rows[:3]]
    beams = rec.transcribe(audios, rows)
    assert beams == [t.strip() for t in beam_text(bundle.model, rec.prompts(audios, rows), 3, 12)]
    assert len(set(beams)) == len(beams) and all(beams)  # three clips, three different transcripts
    greedy = build_recognizer(RecognizerConfig(name="omni", max_new_tokens=12), bundle).transcribe(audios, rows)
    assert beams != greedy  # the search chose other words than the greedy path somewhere


def test_cli_report_failures_and_figures(bundle_dir, manifest, tmp_path):
    out = tmp_path / "rep"
    res = runner.invoke(app, ["eval", "asr", str(manifest), "--checkpoint", str(bundle_dir), "--out", str(out),
                              "--batch-size", "4", "recognizer.max_new_tokens=8"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "omni-eval-report/1" and report["task"] == "asr" and report["system"] == "omni"
    for key in ("totals", "by_group", "by_language", "by_duration", "failures", "config", "processes"):
        assert key in report
    t = report["totals"]
    assert (t["utterances"], t["scored"], t["failed"]) == (14, 10, 4)
    reasons = {f["id"]: f["reason"] for f in report["failures"]}
    assert set(reasons) == {"bad-audio", "missing", "", "no-text"}
    assert "garbage.wav" in reasons["bad-audio"] and "nowhere.flac" in reasons["missing"]
    assert "invalid JSON" in reasons[""] and "text: required" in reasons["no-text"]  # manifest validation
    lines = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    assert [r["index"] for r in lines] == list(range(14))  # manifest order
    ok = [r for r in lines if r["status"] == "ok"]
    errors = sum(r["words"]["substitutions"] + r["words"]["deletions"] + r["words"]["insertions"] for r in ok)
    n = sum(r["words"]["reference_length"] for r in ok)
    assert t["wer"] == pytest.approx(errors / n) and math.isfinite(t["wer"])  # totals = summed counts
    assert t["rtf"] > 0 and t["audio_seconds"] == pytest.approx(sum(r["duration"] for r in ok), abs=1e-3)
    assert sum(g["utterances"] for g in report["by_group"].values()) == 14
    for fig in ("wer_by_group.png", "errors.png", "rtf.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "Failed utterances (4)" in md and "garbage.wav" in md and "figures/rtf.png" in md
    res = runner.invoke(app, ["eval", "compare", str(out / "report.json"), str(out / "report.json")])
    assert res.exit_code == 0 and "wer" in res.output and "+0" in res.output


def test_empty_or_missing_manifest_is_a_clear_error(bundle_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    res = runner.invoke(app, ["eval", "asr", str(empty), "--recognizer", "pocketsphinx", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "empty manifest" in res.output and "empty.jsonl" in res.output
    res = runner.invoke(app, ["eval", "asr", str(tmp_path / "nope.jsonl"), "--recognizer", "pocketsphinx",
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "nope.jsonl: manifest not found" in res.output
    res = runner.invoke(app, ["eval", "asr", str(empty), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--checkpoint" in res.output  # the omni recogniser needs a bundle


def test_pocketsphinx_judge_runs_offline_on_corpus_audio(tmp_path_factory):
    rows = corpus_rows(tmp_path_factory, "asr_train.jsonl", 3)
    manifest = write_jsonl(tmp_path_factory.mktemp("ps") / "m.jsonl", rows)
    cfg = AsrEvalConfig(recognizer=RecognizerConfig(name="pocketsphinx"))
    run = evaluate_asr(cfg, manifest, build_recognizer(cfg.recognizer), dist_context(), progress=False)
    from omni.eval.results import summarize

    t = summarize(run.results)
    assert t["scored"] == 3 and math.isfinite(t["wer"]) and 0 <= t["wer"]
    assert any(r.hypothesis.strip() for r in run.results)  # it heard words
    assert t["words"]["hits"] > 0  # ... and some of them are right


def test_two_processes_equal_one(bundle_dir, good_rows, tmp_path):
    """torchrun --nproc_per_node 2 gives the same per-utterance results and totals as one process."""
    manifest = write_jsonl(tmp_path / "m.jsonl", good_rows, ['{"bad json'])
    omni = str(Path(sys.executable).parent / "omni")
    torchrun = str(Path(sys.executable).parent / "torchrun")
    common = ["eval", "asr", str(manifest), "--checkpoint", str(bundle_dir), "--batch-size", "3", "--no-plots",
              "recognizer.max_new_tokens=8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    one = subprocess.run([omni, *common, "--out", str(tmp_path / "one")], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([torchrun, "--nproc_per_node", "2", "--standalone", omni, *common, "--out",
                          str(tmp_path / "two")], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    r1, r2 = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("one", "two"))
    assert (r1["processes"], r2["processes"]) == (1, 2)

    def strip(totals):
        return {k: v for k, v in totals.items() if k not in ("processing_seconds", "rtf", "wall_seconds",
                                                              "utterances_per_second")}

    assert strip(r1["totals"]) == strip(r2["totals"]) and r1["totals"]["scored"] == 10
    assert r1["failures"] == r2["failures"] and len(r1["failures"]) == 1
    res = [[{k: v for k, v in json.loads(s).items() if k != "seconds"} for s in
            (tmp_path / d / "results.jsonl").read_text().splitlines()] for d in ("one", "two")]
    assert res[0] == res[1]

"""`omni eval tts` / `omni eval tokenizer`: training TTS prompt, batched synthesis, judged reports with MCD."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from omni.cli.main import app
from omni.data.formatters import FormatConfig, RowContext, encode_sample, format_tts
from omni.data.manifest import ManifestRow
from omni.eval.data import read_items
from omni.eval.tts import TtsEvalConfig, tts_codes, tts_prompt
from tests.helpers.eval_data import bundle, bundle_dir, corpus_rows, write_jsonl  # noqa: F401 (fixtures)
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)

runner = CliRunner()


class _Codes:
    def codes(self, manifest, holder, where):
        return torch.zeros(3, 8, dtype=torch.long)


def test_tts_prompt_is_the_training_prompt(bundle):
    row = ManifestRow(id="t1", task="tts", text="Turn on the kitchen lights.", language="en", region="GB",
                      audio="x.flac")
    model = bundle.model
    train = encode_sample(format_tts([row], RowContext("m.jsonl", 1, 0, _Codes(), FormatConfig())), model.tokenizer,
                          model.token_ids, merge_size=model.cfg.vision.spatial_merge_size,
                          think_block=model.cfg.think_block)
    forced = tts_prompt(model, row, TtsEvalConfig())
    n = len(forced.input_ids)
    assert torch.equal(forced.input_ids, train.input_ids[:n])  # ... up to and including <|audio_gen_start|>
    assert int(forced.input_ids[-1]) == model.token_ids.audio_gen_start
    plain = tts_prompt(model, ManifestRow(id="t1", task="tts", text=row.text, language="en", region="GB"),
                       TtsEvalConfig(force_speech=False))  # the reference audio is not needed for a prompt
    assert torch.equal(plain.input_ids, forced.input_ids[:-1])
    assert "<|en|><|GB|><|tts|>Turn on the kitchen lights." in model.tokenizer.decode(plain.input_ids)


def test_batched_synthesis_codes_equal_one_by_one(bundle, tmp_path):
    rows = [{"id": f"t{i}", "task": "tts", "text": t, "language": "en"} for i, t in
            enumerate(["Hello.", "What is two plus three?", "Set a timer for ten minutes, please."])]
    items = read_items(write_jsonl(tmp_path / "m.jsonl", rows), need_audio=False, need_text=True)
    make = tts_codes(bundle, TtsEvalConfig(max_audio_frames=12, min_audio_frames=3, max_new_tokens=16))
    batched = make(items, [None] * 3)
    for it, b in zip(items, batched):
        (single,) = make([it], [None])
        assert b.error is None and b.data.shape[1] == 8 and 3 <= len(b.data) <= 12
        assert torch.equal(b.data, single.data)


def test_cli_tts_judged_with_references_mcd_and_samples(bundle_dir, tmp_path_factory, tmp_path):
    rows = corpus_rows(tmp_path_factory, "tts_train.jsonl", 2)
    no_audio = {"id": "text-only", "task": "tts", "text": "Good morning.", "language": "en"}
    manifest = write_jsonl(tmp_path / "tts.jsonl", [*rows, no_audio, {**rows[0], "id": "gone", "audio": "/no/such.flac"}])
    out = tmp_path / "rep"
    res = runner.invoke(app, ["eval", "tts", str(manifest), "--checkpoint", str(bundle_dir), "--out", str(out),
                              "--voice", "flite:rms", "--voice", "espeak:en-us+m1", "--batch-size", "2",
                              "max_audio_frames=10", "min_audio_frames=4", "max_new_tokens=12", "samples=1"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "report.json").read_text())
    assert r["task"] == "tts" and r["judge"] == "pocketsphinx" and r["group_by"] == "voice"
    assert set(r["by_group"]) == {"flite:rms", "espeak:en-us+m1"} and r["voices"] == ["flite:rms", "espeak:en-us+m1"]
    t = r["totals"]
    assert (t["utterances"], t["scored"], t["failed"]) == (8, 6, 2)  # 4 rows x 2 voices; "gone" fails per voice
    assert all("no/such.flac" in f["reason"] for f in r["failures"])
    assert math.isfinite(t["wer"]) and t["rtf"] > 0 and t["audio_seconds"] > 0
    assert r["references"]["scored"] == 2 and math.isfinite(r["references"]["wer"])  # the two rows with audio
    assert r["mcd"]["count"] == 4 and r["mcd"]["mean"] > 0 and set(r["mcd"]["by_group"]) == set(r["by_group"])
    assert r["synthesis"]["frames"] >= 6 * 4 and r["synthesis"]["judge_rtf"] > 0
    if r["references"]["wer"]:
        assert r["intelligibility_gap"] == pytest.approx(t["wer"] / r["references"]["wer"])
    samples = sorted(p.name for p in (out / "samples").iterdir())
    assert len(samples) == 2 and all(s.startswith("0000_") for s in samples)  # first row, both voices
    assert (out / "references.jsonl").read_text().count("\n") == 2
    assert "The judge on the reference audio" in (out / "report.md").read_text()
    assert (out / "figures" / "wer_by_group.png").is_file()


def test_cli_tokenizer_resynthesis(bundle_dir, tmp_path_factory, tmp_path):
    manifest = write_jsonl(tmp_path / "asr.jsonl", corpus_rows(tmp_path_factory, "asr_train.jsonl", 2))
    out = tmp_path / "rep"
    res = runner.invoke(app, ["eval", "tokenizer", str(manifest), "--checkpoint", str(bundle_dir), "--out", str(out),
                              "samples=0"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "report.json").read_text())
    assert r["task"] == "tokenizer" and r["totals"]["scored"] == 2 and r["references"]["scored"] == 2
    lines = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    for line in lines:  # resynthesis lasts as long as its codes: 1920 samples at 24 kHz per 12.5 Hz frame
        assert line["duration"] == pytest.approx(line["frames"] * 0.08, abs=1e-3)
        assert line["mcd"] > 0
    assert not (out / "samples").exists()


def test_a_reference_cache_judges_each_reference_once(bundle_dir, tmp_path_factory, tmp_path, monkeypatch):
    import os
    import shutil

    from omni.eval.recognizers.sphinx import PocketSphinxRecognizer

    rows = corpus_rows(tmp_path_factory, "asr_train.jsonl", 2)
    for k, row in enumerate(rows):  # copies: the test changes a file's modification time
        copy = tmp_path / f"ref{k}{os.path.splitext(row['audio'])[1]}"
        shutil.copyfile(row["audio"], copy)
        row["audio"] = str(copy)
    manifest = write_jsonl(tmp_path / "asr.jsonl", rows)
    heard = []
    real = PocketSphinxRecognizer.transcribe
    monkeypatch.setattr(PocketSphinxRecognizer, "transcribe",
                        lambda self, audios, rows=None: heard.append(len(audios)) or real(self, audios, rows))

    def run(name: str) -> list[dict]:
        heard.clear()
        res = runner.invoke(app, ["eval", "tokenizer", str(manifest), "--checkpoint", str(bundle_dir), "--out",
                                  str(tmp_path / name), "samples=0", f"reference_cache={tmp_path / 'cache'}"])
        assert res.exit_code == 0, res.output
        return [json.loads(x) for x in (tmp_path / name / "references.jsonl").read_text().splitlines()]

    first = run("a")
    assert sum(heard) == 4 and len(list((tmp_path / "cache").glob("*.json"))) == 2  # 2 references + 2 resyntheses
    again = run("b")
    assert sum(heard) == 2  # only the resyntheses: the references came from the cache
    assert [r["hypothesis"] for r in again] == [r["hypothesis"] for r in first]
    audio = rows[0]["audio"]
    os.utime(audio, ns=(os.stat(audio).st_atime_ns, os.stat(audio).st_mtime_ns + 10**9))  # the file changed
    run("c")
    assert sum(heard) == 3  # that reference is judged again


def test_unknown_voice_is_a_clear_error(bundle_dir, tmp_path):
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "task": "tts", "text": "Hi."}])
    res = runner.invoke(app, ["eval", "tts", str(manifest), "--checkpoint", str(bundle_dir), "--out", str(tmp_path / "o"),
                              "--voice", "nobody"])
    assert res.exit_code == 2 and "nobody" in res.output and "flite:rms" in res.output

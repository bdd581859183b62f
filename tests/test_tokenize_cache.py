"""Offline code caching: same codes as encode(), codes next to every audio reference, input untouched, resume, workers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from accelerate.state import AcceleratorState
from safetensors import safe_open
from typer.testing import CliRunner

from audio_tokenizer.cache import KnownCodes, tokenize_manifest
from audio_tokenizer.model import AudioTokenizer
from omni.audio.io import AudioError, load_audio
from omni.cli.main import app
from omni.data.codes import CodesReader
from omni.data.manifest import load_manifest
from tests.helpers.accelerate_state import fresh_accelerate_state  # noqa: F401 (fixture)
from tests.helpers.speech_data import initialised_tokenizer, one_thread  # noqa: F401 (one_thread: fixture)
from tests.helpers.speech_fixtures import corpus  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.getbasetemp() / "cache_tokenizer"
    initialised_tokenizer(seed=3).save_pretrained(out)
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_codes_equal_encode_and_sit_next_to_every_audio_reference(corpus, tok_dir):
    tok = AudioTokenizer.from_pretrained(tok_dir)
    for name in ("asr_dev.jsonl", "spoken_chat_train.jsonl", "interleaved_train.jsonl"):
        manifest = corpus / name
        before = sha(manifest)
        result = tokenize_manifest(manifest, tok_dir, shard_size=5, batch_seconds=6.0, progress=False, log=lambda s: None)
        assert sha(manifest) == before  # the input is never modified
        assert result.manifest == corpus / name.replace(".jsonl", ".codes.jsonl")
        assert result.shards == len(list(result.codes_dir.glob("shard-*.safetensors"))) >= 1
        rows, src = load_manifest(result.manifest), load_manifest(manifest)
        reader = CodesReader(result.manifest)
        refs = 0
        for row, orig in zip(rows, src):
            holders = [row] + list(row.conversation or []) + list(row.segments or [])
            originals = [orig] + list(orig.conversation or []) + list(orig.segments or [])
            for obj, o in zip(holders, originals):
                assert obj.audio == o.audio
                if obj.audio is None:
                    assert obj.codes is None
                    continue
                refs += 1
                audio = load_audio(corpus / obj.audio, 16000)
                assert torch.equal(reader.load(obj.codes), tok.encode(audio.samples, audio.sample_rate))
        assert refs >= len(rows)


def test_resume_keeps_finished_shards_and_workers_give_the_same_files(corpus, tok_dir, tmp_path):
    manifest = corpus / "asr_train.jsonl"
    out = tmp_path / "a" / "asr.codes.jsonl"
    first = tokenize_manifest(manifest, tok_dir, out=out, shard_size=10, progress=False, log=lambda s: None)
    assert first.computed == first.shards == 5  # 44 clips
    stamps = {p.name: p.stat().st_mtime_ns for p in first.codes_dir.iterdir()}
    (first.codes_dir / "shard-00002.safetensors").unlink()  # as if the run died before this shard
    AcceleratorState._reset_state(reset_partial_state=True)
    again = tokenize_manifest(manifest, tok_dir, out=out, shard_size=10, progress=False, log=lambda s: None)
    assert again.computed == 1
    for p in again.codes_dir.iterdir():
        if p.name != "shard-00002.safetensors":
            assert p.stat().st_mtime_ns == stamps[p.name]
    # the manifest lives elsewhere: audio paths are rewritten so they still resolve
    row = load_manifest(out)[0]
    assert Path(row.audio).is_absolute() and Path(row.audio).is_file()
    assert row.codes.path == "codes/asr.codes/shard-00000.safetensors"
    AcceleratorState._reset_state(reset_partial_state=True)
    pooled = tokenize_manifest(manifest, tok_dir, out=tmp_path / "b" / "asr.codes.jsonl", shard_size=10, workers=2,
                               progress=False, log=lambda s: None)
    assert pooled.computed == 5
    a, b = CodesReader(out), CodesReader(pooled.manifest)
    for ra, rb in zip(load_manifest(out), load_manifest(pooled.manifest)):
        assert torch.equal(a.load(ra.codes), b.load(rb.codes))


def test_workers_start_no_pool_for_a_single_shard(corpus, tok_dir, tmp_path, monkeypatch):
    import audio_tokenizer.cache as cache

    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for one shard")

    monkeypatch.setattr(cache, "_run_pool", no_pool)
    one = tokenize_manifest(corpus / "asr_dev.jsonl", tok_dir, out=tmp_path / "dev.codes.jsonl", workers=2,
                            progress=False, log=lambda s: None)
    assert one.shards == one.computed == 1 and CodesReader(one.manifest).load(load_manifest(one.manifest)[0].codes).ndim == 2


def test_another_tokenizer_invalidates_old_shards(corpus, tok_dir, tmp_path):
    manifest = corpus / "asr_dev.jsonl"
    out = tmp_path / "dev.codes.jsonl"
    tokenize_manifest(manifest, tok_dir, out=out, progress=False, log=lambda s: None)
    other = tmp_path / "other_tok"
    initialised_tokenizer(seed=4).save_pretrained(other)
    AcceleratorState._reset_state(reset_partial_state=True)
    assert tokenize_manifest(manifest, other, out=out, progress=False, log=lambda s: None).computed == 1


def test_bad_audio_stops_with_its_name_or_is_skipped(corpus, tok_dir, tmp_path):
    rows = [json.loads(line) for line in (corpus / "asr_dev.jsonl").read_text().splitlines()]
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    sf.write(audio_dir / "short.wav", [0.1] * 400, 16000)  # 25 ms: less than one frame
    sf.write(audio_dir / "stereo48k.wav", [[0.1, -0.1], [0.2, 0.0]] * 24000, 48000)  # downmixed + resampled
    lines = [{**rows[0], "audio": str(corpus / rows[0]["audio"])},
             {"id": "short", "task": "asr", "audio": "audio/short.wav", "text": "Hi."},
             {"id": "stereo", "task": "asr", "audio": "audio/stereo48k.wav", "text": "Hi."}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(AudioError, match="short.wav: too short"):
        tokenize_manifest(manifest, tok_dir, progress=False, log=lambda s: None)
    AcceleratorState._reset_state(reset_partial_state=True)
    result = tokenize_manifest(manifest, tok_dir, skip_bad=True, progress=False, log=lambda s: None)
    assert result.skipped == ["audio/short.wav"]
    out = load_manifest(result.manifest)
    assert out[0].codes is not None and out[1].codes is None and out[2].codes is not None
    assert CodesReader(result.manifest).load(out[2].codes).shape == (13, 8)  # 1 s at 12.5 Hz


def test_cli_tokenize_and_its_errors(corpus, tok_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["data", "tokenize", str(corpus / "asr_dev.jsonl"), "--tokenizer", str(tok_dir),
                              "--out", str(tmp_path / "dev.codes.jsonl"), "--no-progress", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "4 clips in 1 shards (1 written now)" in res.output
    AcceleratorState._reset_state(reset_partial_state=True)
    res = runner.invoke(app, ["data", "tokenize", str(corpus / "asr_dev.jsonl"), "--tokenizer", str(tmp_path / "nope"),
                              "--no-progress"])
    assert res.exit_code == 2 and "nope: not a saved audio tokenizer" in res.output
    res = runner.invoke(app, ["data", "tokenize", str(corpus / "asr_dev.jsonl"), "--tokenizer", str(tok_dir),
                              "--out", str(corpus / "asr_dev.jsonl"), "--no-progress"])
    assert res.exit_code == 2 and "must differ from the input" in res.output


def test_known_codes_encode_a_shared_clip_once(corpus, tok_dir, tmp_path):
    """The spoken questions are the ASR clips: with one KnownCodes across both manifests, the second encodes
    only what the first lacked, its rows point into the first's shards and load the same codes as encode();
    a rerun computes nothing; another tokenizer does not reuse the first one's shards."""
    tok = AudioTokenizer.from_pretrained(tok_dir)
    known = KnownCodes()
    quiet = {"progress": False, "log": lambda s: None, "known": known}
    first = tokenize_manifest(corpus / "asr_train.jsonl", tok_dir, out=tmp_path / "a" / "asr.codes.jsonl", **quiet)
    AcceleratorState._reset_state(reset_partial_state=True)
    second = tokenize_manifest(corpus / "spoken_qa_train.jsonl", tok_dir, out=tmp_path / "b" / "qa.codes.jsonl",
                               shard_size=5, **quiet)
    assert first.reused == 0 and second.reused > 0 and second.clips > second.reused  # questions shared, replies not
    encoded = 0
    for shard in second.codes_dir.glob("shard-*.safetensors"):
        with safe_open(str(shard), framework="pt") as f:
            encoded += len(list(f.keys()))
    assert encoded == second.clips - second.reused  # only the clips the first manifest lacked were encoded
    reader = CodesReader(second.manifest)
    into_first = 0
    for row in load_manifest(second.manifest):
        for turn in row.conversation:
            into_first += (tmp_path / "a") in (tmp_path / "b" / turn.codes.path).resolve().parents
            audio = load_audio(turn.audio if Path(turn.audio).is_absolute() else tmp_path / "b" / turn.audio, 16000)
            assert torch.equal(reader.load(turn.codes), tok.encode(audio.samples, audio.sample_rate))
    assert into_first == second.reused
    rerun = {**quiet, "known": KnownCodes()}  # a resumed recipe step: the same calls in the same order
    AcceleratorState._reset_state(reset_partial_state=True)
    assert tokenize_manifest(corpus / "asr_train.jsonl", tok_dir, out=tmp_path / "a" / "asr.codes.jsonl",
                             **rerun).computed == 0
    AcceleratorState._reset_state(reset_partial_state=True)
    again = tokenize_manifest(corpus / "spoken_qa_train.jsonl", tok_dir, out=tmp_path / "b" / "qa.codes.jsonl",
                              shard_size=5, **rerun)
    assert again.computed == 0 and again.reused == second.reused
    other = tmp_path / "other_tokenizer"
    initialised_tokenizer(seed=4).save_pretrained(other)
    AcceleratorState._reset_state(reset_partial_state=True)
    assert tokenize_manifest(corpus / "asr_dev.jsonl", other, out=tmp_path / "d" / "dev.codes.jsonl", **quiet).reused == 0
    assert known.tokenizer is not None and not any(str(tmp_path / "a") in s for s, _ in known.where.values())

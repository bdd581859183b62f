"""The synthetic corpus: valid manifests, splits, voices, determinism, resume, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from omni.audio.io import probe_audio
from omni.cli.main import app
from omni.data.check import check_manifest
from omni.data.manifest import load_manifest
from omni.data.synth.config import CorpusConfig
from omni.data.synth.corpus import build_corpus
from omni.data.synth.plan import plan_corpus

SMALL = dict(utterances=60, held_out_voices=["espeak:en-029+m2"], eval_renders=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(CorpusConfig(seed=1, **SMALL), out, workers=2, progress=False)
    return out


def digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "corpus.json"}


def test_all_manifests_present_and_valid(corpus):
    names = {p.name for p in corpus.glob("*.jsonl")}
    for kind in ("asr", "tts", "spoken_qa", "spoken_chat", "interleaved", "text", "preference"):
        for split in ("train", "dev", "test"):
            assert f"{kind}_{split}.jsonl" in names
    assert "asr_test_unseen.jsonl" in names
    for path in sorted(corpus.glob("*.jsonl")):
        report = check_manifest(path, progress=False)
        assert report.ok, [e.message(str(path)) for e in report.errors[:3]]
    info = json.loads((corpus / "corpus.json").read_text())
    assert info["complete"] and info["utterances"] == len(list((corpus / "audio" / "16k").iterdir()))


def test_audio_rates_and_row_durations(corpus):
    asr = load_manifest(corpus / "asr_train.jsonl")
    tts = load_manifest(corpus / "tts_train.jsonl")
    assert all(r.audio.startswith("audio/16k/") for r in asr) and all(r.audio.startswith("audio/24k/") for r in tts)
    for row in asr[:10] + tts[:10]:
        info = probe_audio(corpus / row.audio)
        assert info.sample_rate == (16000 if row.task == "asr" else 24000) and info.channels == 1
        assert abs(info.duration - row.duration) < 1e-3
        assert 0.3 < info.duration < 10
    qa = load_manifest(corpus / "spoken_qa_train.jsonl")[0]
    user, assistant = qa.conversation
    assert user.audio.startswith("audio/16k/") and assistant.audio.startswith("audio/24k/")
    assert qa.meta["answer_key"] and qa.meta["answer_key"].lower() in assistant.text.lower()


def prompt_texts(corpus: Path, split: str) -> set[str]:
    return {r.conversation[0].text for r in load_manifest(corpus / f"spoken_qa_{split}.jsonl")}


def test_split_by_sentence_and_held_out_voices(corpus):
    train, dev, test = (prompt_texts(corpus, s) for s in ("train", "dev", "test"))
    assert train and dev and test
    assert not (train & dev) and not (train & test) and not (dev & test)
    unseen = load_manifest(corpus / "asr_test_unseen.jsonl")
    assert {r.speaker for r in unseen} == {"espeak:en-029+m2"}
    assert {r.text for r in unseen} <= test
    for split in ("train", "dev", "test"):
        speakers = {r.speaker for r in load_manifest(corpus / f"asr_{split}.jsonl")}
        assert "espeak:en-029+m2" not in speakers
    # every fact asked in test is asked in train too (in another phrasing)
    train_facts = {r.meta["fact_id"] for r in load_manifest(corpus / "text_train.jsonl") if r.meta}
    assert {r.meta["fact_id"] for r in load_manifest(corpus / "spoken_qa_test.jsonl")} <= train_facts


def test_tts_test_sentences_are_unseen_in_tts_training(corpus):
    train_texts = {r.text for r in load_manifest(corpus / "tts_train.jsonl")}
    test_rows = load_manifest(corpus / "tts_test.jsonl")
    assert test_rows and not ({r.text for r in test_rows} & train_texts)
    reply_voices = set(json.loads((corpus / "corpus.json").read_text())["tts_voices"])
    assert {r.speaker for r in test_rows} <= reply_voices


def test_preference_pairs_differ_in_answer(corpus):
    rows = load_manifest(corpus / "preference_train.jsonl")
    assert rows
    for r in rows:
        key = r.meta["answer_key"].lower()
        assert key in r.chosen.text.lower() and r.chosen.text != r.rejected.text
        assert r.prompt[0].audio and r.chosen.audio and r.rejected.audio


def test_interleaved_documents_keep_one_voice(corpus):
    docs = load_manifest(corpus / "interleaved_train.jsonl")
    assert docs
    lo, hi = CorpusConfig().doc_sentences
    for d in docs:
        assert lo <= len(d.segments) <= hi and all(s.audio and s.text for s in d.segments)


def test_deterministic_for_a_seed_and_resumable(corpus, tmp_path):
    again = tmp_path / "again"
    build_corpus(CorpusConfig(seed=1, **SMALL), again, workers=1, progress=False)
    assert digest(again) == digest(corpus)  # every manifest and audio file, byte for byte
    # resume: lost files are rendered again, identical
    victims = sorted((again / "audio" / "24k").iterdir())[:3]
    for v in victims:
        v.unlink()
    build_corpus(CorpusConfig(seed=1, **SMALL), again, workers=2, progress=False)
    assert digest(again) == digest(corpus)
    with pytest.raises(ValueError, match="different config .*seed"):
        build_corpus(CorpusConfig(seed=2, **SMALL), again, progress=False)


def test_noisy_sft_fraction_adds_wrong_replies_to_train_text_only():
    from omni.data.synth.corpus import _text_rows

    clean, noisy = plan_corpus(CorpusConfig(seed=1, **SMALL)), plan_corpus(CorpusConfig(seed=1, noisy_sft_fraction=0.5,
                                                                                      **SMALL))
    assert [u.utt_id + u.text for u in noisy.utterances] == [u.utt_id + u.text for u in clean.utterances]
    assert not clean.noisy_facts
    facts = {ex.fact_id for ex in noisy.exchanges["train"]}
    assert noisy.noisy_facts <= facts and len(noisy.noisy_facts) == round(0.5 * len(facts))
    base, rows = _text_rows(clean, "train"), _text_rows(noisy, "train")
    assert rows[:len(base)] == base  # the clean rows first, unchanged
    extra = rows[len(base):]
    want = [ex for ex in noisy.exchanges["train"] if ex.fact_id in noisy.noisy_facts]
    assert len(extra) == len(want) > 0
    for row, ex in zip(extra, want):
        assert row.conversation[0].text == ex.prompt and row.conversation[1].text == ex.wrong_reply
        assert ex.answer_key.lower() not in row.conversation[1].text.lower()
        assert row.meta["wrong_reply"] is True and row.meta["fact_id"] in noisy.noisy_facts
    for split in ("dev", "test"):
        assert _text_rows(noisy, split) == _text_rows(clean, split)


def test_corpus_built_before_a_new_config_field_still_resumes(corpus, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    info = json.loads((corpus / "corpus.json").read_text())
    del info["config"]["noisy_sft_fraction"]  # as written before the field existed
    (old / "corpus.json").write_text(json.dumps(info))
    from omni.data.synth.corpus import _check_existing

    _check_existing(old, CorpusConfig(seed=1, **SMALL), overwrite=False)  # the default: the same corpus
    with pytest.raises(ValueError, match="noisy_sft_fraction"):
        _check_existing(old, CorpusConfig(seed=1, noisy_sft_fraction=0.5, **SMALL), overwrite=False)


def test_other_seed_gives_other_corpus():
    a, b = plan_corpus(CorpusConfig(seed=1, **SMALL)), plan_corpus(CorpusConfig(seed=2, **SMALL))
    assert [u.text for u in a.utterances] != [u.text for u in b.utterances]
    assert [u.text for u in a.utterances] == [u.text for u in plan_corpus(CorpusConfig(seed=1, **SMALL)).utterances]


def test_plan_size_follows_utterances():
    small = plan_corpus(CorpusConfig(utterances=100, held_out_voices=[]))
    big = plan_corpus(CorpusConfig(utterances=400, held_out_voices=[]))
    n_small = sum(len(v) for v in small.prompts.values())
    n_big = sum(len(v) for v in big.prompts.values())
    assert 3.0 < n_big / n_small < 5.0


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(ValueError, match="voices: unknown voice 'espeak:klingon'"):
        plan_corpus(CorpusConfig(voices=["espeak:klingon"]))


def test_cli_synth_then_check(tmp_path):
    runner = CliRunner()
    out = tmp_path / "c"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--utterances", "20", "--seed", "4",
                                 "--no-progress", "held_out_voices=[]", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "asr_train.jsonl" in result.output
    manifests = sorted(str(p) for p in out.glob("*.jsonl"))
    result = runner.invoke(app, ["data", "check", *manifests, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"checked {len(manifests)} manifest(s)" in result.output and ": 0 bad" in result.output
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "eval_renders=0"])
    assert result.exit_code == 2 and "eval_renders" in result.output

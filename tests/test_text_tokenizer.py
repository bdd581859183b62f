"""Byte-level BPE tokenizer: merge order worked by hand, lossless round trip, offline save/load."""

from __future__ import annotations

import json

import pytest

from omni.data.synth.text import all_exchanges
from omni.text.tokenizer import load_tokenizer, manifest_texts, train_bpe_tokenizer


def merges(tok) -> list[tuple[str, str]]:
    return [tuple(m) for m in json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]]


def test_merges_follow_pair_frequency_worked_by_hand():
    # words: "aaab" x6, "aab" x3, "ab" x3, plus "hello"/"world" (pairs seen 3 times each)
    # pass 1: (a,a) 6*2 + 3 = 15 beats (a,b) 6 + 3 + 3 = 12 -> merge "aa"
    # pass 2: aaab = aa|a|b, aab = aa|b, ab = a|b: (a,b) 6 + 3 = 9 beats (aa,a) 6 -> merge "ab"
    # pass 3: aaab = aa|ab (6), aab = aa|b (3) -> merge "aaab"
    texts = ["aaab aaab", "aab ab", "hello world"] * 3
    tok = train_bpe_tokenizer(texts, vocab_size=262, min_frequency=1)
    assert merges(tok)[:3] == [("a", "a"), ("a", "b"), ("aa", "ab")]
    assert len(tok) == 262


def test_round_trip_is_lossless_and_never_unknown():
    texts = [e.prompt for e in all_exchanges()[:3000]] + [e.reply for e in all_exchanges()[:3000]]
    tok = train_bpe_tokenizer(texts, vocab_size=600)
    assert 300 < len(tok) <= 600 and tok.unk_token is None  # stops early once every word is one token
    for text in texts[:200] + ["Unseen words: zyxw QQ 1234 ünïcödé 😀 tabs\tand\nnewlines"]:
        ids = tok(text)["input_ids"]
        assert tok.decode(ids) == text
    compressed = sum(len(tok(t)["input_ids"]) for t in texts) / sum(len(t) for t in texts)
    assert compressed < 0.35  # merges do their job on in-domain text
    special = tok.convert_tokens_to_ids("<|im_start|>")
    assert tok("<|im_start|>user")["input_ids"][0] == special


def test_save_and_load_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = train_bpe_tokenizer(["one two three", "four five six"] * 5, vocab_size=280)
    tok.save_pretrained(str(tmp_path / "tok"))
    again = load_tokenizer(tmp_path / "tok")
    assert again("two three four")["input_ids"] == tok("two three four")["input_ids"]
    assert again.eos_token == again.pad_token == "<|endoftext|>"
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe_tokenizer(["x"], vocab_size=100)


def test_manifest_texts_collects_every_text(tmp_path):
    from omni.data.manifest import ManifestRow, Turn, write_manifest

    rows = [ManifestRow(id="a", task="asr", audio="x.wav", text="A."),
            ManifestRow(id="b", task="preference", prompt=[Turn("user", "P.")], chosen=Turn("assistant", "C."),
                        rejected=Turn("assistant", "R."))]
    write_manifest(tmp_path / "m.jsonl", rows)
    assert manifest_texts([tmp_path / "m.jsonl"]) == ["A.", "P.", "C.", "R."]

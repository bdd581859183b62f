"""Evaluation maths: normalisers, WER/CER counts against jiwer, summed totals, MCD, report comparison."""

from __future__ import annotations

import math

import jiwer
import numpy as np
import pytest

from omni.eval.compare import compare_reports
from omni.eval.mcd import (
    DB_FACTOR,
    McdConfig,
    mcd_aligned,
    mcd_dtw,
    mel_cepstra,
    mel_cepstral_distortion,
)
from omni.eval.metrics import ErrorCounts, char_counts, score_pair, word_counts
from omni.eval.normalize import (
    basic_normalize,
    english_normalize,
    normalize,
    normalizer_for,
    scoring_units,
)
from omni.eval.results import UtteranceResult, bucket_totals, summarize

PAIRS = [  # (reference, hypothesis) after normalisation
    ("turn on the kitchen lights", "turn on kitchen light please"),
    ("what is 2 plus 3", "what is 2 plus 3"),
    ("set a timer for 10 minutes", "set timer for ten minute"),
    ("hello", "yellow hello there"),
    ("the capital of france is paris", ""),
]


# ------------------------------------------------------------------------------------------ normalisation
def test_english_normaliser_numbers_punctuation_casing():
    assert english_normalize("Set a timer for TEN minutes!") == "set a timer for 10 minutes"
    assert english_normalize("It's 3:30 PM, Mr. Smith.") == "it is 3 30 pm mister smith"
    assert english_normalize("twenty-five") == english_normalize("25") == "25"
    assert english_normalize("Colour, favourite...") == "color favorite"
    assert english_normalize("It costs 3.5 dollars, 20%.") == "it costs $3.5 20%"
    # casing and punctuation alone never make an error
    assert score_pair("Turn on the kitchen lights.", "turn ON the KITCHEN lights", "en").words.errors == 0
    assert score_pair("What is two plus three?", "what is 2 plus 3", "en").words.errors == 0


def test_basic_normaliser_for_other_languages():
    assert basic_normalize("  ¿Qué TAL?  «Bien», gracias. ") == "qué tal bien gracias"
    assert basic_normalize("Straße ÉCOLE") == "strasse école"  # casefold, accents kept
    assert basic_normalize("नमस्ते, दुनिया!") == "नमस्ते दुनिया"  # combining vowel signs kept
    assert basic_normalize("ｆｕｌｌ－ｗｉｄｔｈ") == "full width"  # NFKC
    assert normalizer_for("de") is basic_normalize and normalizer_for("en-US").__name__ == "english_normalize"
    assert normalize("Zehn Minuten!", "de") == "zehn minuten"  # no English number rules for German
    assert normalize("Hello, World", "en", kind="none") == "Hello, World"
    with pytest.raises(ValueError, match="normalizer"):
        normalizer_for("en", "fancy")


def test_character_languages_use_cer_without_spaces():
    assert scoring_units("zh") == "char" and scoring_units("ja-JP") == "char" and scoring_units("en") == "word"
    s = score_pair("今天 天气 很好。", "今天天气不好", "zh")
    assert s.unit == "char" and s.counts is s.chars
    assert (s.chars.hits, s.chars.substitutions, s.chars.deletions, s.chars.insertions) == (5, 1, 0, 0)
    assert s.chars.rate == pytest.approx(1 / 6)


# ------------------------------------------------------------------------------------------ WER / CER vs jiwer
def test_counts_sum_to_jiwer_corpus_figures():
    refs, hyps = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    words = ErrorCounts.total(word_counts(r, h) for r, h in PAIRS)
    o = jiwer.process_words(refs, hyps)
    assert (words.hits, words.substitutions, words.deletions, words.insertions) == (
        o.hits, o.substitutions, o.deletions, o.insertions)
    assert words.rate == pytest.approx(jiwer.wer(refs, hyps))
    chars = ErrorCounts.total(char_counts(r, h) for r, h in PAIRS)
    assert chars.rate == pytest.approx(jiwer.cer(refs, hyps))
    # summed counts, not the mean of per-utterance rates (which differs here)
    mean_rate = np.mean([word_counts(r, h).rate for r, h in PAIRS])
    assert not math.isclose(words.rate, mean_rate)


def test_hand_worked_counts():
    c = word_counts("the cat sat on the mat", "the cat sit on mat")
    assert (c.hits, c.substitutions, c.deletions, c.insertions) == (4, 1, 1, 0)
    assert c.reference_length == 6 and c.rate == pytest.approx(2 / 6)
    c = word_counts("a b c", "a x b c y")
    assert (c.hits, c.substitutions, c.deletions, c.insertions) == (3, 0, 0, 2)
    assert c.rate == pytest.approx(2 / 3)
    assert word_counts("", "").rate is None and word_counts("", "a b").insertions == 2
    assert word_counts("a b", "").deletions == 2


def test_summaries_group_and_bucket_by_summing():
    results = []
    for i, (r, h) in enumerate(PAIRS):
        res = UtteranceResult(i, i + 1, f"u{i}", group="A" if i < 2 else "B", language="en", duration=2.0 + 4 * i,
                              reference=r, hypothesis=h, seconds=0.5)
        res.score = score_pair(r, h, "en")
        results.append(res)
    results.append(UtteranceResult(9, 10, "bad", error="unreadable"))
    t = summarize(results)
    assert t["utterances"] == 6 and t["failed"] == 1 and t["scored"] == 5
    scores = [r.score for r in results if r.score is not None]
    assert scores[2].hypothesis == "set timer for 10 minute"  # "ten" normalised like the reference's "10"
    assert t["wer"] == pytest.approx(jiwer.wer([s.reference for s in scores], [s.hypothesis for s in scores]))
    assert t["rtf"] == pytest.approx(2.5 / sum(2.0 + 4 * i for i in range(5)))
    buckets = bucket_totals(results, 5.0, 30.0)
    assert list(buckets) == ["0-5s", "5-10s", "10-15s", "15-20s"]  # 2, 6, 10, 14, 18 s
    assert sum(b["words"]["reference_length"] for b in buckets.values()) == t["words"]["reference_length"]


# ------------------------------------------------------------------------------------------ MCD
def test_mcd_formula_by_hand():
    a = np.array([[9.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    b = np.array([[-3.0, 3.0, 1.0, 0.0], [7.0, 1.0, 1.0, 1.0]])  # c0 differs too: it is excluded
    expected = (10 / np.log(10) * np.sqrt(2 * (9 + 0 + 4)) + 0.0) / 2
    assert mcd_aligned(a, b) == pytest.approx(expected)
    assert DB_FACTOR == pytest.approx(6.1418, abs=1e-4)
    # DTW absorbs a repeated frame: a sequence against its time-stretched self is 0
    stretched = np.repeat(a, [3, 2], axis=0)
    assert mcd_dtw(a, stretched) == pytest.approx(0.0)


def test_mcd_on_waveforms():
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 24000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    assert mel_cepstral_distortion(tone, 24000, tone, 24000) == pytest.approx(0.0, abs=1e-9)
    # the same signal at 16 kHz is close (resampling only); white noise is far
    from omni.audio.io import resample

    near = mel_cepstral_distortion(tone, 24000, resample(tone.astype(np.float32), 24000, 16000), 16000)
    far = mel_cepstral_distortion(tone, 24000, 0.3 * rng.standard_normal(24000), 24000)
    assert 0 <= near < 1.0 < far
    assert mel_cepstra(tone, 24000, McdConfig(n_cepstra=12)).shape[1] == 13


# ------------------------------------------------------------------------------------------ compare
def test_compare_rows():
    a = {"totals": {"wer": 0.2, "words": {"substitutions": 3}}, "by_group": {"x": {"wer": 0.1}}}
    b = {"totals": {"wer": 0.1, "words": {"substitutions": 1}}, "by_group": {"x": {"wer": 0.3}, "y": {"wer": 0.5}}}
    rows = {r.name: r for r in compare_reports(a, b)}
    assert rows["wer"].delta == pytest.approx(-0.1) and rows["wer"].relative == pytest.approx(-0.5)
    assert rows["substitutions"].delta == -2
    assert rows["wer group x"].delta == pytest.approx(0.2)
    assert rows["wer group y"].a is None and rows["wer group y"].delta is None

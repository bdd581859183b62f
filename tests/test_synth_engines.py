"""Tests for omni.data.synth.engines: espeak-ng in-process, flite by subprocess."""

from __future__ import annotations

import multiprocessing as mp
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from omni.data.synth import engines
from omni.data.synth.engines import (
    ESPEAK_VOICES,
    FLITE_VOICES,
    Speech,
    SynthesisError,
    Voice,
    available_voices,
    flite_available,
    get_voice,
    synthesize,
)

SHORT = "The cat sat on the mat."
LONG = "The cat sat on the mat, and then it slowly walked across the garden to the old gate."
VOICE = "espeak:en-us+m3"
needs_flite = pytest.mark.skipif(not flite_available(), reason="flite binary not installed")


def median_f0(speech: Speech) -> float:
    """Median YIN f0 in Hz over the frames librosa finds voiced-ish (50..500 Hz)."""
    librosa = pytest.importorskip("librosa")
    f0 = librosa.yin(speech.samples, fmin=50, fmax=500, sr=speech.sample_rate)
    return float(np.median(f0))


def leading_silence_s(speech: Speech, rel: float = 0.01) -> float:
    """Seconds before the first sample louder than ``rel`` of the peak."""
    x = np.abs(speech.samples)
    return int(np.argmax(x > rel * x.max())) / speech.sample_rate


def trailing_silence_s(speech: Speech, rel: float = 0.01) -> float:
    x = np.abs(speech.samples[::-1])
    return int(np.argmax(x > rel * x.max())) / speech.sample_rate


# ---- espeak-ng ---------------------------------------------------------------------------


def test_espeak_output_is_nonsilent_float32_mono_in_range():
    speech = synthesize(SHORT, VOICE)
    x = speech.samples
    assert speech.sample_rate == get_voice(VOICE).sample_rate == 22050
    assert x.dtype == np.float32 and x.ndim == 1
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert np.sqrt(np.mean(x**2)) > 0.02  # speech, not silence
    assert 0.8 < speech.duration < 4.0  # six words at ~175 words per minute


def test_duration_grows_with_text_and_shrinks_with_rate():
    short, long = synthesize(SHORT, VOICE), synthesize(LONG, VOICE)
    assert long.duration > 2 * short.duration
    fast = synthesize(LONG, VOICE, rate=1.5)
    slow = synthesize(LONG, VOICE, rate=0.7)
    assert fast.duration < 0.8 * long.duration
    assert slow.duration > 1.2 * long.duration


def test_pitch_factor_moves_f0_in_the_right_direction():
    base = median_f0(synthesize(LONG, VOICE))
    low = median_f0(synthesize(LONG, VOICE, pitch=0.8))
    high = median_f0(synthesize(LONG, VOICE, pitch=1.25))
    assert low < base < high
    assert high / base == pytest.approx(1.25, rel=0.12)
    assert low / base == pytest.approx(0.8, rel=0.12)


def test_pitch_and_rate_map_to_espeak_parameters():
    assert engines._espeak_parameters(1.0, 1.0) == (175, 50)
    assert engines._espeak_parameters(2.0, 2.0) == (350, 100)  # one octave up = top of table
    assert engines._espeak_parameters(0.5, 0.5) == (88, 0)
    assert engines._espeak_parameters(1.2, 2 ** 0.5)[1] == 75


def test_same_arguments_give_bit_identical_samples():
    # f2 is breathy: its noise generator is seeded from the clock unless we seed it.
    first = synthesize(LONG, "espeak:en-us-nyc+f2", rate=1.1)
    # Other voices in between would shift espeak-ng's internal state if it were reused.
    synthesize(SHORT, "espeak:en-us+edward", pitch=1.3)
    synthesize(SHORT, "espeak:en-gb-x-rp+f5")
    time.sleep(1.05)  # cross a second boundary (time(NULL) granularity)
    again = synthesize(LONG, "espeak:en-us-nyc+f2", rate=1.1)
    np.testing.assert_array_equal(first.samples, again.samples)
    other = synthesize(LONG, "espeak:en-us-nyc+m6", rate=1.1)
    assert not np.array_equal(other.samples, first.samples)  # and the voice matters


def test_trim_keeps_at_most_a_tenth_of_a_second_of_silence():
    text = '"Hello, world!" ...'  # espeak-ng pauses around the quote and the ellipsis
    raw = synthesize(text, VOICE, trim=False)
    assert leading_silence_s(raw) > 0.115 and trailing_silence_s(raw) > 0.3
    speech = synthesize(text, VOICE)
    assert leading_silence_s(speech) <= 0.105 and trailing_silence_s(speech) <= 0.105
    # The trimmer itself, on one second of silence around a tone:
    sr = 16000
    tone = 0.5 * np.sin(2 * np.pi * 200 * np.arange(sr // 2) / sr).astype(np.float32)
    padded = Speech(np.concatenate([np.zeros(sr, np.float32), tone, np.zeros(sr, np.float32)]), sr)
    trimmed = engines._trim(padded)
    assert leading_silence_s(trimmed) == pytest.approx(0.1, abs=0.011)
    assert trailing_silence_s(trimmed) == pytest.approx(0.1, abs=0.011)
    silence = Speech(np.zeros(sr, np.float32), sr)
    assert engines._trim(silence) is silence  # nothing to measure against: left alone


def test_unknown_voice_names_the_id_and_lists_available_ones():
    with pytest.raises(ValueError, match="espeak:klingon") as info:
        get_voice("espeak:klingon")
    assert "espeak:en-us+m3" in str(info.value)
    with pytest.raises(ValueError, match="variant"):  # espeak-ng itself would ignore it
        synthesize(SHORT, Voice("espeak:en-us+nosuch", "espeak", "en-us+nosuch", 22050))


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_rejected(text):
    with pytest.raises(ValueError, match="empty"):
        synthesize(text, VOICE)


def test_out_of_range_factors_are_rejected():
    with pytest.raises(ValueError, match="rate"):
        synthesize(SHORT, VOICE, rate=5.0)
    with pytest.raises(ValueError, match="pitch"):
        synthesize(SHORT, VOICE, pitch=0.1)


def test_espeak_engine_failure_is_a_runtime_error_with_the_engine_message(tmp_path):
    runtime = engines._EspeakRuntime()
    runtime.data_view = tmp_path / "missing"  # no phoneme data there
    with pytest.raises(SynthesisError, match="espeak-ng could not initialise: .*No such file"):
        runtime.synthesize(SHORT, "en-us+m3", 1.0, 1.0)
    assert issubclass(SynthesisError, RuntimeError)
    assert synthesize(SHORT, VOICE).duration > 0.5  # the process-wide runtime is unharmed


def test_private_view_is_private_and_maps_lowercase_accents():
    root = engines._espeak_runtime().data_view.parent
    assert engines._private_dir(root)
    assert not stat.S_IMODE(root.stat().st_mode) & 0o077
    for accent, (lang_file, _, _) in engines._ESPEAK_ACCENTS.items():
        assert (root / "data" / "lang" / accent).resolve().name == Path(lang_file).name


# ---- catalog -----------------------------------------------------------------------------


def test_catalog_is_consistent_with_shipped_espeak_data():
    import espeakng_loader

    data = Path(espeakng_loader.get_data_path())
    ids = [v.id for v in ESPEAK_VOICES + FLITE_VOICES]
    assert len(ids) == len(set(ids))
    assert 18 <= len(ESPEAK_VOICES) <= 24
    for voice in ESPEAK_VOICES:
        accent, variant = voice.name.split("+")
        assert (data / "lang" / engines._ESPEAK_ACCENTS[accent][0]).is_file(), accent
        assert (data / "voices" / "!v" / variant).is_file(), variant
        assert voice.language == "en" and len(voice.region) == 2 and voice.gender
    assert {v.region for v in ESPEAK_VOICES} >= {"US", "GB"}
    assert {v.gender for v in ESPEAK_VOICES} == {"male", "female"}


@pytest.mark.parametrize("voice", ESPEAK_VOICES, ids=lambda v: v.id)
def test_every_espeak_voice_renders(voice):
    speech = synthesize("Good morning, how are you?", voice, rate=1.1, pitch=1.1)
    assert speech.sample_rate == voice.sample_rate
    assert 0.5 < speech.duration < 4.0
    assert np.sqrt(np.mean(speech.samples**2)) > 0.02


def test_available_voices_without_flite(monkeypatch):
    monkeypatch.setattr(engines, "_flite_voice_names", lambda: frozenset())
    assert not engines.flite_available()
    assert available_voices("flite") == []
    assert available_voices() == list(ESPEAK_VOICES)
    with pytest.raises(ValueError, match="apt-get install flite"):
        get_voice("flite:slt")
    with pytest.raises(ValueError, match="engine"):
        available_voices("festival")


def test_flite_failure_carries_the_engine_message(tmp_path, monkeypatch):
    fake = tmp_path / "flite"  # a stand-in binary that lists voices, then fails to speak
    fake.write_text('#!/bin/sh\n[ "$1" = -lv ] && echo "Voices available: slt" && exit 0\n'
                    'echo "cst_error: out of cheese" >&2\nexit 3\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    engines._flite_voice_names.cache_clear()
    try:
        assert flite_available() and get_voice("flite:slt").sample_rate == 16000
        with pytest.raises(SynthesisError, match="out of cheese"):
            synthesize(SHORT, "flite:slt")
    finally:
        engines._flite_voice_names.cache_clear()


# ---- worker processes ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_render_the_same_samples_as_this_process(method):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    jobs = [(SHORT, "espeak:en-us+m3"), (LONG, "espeak:en-gb-scotland+f1"),
            (SHORT, "espeak:en-us+edward"), (LONG, "espeak:en-029+f3")]
    local = [synthesize(text, voice) for text, voice in jobs]
    with mp.get_context(method).Pool(2) as pool:
        remote = pool.starmap(synthesize, jobs)
    for a, b in zip(local, remote, strict=True):
        assert a.sample_rate == b.sample_rate
        np.testing.assert_array_equal(a.samples, b.samples)


# ---- flite ---------------------------------------------------------------------------------


@needs_flite
@pytest.mark.flite
@pytest.mark.parametrize("voice", FLITE_VOICES, ids=lambda v: v.id)
def test_flite_voices_render_at_their_native_rate(voice):
    speech = synthesize(SHORT, voice.id)
    assert speech.sample_rate == voice.sample_rate
    assert speech.samples.dtype == np.float32 and -1.0 <= speech.samples.min()
    assert np.sqrt(np.mean(speech.samples**2)) > 0.02
    assert 0.8 < speech.duration < 4.0


@needs_flite
@pytest.mark.flite
def test_flite_rate_pitch_and_determinism():
    base = synthesize(LONG, "flite:slt")
    assert synthesize(LONG, "flite:slt", rate=1.5).duration < 0.8 * base.duration
    assert median_f0(synthesize(LONG, "flite:slt", pitch=1.25)) > 1.1 * median_f0(base)
    np.testing.assert_array_equal(base.samples, synthesize(LONG, "flite:slt").samples)
    with pytest.raises(ValueError, match="pitch"):
        synthesize(SHORT, "flite:rms", pitch=1.2)

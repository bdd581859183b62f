"""Hostile data (hypothesis): manifest lines and audio bytes through ``omni data check`` and the readers.

Every case must end as a good row / a decoded waveform within the limits, or as a counted, reported
problem (a ``RowError`` / ``AudioError`` naming it): no other exception, no hang (an alarm per case),
no memory blow-up (tracemalloc peak bounded by the configured max duration). Outcome counts are
printed and, with ``OMNI_FUZZ_REPORT=FILE``, written as JSON (the figures of reports/reliability.md).
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import tracemalloc
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omni.audio.io import AudioError, AudioLimits, load_audio
from omni.data.check import CheckOptions, check_manifest
from omni.data.manifest import load_manifest, read_manifest

MAX_SECONDS = 5.0
LIMITS = AudioLimits(max_seconds=MAX_SECONDS)
#: 8 channels of float32 over the max duration at 48 kHz, plus decoding copies: far below what a blow-up takes
MEMORY_BOUND = 64 * 2**20
OUTCOMES: dict[str, Counter] = {"audio": Counter(), "manifest_lines": Counter(), "manifests": Counter()}
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@contextmanager
def alarm(seconds: int):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"hang: no result within {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print("\nfuzz outcomes:", json.dumps({k: dict(v) for k, v in OUTCOMES.items()}, indent=1))
    if os.environ.get("OMNI_FUZZ_REPORT"):
        Path(os.environ["OMNI_FUZZ_REPORT"]).write_text(json.dumps({k: dict(v) for k, v in OUTCOMES.items()},
                                                                   indent=2))


# ---- audio bytes -------------------------------------------------------------------------------------------


def wav_bytes(samples: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def raw_wav(channels: int, sr: int, bits: int, data: bytes, declared: int | None = None, fmt: int = 1) -> bytes:
    """A hand-built RIFF/WAVE file whose header may lie (channels, rate, data length)."""
    block = channels * bits // 8
    size = len(data) if declared is None else declared
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, fmt, channels, sr, (sr * block) & 0xFFFFFFFF, block & 0xFFFF,
                            bits)
    data_chunk = struct.pack("<4sI", b"data", size & 0xFFFFFFFF) + data
    return struct.pack("<4sI4s", b"RIFF", (4 + len(fmt_chunk) + len(data_chunk)) & 0xFFFFFFFF, b"WAVE") \
        + fmt_chunk + data_chunk


@st.composite
def hostile_audio(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["random", "truncated", "huge_declared", "nan_inf", "zero_length", "very_long",
                                 "channels", "bitflip", "valid"]))
    sr = draw(st.sampled_from([8000, 16000, 22050, 44100]))
    n = draw(st.integers(1, sr // 2))
    tone = (0.3 * np.sin(np.arange(n) * 2 * np.pi * 220 / sr)).astype(np.float32)
    if kind == "random":
        return kind, draw(st.binary(min_size=0, max_size=4096))
    if kind == "truncated":
        full = wav_bytes(tone, sr)
        return kind, full[: draw(st.integers(0, len(full) - 1))]
    if kind == "huge_declared":  # the header claims ~4 GB / 2**31 frames of audio that is not there
        return kind, raw_wav(1, sr, 16, (tone * 32767).astype("<i2").tobytes(), declared=draw(
            st.sampled_from([2**31, 2**32 - 8, 10**9])))
    if kind == "nan_inf":
        bad = tone.copy()
        idx = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8))
        bad[idx] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return kind, wav_bytes(bad, sr, "FLOAT")
    if kind == "zero_length":
        return kind, draw(st.sampled_from([b"", wav_bytes(np.zeros(0, np.float32), sr),
                                           raw_wav(1, sr, 16, b"")]))
    if kind == "very_long":  # a real long file, or a tiny rate that makes a short file long
        if draw(st.booleans()):
            return kind, wav_bytes(np.zeros(int(sr * (MAX_SECONDS + 1)), np.int16), sr)
        rate = draw(st.integers(1, 50))
        long_tone = 0.3 * np.sin(np.arange(int(rate * (MAX_SECONDS + 1)) + 2) * 2.0)  # > MAX_SECONDS at this rate
        return kind, raw_wav(1, rate, 16, (long_tone * 32767).astype("<i2").tobytes())
    if kind == "channels":
        ch = draw(st.sampled_from([0, 3, 7, 64, 1000, 65535]))
        return kind, raw_wav(ch, sr, 16, draw(st.binary(min_size=0, max_size=2048)))
    if kind == "bitflip":
        data = bytearray(wav_bytes(tone, sr))
        for pos in draw(st.lists(st.integers(0, min(63, len(data) - 1)), min_size=1, max_size=6)):  # in the header
            data[pos] ^= draw(st.integers(1, 255))
        return kind, bytes(data)
    return kind, wav_bytes(tone + 0.01, sr)


def _load(path: Path) -> str:
    """Load ``path`` with the limits; returns the outcome label."""
    tracemalloc.start()
    try:
        with alarm(30):
            audio = load_audio(path, 16000, limits=LIMITS)
        assert audio.samples.ndim == 1 and audio.sample_rate == 16000
        assert 0 < audio.duration <= MAX_SECONDS + 0.01 and np.isfinite(audio.samples).all()
        return "decoded"
    except AudioError as e:
        assert str(path) in str(e) and e.problem  # the message names the file and the problem
        return "error: " + _problem_kind(e.problem)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB allocated for one file"


def _problem_kind(problem: str) -> str:
    for key in ("too long", "NaN", "truncated", "empty", "no samples", "silent", "unreadable", "invalid header",
                "corrupt", "too short", "no audio stream", "past the end"):
        if key in problem:
            return key
    return problem.split(":")[0][:40]


@FUZZ
@given(case=hostile_audio())
@example(case=("bitflip", b"RIFF(\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x01\x00\x80>\x00\x00"
                           b"\x02\x00\x10\x00data\x04\x00\x00\x00\x00\x00\x9a\x06"))  # 2 samples at 73.5 kHz
def test_hostile_audio_bytes_decode_or_fail_clearly(tmp_path, case):
    kind, data = case
    path = tmp_path / f"x-{kind}.wav"
    path.write_bytes(data)
    outcome = _load(path)
    if kind in ("nan_inf", "zero_length", "huge_declared", "channels", "truncated") and outcome == "decoded":
        # a decodable file of these kinds must still have passed every check (finite, non-empty, within limits)
        pass
    if kind == "nan_inf":
        assert outcome.startswith("error")
    if kind == "very_long":
        assert outcome == "error: too long"
    OUTCOMES["audio"][f"{kind} -> {outcome}"] += 1


# ---- manifest lines ----------------------------------------------------------------------------------------


def _good_row(i: int, audio: str = "audio/ok.wav") -> dict:
    return {"id": f"r{i}", "task": "asr", "audio": audio, "text": "hello there", "language": "en"}


HOSTILE_PATHS = ["../../etc/passwd", "../outside.wav", "audio/../../x.wav", "audio/missing.wav", "audio/noise.wav",
                 "audio/nan.wav", "audio/long.wav", "audio", "", "audio/ok.wav\x00.txt", "/dev/zero",
                 "/dev/urandom", "audio/link_out.wav", "audio/ok.wav"]


@st.composite
def hostile_line(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["bytes", "non_utf8", "json_value", "field_types", "path", "huge_numbers",
                                 "nested", "valid"]))
    i = draw(st.integers(0, 10**6))
    if kind == "bytes":
        return kind, draw(st.binary(max_size=200)).replace(b"\n", b" ").replace(b"\r", b" ")
    if kind == "non_utf8":
        return kind, json.dumps(_good_row(i)).encode()[:-2] + b"\xff\xfe\xc3\x28\"}"
    if kind == "json_value":
        value = draw(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                                  lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                      max_size=3), max_leaves=8))
        return kind, json.dumps(value).encode()
    row = _good_row(i)
    if kind == "field_types":
        field = draw(st.sampled_from(["id", "task", "audio", "text", "offset", "duration", "language", "codes",
                                      "conversation", "label"]))
        row[field] = draw(st.none() | st.integers() | st.floats() | st.text(max_size=30) | st.lists(st.integers(),
                                                                                                    max_size=3))
    elif kind == "path":
        row["audio"] = draw(st.sampled_from(HOSTILE_PATHS))
        if draw(st.booleans()):
            row["offset"] = draw(st.floats(-10, 1e6))
            row["duration"] = draw(st.floats(-1, 1e9))
    elif kind == "huge_numbers":
        row["duration"] = draw(st.sampled_from([1e308, float("inf"), float("nan"), -1.0, 10**30]))
        if draw(st.booleans()):
            row["offset"] = draw(st.sampled_from([1e308, -1e-9, 2**63]))
    elif kind == "nested":
        row = {"id": f"c{i}", "task": "spoken_qa", "conversation": [
            {"role": draw(st.sampled_from(["user", "assistant", "robot", ""])),
             "audio": draw(st.sampled_from(HOSTILE_PATHS)), "text": draw(st.text(max_size=20))}]}
    try:
        return kind, json.dumps(row, allow_nan=True).encode()
    except (ValueError, TypeError):
        return kind, b"{}"


@pytest.fixture(scope="module")
def media_root(tmp_path_factory) -> Path:
    """A manifest directory with good and bad audio, and a file outside it (the traversal target)."""
    root = tmp_path_factory.mktemp("fuzz") / "corpus"
    (root / "audio").mkdir(parents=True)
    sr = 16000
    t = np.arange(sr) / sr
    sf.write(root / "audio" / "ok.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    (root / "audio" / "noise.wav").write_bytes(os.urandom(3000))
    nan = np.full(sr, np.nan, np.float32)
    sf.write(root / "audio" / "nan.wav", nan, sr, subtype="FLOAT")
    sf.write(root / "audio" / "long.wav", np.zeros(int(sr * (MAX_SECONDS + 2)), np.int16), sr)
    sf.write(root.parent / "outside.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    (root / "audio" / "link_out.wav").symlink_to(root.parent / "outside.wav")
    return root


@FUZZ
@given(lines=st.lists(hostile_line(), min_size=1, max_size=12))
def test_hostile_manifest_lines_are_counted_skips_with_reasons(media_root, lines):
    manifest = media_root / "fuzz.jsonl"
    manifest.write_bytes(b"\n".join(raw for _, raw in lines) + b"\n")
    nonblank = sum(1 for _, raw in lines if raw.strip())
    tracemalloc.start()
    try:
        with alarm(60):
            report = check_manifest(manifest, CheckOptions(limits=LIMITS), progress=False)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB for one manifest"
    # every line is counted; every bad line is reported with at least one named problem
    assert report.rows == sum(1 for _ in read_manifest(manifest)) <= nonblank
    assert all(e.problems and all(isinstance(p, str) and p for p in e.problems) for e in report.errors)
    bad_lines = {e.line for e in report.errors}
    good = report.rows - len(bad_lines)
    assert good >= 0 and json.dumps(report.to_json(), allow_nan=False)  # the JSON report stays valid
    for (kind, raw), error in zip(lines, _per_line(report, lines)):
        OUTCOMES["manifest_lines"][f"{kind} -> {error}"] += 1
        if b"../" in raw and error == "good":
            pytest.fail(f"a path leaving the manifest directory was accepted: {raw!r}")
        if b"link_out" in raw and error == "good":
            pytest.fail(f"a symlink leaving the manifest directory was accepted: {raw!r}")
    OUTCOMES["manifests"]["checked"] += 1
    # the strict loader refuses the same file with one ValueError naming it, or returns only the good rows
    try:
        rows = load_manifest(manifest)
        assert len(rows) == report.rows and not [e for e in report.errors if e.problems[0].startswith(("invalid",))]
    except ValueError as e:
        assert str(manifest) in str(e)


def _per_line(report, lines) -> list[str]:
    """Outcome label per input line: 'good', 'blank' or 'error: <kind>' (the first problem, coarsened)."""
    by_line = {e.line: e.problems[0] for e in report.errors}
    out = []
    for n, (_, raw) in enumerate(lines, start=1):
        if not raw.strip():
            out.append("blank")
        elif n in by_line:
            out.append("error: " + _line_kind(by_line[n]))
        else:
            out.append("good")
    return out


def _line_kind(problem: str) -> str:
    for key, label in (("not valid UTF-8", "not UTF-8"), ("invalid JSON", "invalid JSON"),
                       ("expected a JSON object", "not a JSON object"), ("leaves the manifest", "path escapes root"),
                       ("finite", "non-finite number"), ("file not found", "file not found"),
                       ("not a regular file", "not a regular file"), ("duration mismatch", "duration mismatch"),
                       ("too long", "audio too long"), ("past the end", "segment past the end"),
                       ("NaN", "NaN/Inf samples"), ("unreadable", "unreadable audio"), ("silent", "silent audio"),
                       ("truncated", "truncated audio"), ("empty", "empty value/file"), ("duplicate", "duplicate id")):
        if key in problem:
            return label
    return "bad field " + problem.split(":")[0].split(".")[0][:20]

"""Manifest schema, `omni data check` with broken lines, and the manifest writer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from omni.cli.main import app
from omni.data.check import CheckOptions, check_manifest
from omni.data.manifest import (
    ManifestRow,
    RowError,
    Segment,
    Turn,
    load_manifest,
    media_refs,
    parse_row,
    read_manifest,
    resolve_media,
    write_manifest,
)


def tone(seconds: float, sr: int = 16000) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", tone(1.0), 16000)
    sf.write(tmp_path / "audio" / "b.flac", tone(2.0), 16000)
    full = (tmp_path / "audio" / "a.wav").read_bytes()
    (tmp_path / "audio" / "trunc.wav").write_bytes(full[: len(full) // 3])
    from PIL import Image

    Image.new("RGB", (33, 17), "red").save(tmp_path / "img.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return tmp_path


GOOD = [
    {"id": "g1", "task": "asr", "audio": "audio/a.wav", "duration": 1.0, "text": "Hello there.", "language": "en",
     "region": "US", "speaker": "v1"},
    {"id": "g2", "task": "tts", "text": "Hi.", "audio": "audio/b.flac", "speaker": "v2", "language": "en"},
    {"id": "g3", "task": "spoken_qa", "conversation": [
        {"role": "user", "audio": "audio/a.wav", "text": "What is one plus one?"},
        {"role": "assistant", "text": "One plus one is two.", "audio": "audio/b.flac"}]},
    {"id": "g4", "task": "interleaved", "segments": [{"text": "One.", "audio": "audio/a.wav"}, {"text": "Two."}]},
    {"id": "g5", "task": "preference", "prompt": [{"role": "user", "text": "Color of a banana?"}],
     "chosen": [{"role": "assistant", "text": "Yellow."}], "rejected": {"role": "assistant", "text": "Blue."}},
    {"id": "g6", "task": "image_qa", "image": "img.png", "conversation": [
        {"role": "user", "text": "What color?"}, {"role": "assistant", "text": "Red."}]},
    {"id": "g7", "task": "asr", "audio": "audio/b.flac", "offset": 0.5, "duration": 1.0, "text": "Part."},
    {"id": "g8", "task": "kto", "prompt": [{"role": "user", "text": "Hi"}], "completion": {"role": "assistant",
     "text": "Hello."}, "label": True},
    {"id": "g9", "task": "text", "text": "A banana is yellow."},
]

# (line content, fragment of the expected message)
BAD = [
    ({"id": "b1", "task": "asr", "audio": "audio/missing.wav", "text": "x"}, "audio 'audio/missing.wav': file not found"),
    ({"id": "b2", "task": "asr", "audio": "audio/trunc.wav", "text": "x"}, "truncated"),
    ({"id": "b3", "task": "asr", "audio": "audio/a.wav", "text": "   "}, "text: empty text"),
    ({"id": "b4", "task": "asr", "audio": "audio/a.wav", "text": 5}, "text: expected str, got int 5"),
    ({"id": "b5", "task": "asr", "audio": "audio/a.wav", "text": "x", "duration": 3.0}, "duration mismatch"),
    ({"id": "b6", "task": "sing", "text": "x"}, "unknown task 'sing'"),
    ({"id": "b7", "task": "asr", "text": "x"}, "audio: required for task 'asr'"),
    ({"id": "b8", "task": "asr", "audio": "../outside.wav", "text": "x"}, "leaves the manifest's directory"),
    ({"id": "b9", "task": "image_caption", "image": "bad.png", "text": "x"}, "unreadable image"),
    ({"id": "g1", "task": "asr", "audio": "audio/a.wav", "text": "x"}, "id: duplicate of line 1"),
    ({"id": "b10", "task": "spoken_qa", "conversation": [{"role": "user", "text": "q"},
                                                          {"role": "assistant", "text": "a"}]},
     "first user turn of a 'spoken_qa' row needs audio"),
    ({"id": "b11", "task": "asr", "audio": "audio/a.wav", "text": "x", "language": "English"}, "ISO 639"),
    ({"id": "b12", "task": "asr", "audio": "audio/b.flac", "text": "x", "offset": 1.5, "duration": 1.0}, "past the end"),
]
RAW_BAD = [("{not json", "invalid JSON"), ('["a list"]', "expected a JSON object")]


def write_lines(path: Path, lines: list) -> Path:
    with open(path, "w") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def test_good_rows_parse_and_check_clean(media):
    path = write_lines(media / "good.jsonl", GOOD)
    report = check_manifest(path, progress=False)
    assert report.ok, [e.message(str(path)) for e in report.errors]
    assert report.rows == len(GOOD)
    # a.wav counted 1 s in g1, g3, g4; b.flac 2 s in g2, g3; g7 is a 1 s segment
    assert report.total_seconds == pytest.approx(1 + 2 + 3 + 1 + 1, abs=1e-3)
    assert report.seconds_by_speaker["v1"] == pytest.approx(1.0, abs=1e-3)
    assert report.rows_by_task["asr"] == 2 and report.seconds_by_language["en-US"] == pytest.approx(1.0, abs=1e-3)
    rows = load_manifest(path)
    assert rows[4].chosen == Turn(role="assistant", text="Yellow.")  # TRL one-message list accepted
    assert [r.where for r in media_refs(rows[2])] == ["conversation.0.audio", "conversation.1.audio"]


def test_every_bad_line_gets_one_clear_message(media):
    lines = GOOD[:1] + [b for b, _ in BAD] + [raw for raw, _ in RAW_BAD] + [""] + GOOD[1:2]
    path = write_lines(media / "bad.jsonl", lines)
    before = path.read_bytes()
    report = check_manifest(path, progress=False)
    assert path.read_bytes() == before  # never modifies the input
    assert report.rows == len(lines) - 1  # the blank line is skipped
    by_line = {e.line: e for e in report.errors}
    expected = [frag for _, frag in BAD] + [frag for _, frag in RAW_BAD]
    assert sorted(by_line) == list(range(2, 2 + len(expected)))
    for line, fragment in zip(range(2, 2 + len(expected)), expected):
        msg = by_line[line].message(str(path))
        assert msg.startswith(f"{path}:{line}:") and fragment in msg, msg


def test_schema_only_mode_skips_media(media):
    path = write_lines(media / "m.jsonl", [BAD[0][0]])
    assert check_manifest(path, CheckOptions(media=False), progress=False).ok
    assert not check_manifest(path, progress=False).ok


def test_read_manifest_reports_non_utf8_and_keeps_going(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"id": "a", "task": "text", "text": "\xff"}\n' + json.dumps(GOOD[8]).encode() + b"\n")
    items = list(read_manifest(path))
    assert isinstance(items[0][1], RowError) and "UTF-8" in items[0][1].problems[0]
    assert isinstance(items[1][1], ManifestRow)
    with pytest.raises(ValueError, match="1 bad lines"):
        load_manifest(path)


def test_write_then_read_round_trip(tmp_path):
    rows = [
        ManifestRow(id="a", task="asr", audio="x.wav", text="Hi.", duration=1.25, language="en"),
        ManifestRow(id="b", task="interleaved", segments=[Segment("One."), Segment("Two.", audio="y.wav")]),
        ManifestRow(id="c", task="spoken_qa", conversation=[Turn("user", audio="q.wav"), Turn("assistant", "A.")],
                    meta={"fact": "f1"}),
    ]
    assert write_manifest(tmp_path / "m.jsonl", rows) == 3
    assert load_manifest(tmp_path / "m.jsonl") == rows
    first = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert first == {"id": "a", "task": "asr", "audio": "x.wav", "duration": 1.25, "text": "Hi.", "language": "en"}


def test_resolve_media(tmp_path):
    manifest = tmp_path / "sub" / "m.jsonl"
    assert resolve_media(manifest, "a/b.wav") == (tmp_path / "sub" / "a" / "b.wav").resolve()
    assert resolve_media(manifest, "/abs/x.wav") == Path("/abs/x.wav")
    with pytest.raises(ValueError, match="leaves"):
        resolve_media(manifest, "a/../../x.wav")
    with pytest.raises(ValueError, match="leaves"):  # a remembered resolution still refuses the escape
        resolve_media(manifest, "a/../../x.wav")


def test_resolve_media_remembers_per_absolute_manifest(tmp_path, monkeypatch):
    """A relative manifest path is resolved against the working directory of the call, not of the first call."""
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
    monkeypatch.chdir(tmp_path / "one")
    assert resolve_media("m.jsonl", "x.wav") == (tmp_path / "one" / "x.wav").resolve()
    monkeypatch.chdir(tmp_path / "two")
    assert resolve_media("m.jsonl", "x.wav") == (tmp_path / "two" / "x.wav").resolve()


def test_parse_row_collects_several_problems():
    err = parse_row(json.dumps({"id": "x", "task": "asr", "audio": "", "text": " ", "language": "EN"}), 7)
    assert isinstance(err, RowError) and err.line == 7 and len(err.problems) == 3


def test_cli_check_exit_codes_and_json(media):
    runner = CliRunner()
    good = write_lines(media / "good.jsonl", GOOD)
    result = runner.invoke(app, ["data", "check", str(good), "--no-progress", "--json", str(media / "r.json")])
    assert result.exit_code == 0, result.output
    assert "0 bad" in result.output
    assert json.loads((media / "r.json").read_text())[0]["rows"] == len(GOOD)
    bad = write_lines(media / "bad.jsonl", [b for b, _ in BAD])
    result = runner.invoke(app, ["data", "check", str(good), str(bad), "--no-progress"])
    assert result.exit_code == 1
    assert len(re.findall(rf"^{re.escape(str(bad))}:\d+: ", result.output, re.M)) == len(BAD) - 1  # its 'duplicate id' line is a duplicate only after GOOD
    assert f"checked 2 manifest(s), {len(GOOD) + len(BAD)} rows: {len(BAD) - 1} bad" in result.output
    result = runner.invoke(app, ["data", "check", str(media / "nope.jsonl")])
    assert result.exit_code == 2 and "manifest not found" in result.output


def test_console_script_lists_commands():
    exe = Path(sys.executable).parent / "omni"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("data", "config", "version"):
        assert command in out
    out = subprocess.run([str(exe), "data", "--help"], capture_output=True, text=True, check=True).stdout
    assert "check" in out and "synth" in out

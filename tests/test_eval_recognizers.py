"""Recognisers: Whisper from a local directory (tiny random model) against transformers itself; ESPnet model
directories; PocketSphinx; missing models are clear errors, never downloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from omni.audio.io import Audio
from omni.cli.main import app
from omni.config import FieldError
from omni.eval.recognizers import Recognizer, RecognizerConfig, build_recognizer
from omni.eval.recognizers.espnet import find_model_files
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)
from tests.helpers.tiny_whisper import tiny_whisper


def _noise(seconds: float, seed: int, sr: int = 16000) -> Audio:
    return Audio((0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32), sr)


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny-whisper")


def test_whisper_matches_transformers_batched_and_alone(whisper_dir):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    rec = build_recognizer(RecognizerConfig(name="whisper", model_dir=str(whisper_dir), max_new_tokens=6))
    assert isinstance(rec, Recognizer) and rec.name == "whisper:tiny-whisper"
    audios = [_noise(1.0, 0), _noise(0.5, 1), Audio(_noise(0.75, 2, sr=24000).samples, 24000)]  # any rate
    batched = rec.transcribe(audios)
    assert batched == [rec.transcribe([a])[0] for a in audios]
    # reference: transformers on the same features, one clip
    proc = WhisperProcessor.from_pretrained(whisper_dir, local_files_only=True)
    model = WhisperForConditionalGeneration.from_pretrained(whisper_dir, local_files_only=True).eval()
    feats = proc.feature_extractor(audios[0].samples, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(feats.input_features, max_new_tokens=6)
    assert batched[0] == proc.batch_decode(ids, skip_special_tokens=True)[0].strip() != ""


def test_missing_model_directories_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*whisper model directory not found.*never downloaded"):
        build_recognizer(RecognizerConfig(name="whisper", model_dir=str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a Whisper model directory"):
        build_recognizer(RecognizerConfig(name="whisper", model_dir=str(tmp_path / "empty")))
    with pytest.raises(FileNotFoundError, match="espnet model directory not found"):
        build_recognizer(RecognizerConfig(name="espnet", model_dir=str(tmp_path / "nowhere")))
    with pytest.raises(FileNotFoundError, match="not an ESPnet model directory.*config.yaml.*pth"):
        build_recognizer(RecognizerConfig(name="espnet", model_dir=str(tmp_path / "empty")))
    with pytest.raises(FieldError, match="model_dir"):
        RecognizerConfig(name="whisper")
    with pytest.raises(FieldError, match="name"):
        RecognizerConfig(name="kaldi")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "task": "asr", "audio": "a.flac", "text": "hi"}\n')
    res = CliRunner().invoke(app, ["eval", "asr", str(manifest), "--recognizer", "whisper", "--model-dir",
                                   str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "never downloaded" in res.output


def test_espnet_model_files_are_found_in_a_zoo_layout(tmp_path):
    exp = tmp_path / "exp" / "asr_train_conformer"
    exp.mkdir(parents=True)
    (tmp_path / "exp" / "lm_train").mkdir()
    for p in (exp / "config.yaml", exp / "valid.acc.ave.pth", exp / "1epoch.pth", tmp_path / "exp" / "lm_train" / "config.yaml"):
        p.write_text("x")
    assert find_model_files(tmp_path) == (exp / "config.yaml", exp / "valid.acc.ave.pth")


def test_pocketsphinx_transcribes_any_rate():
    rec = build_recognizer(RecognizerConfig(name="pocketsphinx"))
    out = rec.transcribe([_noise(0.5, 0), Audio(np.zeros(12000, np.float32), 24000)])
    assert len(out) == 2 and all(isinstance(t, str) for t in out)


def test_pocketsphinx_in_worker_processes_gives_the_serial_transcripts_in_order(tmp_path_factory):
    from omni.audio.io import load_audio
    from omni.data.manifest import load_manifest
    from tests.helpers.speech_data import mini_corpus

    corpus = mini_corpus(tmp_path_factory)
    rows = load_manifest(corpus / "asr_train.jsonl")[:6]
    audios = [load_audio(corpus / r.audio) for r in rows] + [Audio(np.zeros(8000, np.float32), 16000)]
    serial = build_recognizer(RecognizerConfig(name="pocketsphinx")).transcribe(audios)
    assert sum(len(t.split()) for t in serial) >= 6  # the clips are speech: the judge hears words
    pooled = build_recognizer(RecognizerConfig(name="pocketsphinx", workers=2))
    assert pooled.workers == 2
    assert pooled.transcribe(audios) == serial
    assert pooled.transcribe(audios[::-1]) == serial[::-1]  # each clip decoded from a fresh front end, order kept
    assert serial[-1] == ""  # digital silence: no words
    assert build_recognizer(RecognizerConfig(name="pocketsphinx", workers=0)).workers >= 1
    with pytest.raises(FieldError, match="workers"):
        RecognizerConfig(name="pocketsphinx", workers=-1)

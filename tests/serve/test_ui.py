"""The Gradio UI through the official `gradio_client`: a full voice turn, per-session history, readable errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.serve.conftest import check_audio

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

SETTINGS = ("flite:rms", "speech + text", "Be brief.", 0.0, 1.0, 40)


def _files(message: dict) -> list[str]:
    return [c["file"] for c in message["content"] if c.get("type") == "file"]


def _texts(message: dict) -> list[str]:
    return [c["text"] for c in message["content"] if c.get("type") == "text"]


def test_one_full_voice_turn_streams_and_keeps_history(server, wav_file):
    client = Client(f"{server}/", verbose=False)
    job = client.submit(handle_file(str(wav_file)), "", None, *SETTINGS, api_name="/chat")
    chat, _stream, latency, *_ = job.result(timeout=120)
    assert len(job.outputs()) >= 3  # the reply arrived in several updates (streamed), not in one
    assert [m["role"] for m in chat] == ["user", "assistant", "assistant"]
    assert len(_files(chat[0])) == 1  # the user's recording is shown in the history
    assert _texts(chat[1]) and _texts(chat[1])[0]  # the reply text
    samples, sr = sf.read(_files(chat[2])[0], dtype="float32")  # the reply audio
    check_audio(samples, sr)
    assert "first audio chunk" in latency and "LLM steps" in latency and "real-time factor" in latency
    # a second turn in the same browser session sees the first; another session starts empty
    chat2 = client.predict(None, "And now in words?", None, *SETTINGS, api_name="/chat")[0]
    assert [m["role"] for m in chat2].count("user") == 2
    other = Client(f"{server}/", verbose=False)
    chat3 = other.predict(None, "Hello", None, *SETTINGS[:1], "text only", *SETTINGS[2:], api_name="/chat")[0]
    assert [m["role"] for m in chat3] == ["user", "assistant"]  # text only: no audio message
    cleared = client.predict(api_name="/clear")
    assert cleared[0] == [] or cleared[0] is None


def test_bad_input_shows_a_readable_error_and_the_ui_keeps_working(server, wav_file, tmp_path):
    client = Client(f"{server}/", verbose=False)
    with pytest.raises(AppError, match="empty message"):
        client.predict(None, "", None, *SETTINGS, api_name="/chat")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AppError, match="silent"):
        client.predict(handle_file(str(silent)), "", None, *SETTINGS, api_name="/chat")
    long = tmp_path / "long.wav"
    sf.write(long, 0.1 * np.ones(6 * 16000, np.float32), 16000)
    with pytest.raises(AppError, match="too long"):
        client.predict(handle_file(str(long)), "", None, *SETTINGS, api_name="/chat")
    chat = client.predict(handle_file(str(wav_file)), "", None, *SETTINGS, api_name="/chat")[0]
    assert [m["role"] for m in chat] == ["user", "assistant", "assistant"]  # failed turns left no trace

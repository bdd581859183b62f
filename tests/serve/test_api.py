"""The OpenAI-compatible API against a live server, through the official `openai` client (and raw httpx for bad input)."""

from __future__ import annotations

import base64
import io
import threading

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.serve.conftest import check_audio, speech_like

openai = pytest.importorskip("openai", reason="the openai client is a dev dependency (make setup installs it)")


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


def _b64_wav(seconds: float = 1.5, seed: int = 0) -> str:
    buf = io.BytesIO()
    sf.write(buf, speech_like(seconds, seed=seed), 16000, format="WAV")
    return base64.b64encode(buf.getvalue()).decode()


def _wav(data: bytes) -> tuple[np.ndarray, int]:
    samples, sr = sf.read(io.BytesIO(data), dtype="float32")
    return samples, sr


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list()] == ["omni"]
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok" and health["voices"] == ["flite:rms", "espeak:en-us+m1"]


def test_transcription(client, wav_file):
    with open(wav_file, "rb") as f:
        result = client.audio.transcriptions.create(model="omni", file=f)
    assert isinstance(result.text, str) and result.text  # a random model: any non-empty text
    with open(wav_file, "rb") as f:
        text = client.audio.transcriptions.create(model="omni", file=f, response_format="text")
    assert text.strip() == result.text  # greedy: the same transcript in both formats


def test_speech_streamed_wav_and_pcm(client):
    with client.audio.speech.with_streaming_response.create(model="omni", voice="flite:rms", input="Hello there.",
                                                            response_format="wav") as response:
        assert response.headers["content-type"] == "audio/wav"
        parts = list(response.iter_bytes())
    data = b"".join(parts)
    samples, sr = _wav(data)  # a WAV of unknown length (streamed header) reads to its end
    check_audio(samples, sr)
    assert len(samples) % 1920 == 0  # whole 80 ms frames
    pcm = client.audio.speech.create(model="omni", voice="espeak:en-us+m1", input="Hello there.",
                                     response_format="pcm").content
    check_audio(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768, 24000)
    flac = client.audio.speech.create(model="omni", voice="flite:rms", input="Hello there.", response_format="flac")
    samples_flac, sr_flac = _wav(flac.content)
    assert sr_flac == 24000 and len(samples_flac) == len(samples)  # same input, same voice: same length
    np.testing.assert_allclose(samples_flac, samples, atol=2e-4)
    mp3 = client.audio.speech.create(model="omni", voice="flite:rms", input="Hello there.", response_format="mp3")
    assert mp3.content[:3] == b"ID3" or mp3.content[0] == 0xFF  # an MP3 stream (ffmpeg)
    samples_mp3, sr_mp3 = _wav(mp3.content)
    assert sr_mp3 == 24000 and abs(len(samples_mp3) - len(samples)) < 0.1 * 24000 and np.isfinite(samples_mp3).all()


def test_chat_with_audio_in_and_out(client):
    completion = client.chat.completions.create(
        model="omni", modalities=["text", "audio"], audio={"voice": "flite:rms", "format": "wav"}, max_tokens=40,
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": [{"type": "text", "text": "What did I say?"},
                                               {"type": "input_audio", "input_audio": {"data": _b64_wav(),
                                                                                      "format": "wav"}}]}])
    message = completion.choices[0].message
    assert message.audio is not None and message.audio.id.startswith("audio_")
    samples, sr = _wav(base64.b64decode(message.audio.data))
    check_audio(samples, sr)
    assert isinstance(message.audio.transcript, str)
    assert completion.usage.completion_tokens <= 40 and completion.usage.prompt_tokens > 1.5 * 12.5
    # the next turn cites the spoken reply by its audio id (its speech codes go back into the prompt)
    follow = client.chat.completions.create(
        model="omni", max_tokens=8, messages=[
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": _b64_wav(), "format": "wav"}}]},
            {"role": "assistant", "audio": {"id": message.audio.id}},
            {"role": "user", "content": "And then?"}])
    assert follow.usage.prompt_tokens > completion.usage.prompt_tokens + completion.usage.completion_tokens_details.audio_tokens
    assert follow.choices[0].message.audio is None and isinstance(follow.choices[0].message.content, str)


def test_chat_streaming_text_and_audio(client):
    stream = client.chat.completions.create(
        model="omni", modalities=["text", "audio"], audio={"voice": "flite:rms", "format": "pcm16"}, max_tokens=40,
        stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": [{"type": "input_audio",
                                                "input_audio": {"data": _b64_wav(seed=2), "format": "wav"}}]}])
    pcm, transcript, finish, usage, audio_chunks, ids = b"", "", None, None, 0, set()
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            audio = choice.delta.audio
            if audio is not None:
                ids.add(audio.id)
                if audio.data:
                    pcm += base64.b64decode(audio.data)
                    audio_chunks += 1
                transcript += audio.transcript or ""
            finish = choice.finish_reason or finish
    assert audio_chunks >= 2  # streamed in pieces, not one blob
    check_audio(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768, 24000)
    assert finish in ("stop", "length") and usage.completion_tokens <= 40 and transcript
    assert len(ids) == 1  # one audio id, which a next turn can cite
    follow = client.chat.completions.create(model="omni", max_tokens=4, messages=[
        {"role": "user", "content": "Hi"}, {"role": "assistant", "audio": {"id": ids.pop()}},
        {"role": "user", "content": "Again"}])
    assert follow.usage.prompt_tokens > len(pcm) // 2 // 1920  # the cited speech frames are in the prompt
    # streamed wav: a header of unknown length first, then PCM: the concatenation is a valid WAV
    data = b"".join(base64.b64decode(c.choices[0].delta.audio.data) for c in client.chat.completions.create(
        model="omni", modalities=["text", "audio"], audio={"voice": "flite:rms", "format": "wav"}, max_tokens=24,
        stream=True, messages=[{"role": "user", "content": "Hi"}])
        if c.choices and c.choices[0].delta.audio is not None and c.choices[0].delta.audio.data)
    check_audio(*_wav(data))
    # text-only streaming: content deltas
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="omni", max_tokens=12, stream=True, messages=[{"role": "user", "content": "Hello"}]) if c.choices)
    assert text


def test_bad_input_gives_clear_4xx_json_and_the_server_keeps_serving(client, server, tmp_path):
    def transcribe(name: str, data: bytes):
        with pytest.raises(openai.BadRequestError) as err:
            client.audio.transcriptions.create(model="omni", file=(name, data))
        return err.value

    e = transcribe("notes.txt", b"this is not audio at all\n" * 20)
    assert e.status_code == 400 and e.body["code"] == "invalid_audio" and "notes.txt" in e.body["message"]
    riff = io.BytesIO()
    sf.write(riff, speech_like(1.0), 16000, format="WAV")
    e = transcribe("corrupt.wav", riff.getvalue()[:44] + b"\x00" * 7 + b"garbage" + riff.getvalue()[200:300])
    assert e.body["code"] == "invalid_audio"
    empty = io.BytesIO()
    sf.write(empty, np.zeros(0, np.float32), 16000, format="WAV")
    e = transcribe("empty.wav", empty.getvalue())
    assert e.body["code"] == "invalid_audio" and ("0-length" in e.body["message"] or "empty" in e.body["message"])
    long = io.BytesIO()
    sf.write(long, speech_like(6.0), 16000, format="WAV", subtype="PCM_16")  # limit: 5 s
    e = transcribe("long.wav", long.getvalue())
    assert "too long: 6.0 s > limit 5 s" in e.body["message"]

    with pytest.raises(openai.BadRequestError) as err:
        client.audio.speech.create(model="omni", voice="nobody", input="Hi")
    assert err.value.body["code"] == "unknown_voice" and "flite:rms" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="omni", modalities=["text", "audio"], audio={"voice": "nobody",
                                       "format": "wav"}, messages=[{"role": "user", "content": "Hi"}])
    assert err.value.body["param"] == "voice"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="omni", messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "not base64!", "format": "wav"}}]}])
    assert "messages[0].content[0].input_audio.data: not valid base64" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="omni", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert "only data: URLs" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="omni", max_tokens=5000, messages=[{"role": "user", "content": "Hi"}])
    assert err.value.body["param"] == "max_tokens"

    # raw HTTP: wrong content types, a bad body, too large
    r = httpx.post(f"{server}/v1/audio/transcriptions", json={"file": "x"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = httpx.post(f"{server}/v1/chat/completions", data={"messages": "hi"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]
    r = httpx.post(f"{server}/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(f"{server}/v1/chat/completions", json={"messages": [{"role": "user"}], "n": 3})
    assert r.status_code == 400 and r.json()["error"]["param"] == "n"
    r = httpx.post(f"{server}/v1/audio/transcriptions", files={"file": ("big.wav", b"\0" * 2_000_000)})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(f"{server}/v1/audio/transcriptions", files={"audio": ("a.wav", riff.getvalue())})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"

    # still serving
    assert httpx.get(f"{server}/health").json()["active"] == 0
    with open(tmp_path / "ok.wav", "wb") as f:
        f.write(riff.getvalue())
    with open(tmp_path / "ok.wav", "rb") as f:
        assert client.audio.transcriptions.create(model="omni", file=f).text


def test_eight_concurrent_conversations_do_not_mix(client):
    """Each request carries its own history and seed; 8 at once answer exactly what each answers alone."""

    def ask(i: int) -> tuple[str, bytes]:
        c = client.chat.completions.create(
            model="omni", modalities=["text", "audio"], audio={"voice": "flite:rms", "format": "wav"}, max_tokens=24,
            temperature=1.0, seed=i,  # sampled from each request's own seed: the replies differ (a random model's
            # greedy replies can all be alike) and reproduce only if no request draws from another's generator
            messages=[{"role": "system", "content": f"You are assistant {i}."},
                      {"role": "user", "content": [{"type": "input_audio",
                                                    "input_audio": {"data": _b64_wav(1.0, seed=20 + i), "format": "wav"}}]},
                      {"role": "assistant", "content": f"Reply number {i}."},
                      {"role": "user", "content": f"Tell me more about {i}."}])
        return c.choices[0].message.audio.transcript, base64.b64decode(c.choices[0].message.audio.data)

    alone = [ask(i) for i in range(8)]
    got: dict[int, tuple] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int):
        try:
            barrier.wait()
            got[i] = ask(i)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors and sorted(got) == list(range(8))
    assert len({a[1] for a in alone}) > 1  # the conversations differ, so mixing would show
    for i in range(8):
        assert got[i][0] == alone[i][0]
        a, b = _wav(got[i][1])[0], _wav(alone[i][1])[0]
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-3)


def test_api_key(tiny_bundle_dir):
    from fastapi.testclient import TestClient

    from serve.config import ServeConfig
    from serve.pipeline import SpeechChat
    from serve.server import build_server

    engine = SpeechChat.from_checkpoint(tiny_bundle_dir, ServeConfig(api_key="s3cret", default_max_tokens=8))
    with TestClient(build_server(engine)) as http:
        r = http.get("/v1/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key" and "missing" in r.text
        r = http.get("/v1/models", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "incorrect" in r.json()["error"]["message"]
        assert http.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert http.get("/health").status_code == 200  # liveness stays open
        assert http.get("/config").status_code in (401, 403)  # the UI needs the login too
        assert http.post("/login/", data={"username": "me", "password": "s3cret"}).status_code == 200
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="s3cret", http_client=http, max_retries=0)
        assert [m.id for m in client.models.list()] == ["omni"]

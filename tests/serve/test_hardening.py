"""Server hardening: per-client concurrency, generation timeout, private uploads, no client paths, key check,
localhost by default."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import stat
from pathlib import Path

import httpx
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from serve.config import ServeConfig
from tests.serve.conftest import speech_like

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine(tiny_bundle_dir):
    import torch

    from serve.pipeline import SpeechChat

    torch.set_num_threads(1)
    return SpeechChat.from_checkpoint(tiny_bundle_dir, ServeConfig(default_max_tokens=8, max_tokens=64))


@pytest.fixture(scope="module")
def http(engine):
    from serve.server import build_server

    with TestClient(build_server(engine, with_ui=False)) as client:
        yield client


def _wav_bytes(seconds: float = 1.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speech_like(seconds), 16000, format="WAV")
    return buf.getvalue()


def test_per_client_concurrency_limit_gives_429_and_frees_slots():
    from serve.api import ClientLimit

    release = asyncio.Event()
    entered = []

    async def slow_app(scope, receive, send):
        entered.append(scope["path"])
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limited = ClientLimit(slow_app, limit=2)

    async def scenario():
        transport = httpx.ASGITransport(app=limited, client=("10.0.0.1", 1234))
        other = httpx.ASGITransport(app=limited, client=("10.0.0.2", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as a, \
                httpx.AsyncClient(transport=other, base_url="http://t") as b:
            first = [asyncio.create_task(a.get("/v1/x")) for _ in range(2)]
            while len(entered) < 2:
                await asyncio.sleep(0.001)
            third = await a.get("/v1/x")  # the same client, a third request in flight: refused at once
            assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_requests"
            another = asyncio.create_task(b.get("/v1/x"))  # another client is not affected
            while len(entered) < 3:
                await asyncio.sleep(0.001)
            assert limited.active == {"10.0.0.1": 2, "10.0.0.2": 1}
            release.set()
            assert [r.status_code for r in await asyncio.gather(*first, another)] == [200, 200, 200]
            assert limited.active == {}  # every slot given back
            assert (await a.get("/v1/x")).status_code == 200
            assert (await a.get("/health")).status_code == 200  # only /v1 is limited

    asyncio.run(scenario())


def test_generation_timeout_stops_the_reply_with_504_and_frees_the_slot(engine, http):
    from dataclasses import replace

    from omni.model import Message
    from serve.errors import GenerationTimeout

    old = engine.cfg
    engine.cfg = replace(old, generation_timeout_s=1e-4)
    try:
        settings = engine.settings(reply_mode="text", max_tokens=64)
        with pytest.raises(GenerationTimeout, match="generation_timeout_s"):
            engine.respond([Message("user", "Tell me a long story.")], settings)
        r = http.post("/v1/chat/completions", json={"model": "omni", "max_tokens": 64,
                                                     "messages": [{"role": "user", "content": "Hello there"}]})
        assert r.status_code == 504 and r.json()["error"]["code"] == "generation_timeout"
    finally:
        engine.cfg = old
    assert engine.active == 0  # the slot came back
    r = http.post("/v1/chat/completions", json={"model": "omni", "max_tokens": 8,
                                                 "messages": [{"role": "user", "content": "Hello there"}]})
    assert r.status_code == 200


def test_uploads_go_to_a_private_dir_and_are_deleted(engine, http, monkeypatch):
    from serve.inputs import upload_dir

    seen = []
    real = engine.load_audio_file

    def spy(path, name=None):
        p = Path(path)
        seen.append(p)
        assert p.is_file() and p.parent == upload_dir()
        assert stat.S_IMODE(p.parent.stat().st_mode) == 0o700 and p.parent.stat().st_uid == os.getuid()
        return real(path, name)

    monkeypatch.setattr(engine, "load_audio_file", spy)
    r = http.post("/v1/audio/transcriptions", files={"file": ("../../../etc/passwd", _wav_bytes(), "audio/wav")},
                  data={"model": "omni"})
    assert r.status_code == 200, r.text
    data = base64.b64encode(_wav_bytes()).decode()
    r = http.post("/v1/chat/completions", json={"model": "omni", "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}]}]})
    assert r.status_code == 200, r.text
    assert len(seen) == 2 and not any(p.exists() for p in seen)  # decoded, then deleted
    assert seen[0].name.startswith("upload-") and "passwd" not in seen[0].name  # the client's name is not a path


@pytest.mark.parametrize("part", [
    {"type": "input_audio", "input_audio": {"data": "/etc/passwd", "format": "wav"}},
    {"type": "input_audio", "input_audio": {"data": "file:///etc/passwd", "format": "wav"}},
    {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}},
    {"type": "image_url", "image_url": {"url": "/etc/passwd"}},
    {"type": "image_url", "image_url": {"url": "http://127.0.0.1:1/x.png"}},
])
def test_client_paths_and_urls_are_never_opened(http, monkeypatch, part):
    import builtins

    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        assert "passwd" not in str(file), f"the server opened a client path: {file}"
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    r = http.post("/v1/chat/completions", json={"model": "omni", "max_tokens": 8, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, part]}]})
    assert r.status_code == 400 and r.json()["error"]["param"], r.text


def test_api_key_is_compared_in_constant_time(tiny_bundle_dir, monkeypatch):
    import hmac

    import serve.api
    from serve.pipeline import SpeechChat
    from serve.server import build_server

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(serve.api.hmac, "compare_digest", spy)
    engine = SpeechChat.from_checkpoint(tiny_bundle_dir, ServeConfig(api_key="s3cret", default_max_tokens=8))
    with TestClient(build_server(engine, with_ui=False)) as client:
        assert client.get("/v1/models", headers={"Authorization": "Bearer wrong-key"}).status_code == 401
        assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert calls == [(b"wrong-key", b"s3cret"), (b"s3cret", b"s3cret")]


def test_binds_to_localhost_unless_told_otherwise():
    from omni.config import load_config

    assert ServeConfig().host == "127.0.0.1"
    assert load_config(ROOT / "configs" / "serve" / "default.yaml", ServeConfig).host == "127.0.0.1"
    cfg = ServeConfig()
    assert cfg.max_requests_per_client >= 1 and cfg.generation_timeout_s > 0


def test_freed_heap_is_given_back_when_the_engine_goes_idle(engine, monkeypatch):
    """malloc_trim returns the pages of a freed burst of small allocations; the engine calls it once, when its
    last in-flight reply ends (not while another is still running), and not at all when disabled."""
    import dataclasses

    import serve.pipeline as pipeline
    from serve.memory import trim_heap

    burst = [bytearray(4096) for _ in range(20000)]  # ~80 MB of small (heap, not mmap) blocks
    del burst
    assert trim_heap() is True  # glibc (this project's Linux targets) gave pages back
    calls = []
    monkeypatch.setattr(pipeline, "trim_heap", lambda: calls.append(engine.active) or True)
    engine._acquire()
    engine._acquire()
    engine._release()
    assert calls == []  # one reply still running
    engine._release()
    assert calls == [0]
    monkeypatch.setattr(engine, "cfg", dataclasses.replace(engine.cfg, trim_memory_when_idle=False))
    engine._acquire()
    engine._release()
    assert calls == [0]

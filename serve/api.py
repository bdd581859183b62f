"""The OpenAI-compatible HTTP API (FastAPI routes beside the Gradio UI).

=====================================  ============================================================
route                                  does
=====================================  ============================================================
``POST /v1/audio/transcriptions``      multipart ``file`` -> ``{"text"}`` (or text / verbose_json)
``POST /v1/audio/speech``              ``{"input", "voice", "response_format"}`` -> audio, streamed
                                       (wav of unknown length, pcm), or ``stream_format: "sse"``
``POST /v1/chat/completions``          messages with text / ``input_audio`` / ``image_url`` parts;
                                       ``modalities: ["text", "audio"]`` adds speech; ``stream``: SSE
``GET /v1/models``, ``GET /health``    the model id; liveness, voices and load
=====================================  ============================================================

Errors are ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status (5xx for
server faults, 503 when busy, 504 past ``generation_timeout_s``, 429 when one client has more
than ``max_requests_per_client`` requests in flight), as OpenAI's API answers. With an API key set,
``/v1`` routes need ``Authorization: Bearer KEY`` (compared in constant time). The server never
opens a path a client sends: audio and images arrive as bytes (uploads, base64, data: URLs);
uploads are written to a private (0700) temp directory and deleted after decoding.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from omni.audio.io import AudioError
from omni.config import FieldError
from omni.model import Message
from omni.model.sampling import SamplingConfig
from serve.audio_formats import FORMATS, check_format, encode_audio, pcm16, wav_header
from serve.errors import InputError, ServeError
from serve.inputs import audio_from_bytes, chat_messages
from serve.pipeline import AudioDelta, ReplyDone, SpeechChat, TextDelta
from serve.schemas import ChatRequest, SpeechRequest

log = logging.getLogger("omni.serve")


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, code: str, param: str | None = None,
                   type_: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(error_body(message, type_, code, param), status_code=status)


def to_error(exc: BaseException) -> JSONResponse:
    """Any exception -> the OpenAI error response (5xx, without details, for server faults)."""
    if isinstance(exc, ServeError):
        return error_response(exc.status, exc.message, exc.code, exc.param, exc.type)
    if isinstance(exc, AudioError):
        return error_response(400, f"invalid audio: {exc}", "invalid_audio", "file")
    if isinstance(exc, FieldError):
        return error_response(400, str(exc), "invalid_value", exc.field)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, f"{where}: {first.get('msg')}" if where else str(first.get("msg")),
                              "invalid_request", where or None)
    log.exception("internal error", exc_info=exc)
    return error_response(500, f"internal server error ({type(exc).__name__}); see the server log", "internal_error",
                          type_="server_error")


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: /v1 request bodies over ``max_bytes`` get 413 (by Content-Length, or while reading)."""

    def __init__(self, app, max_bytes: int, prefix: str = "/v1"):
        self.app, self.max_bytes, self.prefix = app, max_bytes, prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            return await self.app(scope, receive, send)
        too_large = error_response(413, f"request body larger than the server's limit of {self.max_bytes} bytes",
                                   "request_too_large")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await too_large(scope, receive, send)
        seen = 0
        started = False

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except _TooLarge:
            if not started:
                await too_large(scope, receive, send)


class ClientLimit:
    """ASGI middleware: at most ``limit`` /v1 requests in flight per client address (HTTP 429 beyond).

    A request counts until its response is fully sent (streamed replies included).
    """

    def __init__(self, app, limit: int, prefix: str = "/v1"):
        self.app, self.limit, self.prefix = app, limit, prefix
        self.active: dict[str, int] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.limit or not scope["path"].startswith(self.prefix):
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown", 0))[0]
        with self._lock:
            n = self.active.get(client, 0)
            if n < self.limit:
                self.active[client] = n + 1
        if n >= self.limit:
            refused = error_response(429, f"too many requests in flight from this client ({n}; limit "
                                          f"{self.limit}); wait for one to finish", "too_many_requests")
            return await refused(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                self.active[client] -= 1
                if not self.active[client]:
                    del self.active[client]


class AudioCache:
    """The assistant turns of recent audio replies, by audio id (so a later request can cite them)."""

    def __init__(self, size: int, ttl_s: float = 3600.0):
        self.size, self.ttl = size, ttl_s
        self._items: OrderedDict[str, tuple[float, Message]] = OrderedDict()
        self._lock = threading.Lock()  # replies finish in worker threads

    def put(self, message: Message, key: str | None = None) -> tuple[str, int]:
        key = key or "audio_" + uuid.uuid4().hex
        expires = time.time() + self.ttl
        if self.size:
            with self._lock:
                self._items[key] = (expires, message)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return key, int(expires)

    def get(self, key: str) -> Message | None:
        with self._lock:
            item = self._items.get(key)
        if item is None or item[0] < time.time():
            return None
        return item[1]


def _sse(data: dict | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def _sampling(temperature: float | None, top_p: float | None, default: SamplingConfig) -> SamplingConfig:
    if temperature is None and top_p is None:
        return default
    if temperature == 0:
        return SamplingConfig(do_sample=False)
    return SamplingConfig(do_sample=True, temperature=temperature or 1.0, top_p=top_p or 1.0)


def _metrics(reply) -> dict:
    m = reply.metrics
    return {k: getattr(m, k) for k in ("ttft_s", "ttfa_s", "llm_steps_first_audio", "total_s", "audio_s", "rtf",
                                       "llm_steps", "audio_frames", "prompt_tokens", "queue_s")}


def _usage(reply) -> dict:
    m = reply.metrics
    return {"prompt_tokens": m.prompt_tokens, "completion_tokens": m.llm_steps,
            "total_tokens": m.prompt_tokens + m.llm_steps,
            "completion_tokens_details": {"audio_tokens": m.audio_frames,
                                          "text_tokens": m.llm_steps - m.audio_frames}}


async def _first(events: Iterator):
    """Start a reply in a worker thread and take its first event, so request errors still get a 4xx status."""
    return await run_in_threadpool(next, events, None)


def _chain(first, events: Iterator) -> Iterator:
    if first is not None:
        yield first
    yield from events


def build_api(engine: SpeechChat) -> FastAPI:
    """The FastAPI app with the /v1 routes and /health (mount the Gradio UI on it afterwards)."""
    cfg = engine.cfg
    app = FastAPI(title="omni speech chat", version="1", docs_url="/docs", redoc_url=None)
    cache = AudioCache(cfg.audio_cache)
    app.state.engine = engine

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path.startswith("/v1") and cfg.api_key:
            auth = request.headers.get("authorization", "")
            if not auth.lower().startswith("bearer "):
                return error_response(401, "missing API key: send 'Authorization: Bearer <key>'", "invalid_api_key")
            if not hmac.compare_digest(auth[7:].strip().encode(), cfg.api_key.encode()):
                return error_response(401, "incorrect API key", "invalid_api_key")
        try:
            return await call_next(request)
        except Exception as e:  # noqa: BLE001 -- every failure becomes an OpenAI-shaped error
            return to_error(e)

    app.add_middleware(BodyLimit, max_bytes=cfg.max_request_bytes)
    app.add_middleware(ClientLimit, limit=cfg.max_requests_per_client)

    def check_model(model: str | None) -> None:
        if model and model != cfg.model_name and model not in ("tts-1", "whisper-1", "gpt-4o-audio-preview"):
            raise InputError(f"model '{model}' not found; this server serves '{cfg.model_name}'", param="model",
                             code="model_not_found")

    async def json_body(request: Request, model: type[BaseModel]):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise UnsupportedMedia(f"Content-Type must be application/json, got '{ctype or 'none'}'")
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"request body is not valid JSON ({e})", code="invalid_json") from None
        return model.model_validate(data)

    @app.get("/health")
    def health():
        return {"status": "ok", "model": cfg.model_name, "voices": engine.voice_names(), "active": engine.active,
                "concurrency": cfg.concurrency, "sample_rate": engine.sample_rate, "vision": engine.has_vision}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": cfg.model_name, "object": "model", "created": 0,
                                            "owned_by": "omni"}]}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        ctype = request.headers.get("content-type", "").lower()
        if not ctype.startswith("multipart/form-data"):
            raise UnsupportedMedia(f"Content-Type must be multipart/form-data with a 'file' field, got "
                                   f"'{ctype.split(';')[0] or 'none'}'")
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError("file: missing; send the audio as a multipart file field named 'file'", param="file")
        check_model(form.get("model"))
        fmt = str(form.get("response_format") or "json")
        if fmt not in ("json", "text", "verbose_json"):
            raise InputError(f"response_format must be json, text or verbose_json, got {fmt!r}",
                             param="response_format")
        data = await upload.read()
        name = upload.filename or "file"
        suffix = name.rsplit(".", 1)[-1] if "." in name else "bin"
        samples, sr = await run_in_threadpool(audio_from_bytes, engine, data, f"file '{name}'", suffix)
        reply = await run_in_threadpool(engine.transcribe, samples, sr, form.get("prompt") or None)
        text = reply.text.strip()
        if fmt == "text":
            return PlainTextResponse(text)
        body = {"text": text, "usage": {"type": "duration", "seconds": round(len(samples) / sr, 3)}}
        if fmt == "verbose_json":
            body.update(task="transcribe", language=form.get("language") or "en", duration=len(samples) / sr,
                        metrics=_metrics(reply))
        return body

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        req = await json_body(request, SpeechRequest)
        check_model(req.model)
        fmt = check_format(req.response_format)
        if req.speed != 1.0:
            raise InputError("speed: only 1.0 is supported", param="speed", code="unsupported_value")
        events = engine.speak(req.input, req.voice)
        first = await _first(events)
        sr = engine.sample_rate
        if req.stream_format == "sse":
            def sse() -> Iterator[bytes]:
                for ev in _chain(first, events):
                    if isinstance(ev, AudioDelta):
                        yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(pcm16(ev.samples)).decode()})
                    elif isinstance(ev, ReplyDone):
                        usage = _usage(ev.reply)
                        yield _sse({"type": "speech.audio.done", "usage": {
                            "input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                            "total_tokens": usage["total_tokens"]}, "metrics": _metrics(ev.reply)})
            return StreamingResponse(sse(), media_type="text/event-stream")
        media, streamable = FORMATS[fmt]
        if streamable:
            def audio() -> Iterator[bytes]:
                if fmt == "wav":
                    yield wav_header(sr)
                for ev in _chain(first, events):
                    if isinstance(ev, AudioDelta):
                        yield pcm16(ev.samples)
            return StreamingResponse(audio(), media_type=media, headers={"X-Sample-Rate": str(sr)})

        def whole() -> bytes:
            reply = next(ev for ev in _chain(first, events) if isinstance(ev, ReplyDone)).reply
            if reply.audio.size == 0:
                raise InputError("the model produced no speech for this input", param="input", code="no_speech")
            return encode_audio(reply.audio, sr, fmt)
        return Response(await run_in_threadpool(whole), media_type=media)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = await json_body(request, ChatRequest)
        check_model(req.model)
        speech = "audio" in req.modalities
        voice = req.audio.voice if req.audio else None
        fmt = req.audio.format if req.audio else "wav"
        if speech:
            check_format("pcm" if fmt == "pcm16" else fmt, "audio.format")
            if req.stream and fmt not in ("wav", "pcm16"):
                raise InputError(f"audio.format {fmt!r} cannot be streamed; use pcm16 or wav", param="audio.format",
                                 code="unsupported_format")
        max_tokens = req.max_completion_tokens or req.max_tokens or cfg.default_max_tokens
        if max_tokens > cfg.max_tokens:
            raise InputError(f"max_tokens must be <= {cfg.max_tokens}, got {max_tokens}", param="max_tokens")
        system, messages = await run_in_threadpool(chat_messages, engine, req.messages, cache.get)
        settings = engine.settings(reply_mode="speech" if speech else "text", voice=voice, max_tokens=max_tokens,
                                   text=_sampling(req.temperature, req.top_p, cfg.text), seed=req.seed,
                                   system_prompt=cfg.system_prompt if system is None else system)
        full = engine.with_system(settings, messages)
        events = engine.reply(full, settings)
        first = await _first(events)
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": cfg.model_name}

        if req.stream:
            audio_id = "audio_" + uuid.uuid4().hex if speech else None

            def chunk(delta: dict, finish: str | None = None) -> bytes:
                return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

            def stream() -> Iterator[bytes]:
                yield chunk({"role": "assistant", "content": None if speech else ""})
                if speech and fmt == "wav":  # a WAV of unknown length: header first, then PCM deltas
                    yield chunk({"audio": {"id": audio_id, "data": base64.b64encode(wav_header(engine.sample_rate))
                                           .decode()}})
                try:
                    for ev in _chain(first, events):
                        if isinstance(ev, TextDelta):
                            yield chunk({"audio": {"id": audio_id, "transcript": ev.text}} if speech
                                        else {"content": ev.text})
                        elif isinstance(ev, AudioDelta):
                            yield chunk({"audio": {"id": audio_id, "data": base64.b64encode(pcm16(ev.samples)).decode()}})
                        elif isinstance(ev, ReplyDone):
                            reply = ev.reply
                            if speech:
                                _, expires = cache.put(reply.message, audio_id)
                                yield chunk({"audio": {"id": audio_id, "expires_at": expires}})
                            yield chunk({}, reply.finish_reason if reply.finish_reason != "cancelled" else "stop")
                            if req.stream_options and req.stream_options.include_usage:
                                yield _sse({**base, "choices": [], "usage": _usage(reply),
                                            "metrics": _metrics(reply)})
                except Exception as e:  # noqa: BLE001 -- the status is sent: report in the stream
                    yield _sse(json.loads(to_error(e).body))
                yield _sse("[DONE]")
            return StreamingResponse(stream(), media_type="text/event-stream")

        def collect():
            return next(ev for ev in _chain(first, events) if isinstance(ev, ReplyDone)).reply
        reply = await run_in_threadpool(collect)
        message: dict = {"role": "assistant", "content": reply.text, "refusal": None}
        if speech:
            key, expires = cache.put(reply.message)
            data = encode_audio(reply.audio, reply.sample_rate, "pcm" if fmt == "pcm16" else fmt)
            message = {"role": "assistant", "content": None, "refusal": None,
                       "audio": {"id": key, "data": base64.b64encode(data).decode(), "expires_at": expires,
                                 "transcript": reply.text}}
        return {"id": cid, "object": "chat.completion", "created": created, "model": cfg.model_name,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": "length" if reply.finish_reason == "length" else "stop"}],
                "usage": _usage(reply), "metrics": _metrics(reply)}

    return app


class UnsupportedMedia(ServeError):
    """Wrong Content-Type (HTTP 415)."""

    status = 415

    def __init__(self, message: str):
        super().__init__(message, code="unsupported_media_type")

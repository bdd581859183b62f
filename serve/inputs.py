"""Request inputs to engine inputs: uploaded / base64 audio, data-URL images, OpenAI chat messages.

Every problem is an :class:`~serve.errors.InputError` or ``AudioError`` naming the request field
(``messages[1].content[0].input_audio``), never a traceback.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import io
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from omni.model import Audio as AudioPart
from omni.model import Message
from omni.model import Text as TextPart
from serve.errors import InputError
from serve.schemas import ChatMessage

AUDIO_SUFFIXES = {"wav", "mp3", "flac", "ogg", "opus", "m4a", "mp4", "webm", "aac", "mpeg", "mpga", "pcm16"}


def decode_base64(data: str, param: str) -> bytes:
    """Base64 (plain or a ``data:...;base64,`` URL) -> bytes."""
    if data.startswith("data:"):
        head, _, data = data.partition(",")
        if ";base64" not in head:
            raise InputError(f"{param}: only base64 data URLs are accepted", param=param)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{param}: not valid base64", param=param) from None


_UPLOAD_DIR: Path | None = None
_UPLOAD_LOCK = threading.Lock()


def upload_dir() -> Path:
    """This process's private directory for uploads being decoded (mode 0700, removed at exit)."""
    global _UPLOAD_DIR
    with _UPLOAD_LOCK:
        if _UPLOAD_DIR is None or not _UPLOAD_DIR.is_dir():
            _UPLOAD_DIR = Path(tempfile.mkdtemp(prefix="omni-uploads-"))  # mkdtemp: 0700, owner only
            atexit.register(shutil.rmtree, _UPLOAD_DIR, True)
        return _UPLOAD_DIR


def audio_from_bytes(engine, data: bytes, name: str, suffix: str = "wav") -> tuple[np.ndarray, int]:
    """Decode uploaded audio bytes (any format ffmpeg or libsndfile reads) with the engine's limits.

    Raises:
        AudioError: ``"<name>: <problem>"`` (not audio, corrupt, 0-length, too long, silent).
    """
    from omni.audio.io import AudioError

    if not data:
        raise AudioError(name, "empty upload (0 bytes)")
    suffix = suffix.lower().lstrip(".")
    if suffix == "pcm16":  # raw 16-bit mono at 24 kHz, as OpenAI's pcm16
        if len(data) % 2:
            raise AudioError(name, "pcm16 data must have an even number of bytes")
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0, 24000
    fd, path = tempfile.mkstemp(suffix=f".{suffix if suffix in AUDIO_SUFFIXES else 'bin'}", prefix="upload-",
                                dir=upload_dir())
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return engine.load_audio_file(path, name=name)
    finally:
        Path(path).unlink(missing_ok=True)


def image_from_url(url: str, param: str, max_pixels: int = 40_000_000):
    """A ``data:image/...;base64,`` URL -> PIL image (remote URLs are refused: the server fetches nothing)."""
    from PIL import Image, UnidentifiedImageError

    if not url.startswith("data:"):
        raise InputError(f"{param}: only data: URLs are accepted (the server fetches nothing from the network)",
                         param=param)
    data = decode_base64(url, param)
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > max_pixels:
            raise InputError(f"{param}: image too large ({img.width}x{img.height})", param=param)
        return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{param}: not a readable image ({e})", param=param) from None


def chat_messages(engine, messages: list[ChatMessage], lookup_audio: Callable[[str], Message | None]
                  ) -> tuple[str | None, list[Message]]:
    """OpenAI chat messages -> (system prompt or None, conversation as :class:`Message` s).

    ``lookup_audio(id)`` returns the cached assistant turn of an earlier audio reply.
    """
    from serve.pipeline import UserTurn

    system: list[str] = []
    out: list[Message] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if m.role in ("system", "developer"):
            system.append(_text_only(m, where))
            continue
        if m.role == "assistant":
            if m.audio is not None:
                cached = lookup_audio(m.audio.id)
                if cached is None:
                    raise InputError(f"{where}.audio.id: unknown or expired audio id {m.audio.id!r}",
                                     param=f"{where}.audio.id")
                out.append(cached)
            else:
                text = _text_only(m, where)
                out.append(Message("assistant", [TextPart(text)] if text else []))
            continue
        if m.role == "tool":
            raise InputError(f"{where}.role: tool messages are not supported", param=f"{where}.role")
        turn = UserTurn()
        texts: list[str] = []
        if isinstance(m.content, str):
            texts.append(m.content)
        for j, part in enumerate(m.content if isinstance(m.content, list) else []):
            p = f"{where}.content[{j}]"
            if part.type == "text":
                texts.append(part.text)
            elif part.type == "input_audio":
                if turn.audio is not None:
                    raise InputError(f"{p}: one input_audio part per message", param=p)
                data = decode_base64(part.input_audio.data, f"{p}.input_audio.data")
                turn.audio, turn.sample_rate = audio_from_bytes(engine, data, f"{p}.input_audio",
                                                                part.input_audio.format)
            elif part.type == "image_url":
                turn.images.append(image_from_url(part.image_url.url, f"{p}.image_url.url"))
        turn.text = "\n".join(t for t in texts if t)
        try:
            out.append(engine.user_message(turn))
        except InputError as e:
            raise InputError(f"{where}: {e.message}", param=where, code=e.code) from None
    if not out or out[-1].role != "user":
        raise InputError("messages: the last message must be a user message", param="messages")
    return ("\n".join(system) if system else None), out


def _text_only(m: ChatMessage, where: str) -> str:
    if m.content is None or isinstance(m.content, str):
        return m.content or ""
    texts = []
    for j, part in enumerate(m.content):
        if part.type != "text":
            raise InputError(f"{where}.content[{j}]: a {m.role} message takes text parts only",
                             param=f"{where}.content[{j}]")
        texts.append(part.text)
    return "\n".join(texts)


__all__ = ["AudioPart", "audio_from_bytes", "chat_messages", "decode_base64", "image_from_url"]

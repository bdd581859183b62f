"""Request bodies of the OpenAI-compatible API (pydantic; unknown fields are ignored, as OpenAI clients send extras)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SpeechRequest(_Body):
    """POST /v1/audio/speech."""

    model: str | None = None
    input: str = Field(min_length=1)
    voice: str | None = None
    response_format: str = "wav"
    stream_format: Literal["audio", "sse"] = "audio"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = None


class TextPart(_Body):
    type: Literal["text"]
    text: str


class InputAudio(_Body):
    data: str
    format: str = "wav"


class AudioPartIn(_Body):
    type: Literal["input_audio"]
    input_audio: InputAudio


class ImageUrl(_Body):
    url: str
    detail: str | None = None


class ImagePartIn(_Body):
    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = Annotated[TextPart | AudioPartIn | ImagePartIn, Field(discriminator="type")]


class AudioRef(_Body):
    id: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    audio: AudioRef | None = None
    name: str | None = None


class AudioOptions(_Body):
    voice: str | None = None
    format: Literal["wav", "pcm16", "flac", "mp3", "opus"] = "wav"


class StreamOptions(_Body):
    include_usage: bool = False


class ChatRequest(_Body):
    """POST /v1/chat/completions."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    modalities: list[Literal["text", "audio"]] = Field(default_factory=lambda: ["text"])
    audio: AudioOptions | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)

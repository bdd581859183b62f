"""ServeConfig (``kind: serve``): where the server listens, its limits, and how replies are generated.

Load with ``load_config("configs/serve/default.yaml", ServeConfig, overrides)``; every field
can be overridden on the command line (``omni serve --checkpoint DIR max_audio_seconds=30``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omni.config import check, option
from omni.model.sampling import SamplingConfig


@dataclass
class ServeConfig:
    """The server: network, limits, defaults of a chat session and the speech policy."""

    host: str = option("127.0.0.1", help="Interface to bind; 127.0.0.1 serves this machine only (0.0.0.0: all).")
    port: int = option(7860, help="TCP port of the UI and the HTTP API.")
    model_name: str = option("omni", help="Model id reported by GET /v1/models and accepted in requests.")
    api_key: str | None = option(
        None, help="Key the HTTP API requires as 'Authorization: Bearer KEY' (and the UI as login password); "
        "null = open. Prefer the OMNI_API_KEY environment variable or --api-key over a file.")
    device: str = option("cpu", help="Torch device of every model (cpu, cuda, cuda:1).")
    torch_threads: int = option(0, help="torch intra-op threads (0 = torch's default).")

    # ---- concurrency and limits
    concurrency: int = option(2, help="Replies generated at the same time (the rest wait in the queue).")
    queue_size: int = option(32, help="Requests that may wait for a free slot; more are refused (HTTP 503).")
    queue_timeout_s: float = option(120.0, help="Longest wait for a free slot before an HTTP request gets 503.")
    trim_memory_when_idle: bool = option(
        True, help="When the last reply finishes, give freed heap pages back to the OS (glibc malloc_trim), so the "
        "resident size falls back after a burst of requests.")
    max_requests_per_client: int = option(
        4, help="/v1 requests one client address may have in flight at once; more get HTTP 429 (0: no limit).")
    generation_timeout_s: float = option(
        300.0, help="Longest time one reply may generate; a longer one is stopped and gets HTTP 504.")
    max_request_bytes: int = option(25_000_000, help="Largest accepted HTTP request body (uploads, base64 audio).")
    max_audio_seconds: float = option(60.0, help="Longest accepted input audio, in seconds.")
    min_audio_seconds: float = option(0.1, help="Shortest accepted input audio (the tokenizer needs >= 80 ms).")
    max_text_chars: int = option(4096, help="Longest text of a message or of POST /v1/audio/speech input.")
    max_tokens: int = option(1024, help="Most generated positions in one reply (text tokens, markers, frames).")
    default_max_tokens: int = option(512, help="Generated positions when a request does not say.")
    max_context_tokens: int = option(
        4096, help="Longest prompt; the oldest turns of a session are dropped to fit, a single longer turn is an error.")
    max_images: int = option(4, help="Most images in one request.")

    # ---- chat defaults
    system_prompt: str = option("You are a helpful voice assistant. Answer briefly.",
                                help="Default system message of a new session ('' for none).")
    reply_mode: Literal["speech", "text"] = option(
        "speech", help="Default reply: speech (speech + text) or text (text only).")
    voice: str | None = option(None, help="Default voice (null: the bundle's first voice).")
    voice_dir: str | None = option(
        None, help="Directory of extra voices: NAME.npy / NAME.safetensors speaker embeddings (speaker_dim floats).")
    text: SamplingConfig = option(default_factory=SamplingConfig, help="Default sampling of text tokens.")
    audio: SamplingConfig = option(default_factory=SamplingConfig, help="Default sampling of audio codes.")
    max_audio_frames: int = option(750, help="Most frames in one speech segment (750 = 60 s at 12.5 Hz).")
    min_audio_frames: int = option(
        8, help="No speech segment is closed before this many frames (8 = the decoder's first chunk + look-ahead).")

    # ---- when to speak
    speech_switch: Literal["sentence", "end", "model"] = option(
        "sentence", help="In speech mode: 'sentence' switches to speech after each sentence (or after "
        "first_segment_tokens / segment_tokens text tokens), as Baichuan-Omni's demo does; 'end' only when the "
        "model would stop with unspoken text; 'model' never steers.")
    first_segment_tokens: int = option(
        6, help="Text tokens before the first forced switch to speech (bounds the time to first audio).")
    segment_tokens: int = option(48, help="Text tokens of a later segment before a forced switch to speech.")
    stream_audio: bool = option(True, help="Decode speech chunk by chunk while the LLM generates (false: per segment).")
    decoder: dict = option(
        default_factory=dict, help="SpeechDecoderConfig overrides for serving (chunk_tokens, n_steps, ...).")

    # ---- task prompts (the omni model is asked in words; match them to the SFT data)
    transcribe_prompt: str = option("Transcribe the speech.", help="Instruction of POST /v1/audio/transcriptions.")
    speech_prompt: str = option("Read this text aloud: {text}",
                                help="Instruction of POST /v1/audio/speech ({text} = the input).")
    audio_cache: int = option(256, help="Generated replies whose speech later API turns may cite by audio id.")

    def __post_init__(self) -> None:
        check(1 <= self.port <= 65535, "port", f"must be a TCP port (1-65535), got {self.port}")
        check(bool(self.model_name), "model_name", "must not be empty")
        check(self.torch_threads >= 0, "torch_threads", "must be >= 0")
        check(self.concurrency >= 1, "concurrency", "must be >= 1")
        check(self.queue_size >= 0, "queue_size", "must be >= 0")
        check(self.queue_timeout_s > 0, "queue_timeout_s", "must be > 0")
        check(self.max_requests_per_client >= 0, "max_requests_per_client", "must be >= 0 (0: no limit)")
        check(self.generation_timeout_s > 0, "generation_timeout_s", "must be > 0")
        check(self.max_request_bytes >= 1024, "max_request_bytes", "must be >= 1024")
        check(0 < self.min_audio_seconds < self.max_audio_seconds, "min_audio_seconds",
              "must be > 0 and below max_audio_seconds")
        check(self.max_text_chars >= 1, "max_text_chars", "must be >= 1")
        check(self.max_tokens >= 1, "max_tokens", "must be >= 1")
        check(1 <= self.default_max_tokens <= self.max_tokens, "default_max_tokens", "must be in [1, max_tokens]")
        check(self.max_context_tokens >= 16, "max_context_tokens", "must be >= 16")
        check(self.max_images >= 0, "max_images", "must be >= 0")
        check(1 <= self.max_audio_frames, "max_audio_frames", "must be >= 1")
        check(0 <= self.min_audio_frames <= self.max_audio_frames, "min_audio_frames", "must be in [0, max_audio_frames]")
        check(self.first_segment_tokens >= 1, "first_segment_tokens", "must be >= 1")
        check(self.segment_tokens >= 1, "segment_tokens", "must be >= 1")
        check("{text}" in self.speech_prompt, "speech_prompt", "must contain {text}")
        check(self.audio_cache >= 0, "audio_cache", "must be >= 0")
        check("flow_dir" not in self.decoder and "vocoder_dir" not in self.decoder, "decoder",
              "flow_dir / vocoder_dir come from the checkpoint bundle")


@dataclass
class ChatSettings:
    """Per-session (or per-request) choices; defaults come from :class:`ServeConfig`."""

    system_prompt: str = ""
    reply_mode: Literal["speech", "text"] = "speech"
    voice: str | None = None
    max_tokens: int = 512
    text: SamplingConfig = field(default_factory=SamplingConfig)
    audio: SamplingConfig = field(default_factory=SamplingConfig)
    seed: int | None = None

    @classmethod
    def defaults(cls, cfg: ServeConfig) -> ChatSettings:
        return cls(system_prompt=cfg.system_prompt, reply_mode=cfg.reply_mode, voice=cfg.voice,
                   max_tokens=cfg.default_max_tokens, text=cfg.text, audio=cfg.audio)

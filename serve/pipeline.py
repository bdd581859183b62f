"""SpeechChat: the serving engine (no UI code). Speech / text / images in, streamed text and speech out.

::

    user audio (T,) --AudioTokenizer--> codes (N, 8) ─┐
    text, images ─────────────────────────────────────┼─► chat template (system + history + turn) ─► OmniModel.stream
                                                      │        │ TextPiece ────────────────────────────► TextDelta
                                                      │        │ AudioFrame (8,) ─► FrameDecoder thread ─► AudioDelta (24 kHz)
                                                      │        ▼ (SpeechSwitch steers when to speak)
                                                      └── history += user turn, assistant turn (text + speech codes)

Usage::

    chat = SpeechChat.from_checkpoint("runs/bundle", ServeConfig())
    session = chat.new_session(voice="flite:rms")
    for event in chat.chat(session, UserTurn(audio=wav, sample_rate=16000)):
        if isinstance(event, TextDelta): print(event.text, end="")
        elif isinstance(event, AudioDelta): play(event.samples, event.sample_rate)
        elif isinstance(event, ReplyDone): print(event.reply.metrics)

Every model is loaded once; replies run concurrently up to ``cfg.concurrency`` (a
semaphore; more wait up to ``queue_timeout_s``), each with its own prompt and caches,
so sessions never share state. The LLM and the speech decoder run in two threads
per reply, so decoding overlaps generation.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from omni.audio.io import AudioError, AudioLimits, check_waveform, load_audio
from omni.model import Audio as AudioPart
from omni.model import AudioFrame, AudioSegmentEnd, Finished, GenerationConfig, Message, TextPiece
from omni.model import Image as ImagePart
from omni.model import Text as TextPart
from serve.audio_stream import FrameDecoder, SpeechChunk
from serve.config import ChatSettings, ServeConfig
from serve.errors import EngineBusy, GenerationTimeout, InputError
from serve.memory import trim_heap
from serve.speech_policy import GenerationCancelled, SpeechSwitch, sentence_end_mask
from serve.voices import VoiceBook


@dataclass
class UserTurn:
    """One user message: any of speech (T,) float32 at ``sample_rate``, text, and PIL images."""

    text: str = ""
    audio: np.ndarray | None = None
    sample_rate: int = 16000
    images: list = field(default_factory=list)


@dataclass
class TextDelta:
    """New reply text."""

    text: str


@dataclass
class AudioDelta:
    """New reply speech: (n,) float32 samples at ``sample_rate``, of speech segment ``segment``."""

    samples: np.ndarray
    sample_rate: int
    segment: int


@dataclass
class LatencyMetrics:
    """Timings of one reply, in seconds from the request's start (``t0``).

    Attributes:
        ttft_s / ttfa_s: time to the first text piece / first audio chunk (None when there was none).
        llm_steps_first_audio: LLM steps that had run when the first audio chunk's last frame was generated.
        rtf: real-time factor, total time / seconds of speech produced (None without speech).
        queue_s: time spent waiting for a free slot.
    """

    prompt_tokens: int = 0
    llm_steps: int = 0
    audio_frames: int = 0
    ttft_s: float | None = None
    ttfa_s: float | None = None
    llm_steps_first_audio: int | None = None
    total_s: float = 0.0
    audio_s: float = 0.0
    rtf: float | None = None
    queue_s: float = 0.0

    def summary(self) -> str:
        """One line for logs and the UI."""
        f = lambda v, unit="s": "-" if v is None else f"{v:.2f}{unit}"  # noqa: E731
        return (f"first text {f(self.ttft_s)} · first audio {f(self.ttfa_s)} "
                f"({'-' if self.llm_steps_first_audio is None else self.llm_steps_first_audio} LLM steps) · "
                f"total {f(self.total_s)} · speech {f(self.audio_s)} · RTF {f(self.rtf, '')}")


@dataclass
class Reply:
    """A finished (or cancelled) reply.

    Attributes:
        text: the reply's text.
        message: the assistant turn as the history keeps it (text and speech codes in order).
        segments: codes (n, K) of each speech segment.
        audio: (S,) float32 speech at ``sample_rate`` (empty without speech).
        finish_reason: stop, length or cancelled.
    """

    text: str
    message: Message
    segments: list[torch.Tensor]
    audio: np.ndarray
    sample_rate: int
    finish_reason: str
    metrics: LatencyMetrics


@dataclass
class ReplyDone:
    """Last event of a reply."""

    reply: Reply


ChatEvent = TextDelta | AudioDelta | ReplyDone


@dataclass
class ChatSession:
    """One conversation: its settings and history (user and assistant turns, system prompt excluded)."""

    settings: ChatSettings
    history: list[Message] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def clear(self) -> None:
        self.history.clear()


@dataclass
class ReplyPlan:
    """Everything one reply is generated from (see :meth:`SpeechChat.plan`).

    Attributes:
        prompt: the encoded conversation (``OmniExample``), ending with the modality switch when speech comes first.
        gen: generation settings (length, sampling, whether speech is allowed).
        policy: the :class:`SpeechSwitch` logits processor (counts LLM steps; ``cancel`` stops it).
        speech: the reply may speak.
        cancel: set it to stop the generation at its next step.
    """

    prompt: object
    gen: GenerationConfig
    policy: SpeechSwitch
    speech: bool
    cancel: threading.Event


class SpeechChat:
    """The engine: a loaded bundle, the serving config, and the reply loop (see the module docstring)."""

    def __init__(self, bundle, cfg: ServeConfig):
        self.bundle = bundle
        self.cfg = cfg
        self.model = bundle.model
        self.tokenizer = bundle.audio_tokenizer
        self.decoder = bundle.speech_decoder
        if cfg.decoder:
            from decoders.speech_decoder import SpeechDecoder
            from omni.config import from_data, to_data

            dec_cfg = from_data(type(self.decoder.cfg), {**to_data(self.decoder.cfg), **cfg.decoder},
                                source="serve config 'decoder'")
            self.decoder = SpeechDecoder(self.decoder.flow, self.decoder.vocoder, dec_cfg)
        self.voices = VoiceBook(bundle.voices, self.decoder.flow.cfg.speaker_dim, cfg.voice_dir)
        if cfg.voice is not None:
            self.voices.resolve(cfg.voice)  # a bad default voice fails at start
        self.limits = AudioLimits(max_seconds=cfg.max_audio_seconds, min_seconds=cfg.min_audio_seconds)
        vocab = self.model.backbone.get_output_embeddings().weight.shape[0]
        self._sentence_end = sentence_end_mask(self.model.tokenizer, vocab)
        self._slots = threading.BoundedSemaphore(cfg.concurrency)
        self._waiting = 0
        self._lock = threading.Lock()
        self.active = 0

    @classmethod
    def from_checkpoint(cls, path: str | Path, cfg: ServeConfig | None = None) -> SpeechChat:
        """Load a checkpoint bundle (``omni bundle ...``) from a local directory."""
        from omni.bundle import load_bundle

        cfg = cfg or ServeConfig()
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        return cls(load_bundle(path, device=cfg.device), cfg)

    # ------------------------------------------------------------------------------ facts
    @property
    def sample_rate(self) -> int:
        """Rate of the reply speech (24 kHz)."""
        return self.decoder.sample_rate

    @property
    def has_vision(self) -> bool:
        return self.model.vision is not None

    def voice_names(self) -> list[str]:
        return self.voices.names()

    # ------------------------------------------------------------------------------ sessions and settings
    def settings(self, **overrides) -> ChatSettings:
        """Default settings with ``overrides``, checked (unknown voice, max_tokens over the limit)."""
        s = replace(ChatSettings.defaults(self.cfg), **overrides)
        self.check_settings(s)
        return s

    def check_settings(self, s: ChatSettings) -> None:
        if s.reply_mode not in ("speech", "text"):
            raise InputError(f"reply mode must be 'speech' or 'text', got {s.reply_mode!r}", param="modalities")
        if not 1 <= s.max_tokens <= self.cfg.max_tokens:
            raise InputError(f"max_tokens must be in [1, {self.cfg.max_tokens}], got {s.max_tokens}",
                             param="max_tokens")
        if len(s.system_prompt) > self.cfg.max_text_chars:
            raise InputError(f"system prompt longer than {self.cfg.max_text_chars} characters", param="messages")
        self.voices.resolve(s.voice)

    def new_session(self, **overrides) -> ChatSession:
        return ChatSession(self.settings(**overrides))

    # ------------------------------------------------------------------------------ inputs
    def load_audio_file(self, path: str | Path, name: str | None = None) -> tuple[np.ndarray, int]:
        """Read an audio file with the server's limits; AudioError naming ``name`` (default: the path)."""
        try:
            audio = load_audio(path, limits=self.limits)
        except AudioError as e:
            raise AudioError(name or path, e.problem) from None
        return audio.samples, audio.sample_rate

    def encode_audio(self, samples: np.ndarray, sample_rate: int, name: str = "audio") -> torch.Tensor:
        """Speech (T,) -> codes (N, K), with the server's limits."""
        samples = np.asarray(samples, dtype=np.float32)
        check_waveform(samples, sample_rate, self.limits, name)
        try:
            return self.tokenizer.encode(samples, sample_rate)
        except AudioError as e:
            raise AudioError(name, e.problem) from None

    def image_part(self, image) -> ImagePart:
        """A PIL image -> the model's image segment (InputError when the checkpoint has no vision tower)."""
        if not self.has_vision:
            raise InputError("this checkpoint has no vision encoder: images are not accepted", param="image")
        from omni.model.vision_inputs import VisionProcessor

        return ImagePart(VisionProcessor(self.model.cfg.vision).images([image.convert("RGB")]))

    def user_message(self, turn: UserTurn) -> Message:
        """The user turn as a chat message: images, then speech codes, then text."""
        parts: list = []
        if len(turn.images) > self.cfg.max_images:
            raise InputError(f"at most {self.cfg.max_images} images per message, got {len(turn.images)}", param="image")
        parts += [self.image_part(im) for im in turn.images]
        if turn.audio is not None:
            parts.append(AudioPart(self.encode_audio(turn.audio, turn.sample_rate)))
        text = (turn.text or "").strip()
        if len(text) > self.cfg.max_text_chars:
            raise InputError(f"text longer than {self.cfg.max_text_chars} characters ({len(text)})", param="text")
        if text:
            parts.append(TextPart(text))
        if not parts:
            raise InputError("empty message: record or upload speech, or type a message", param="messages")
        return Message("user", parts)

    # ------------------------------------------------------------------------------ replies
    def chat(self, session: ChatSession, turn: UserTurn | Message, t0: float | None = None) -> Iterator[ChatEvent]:
        """One turn of a session: the reply's events. A finished turn and its reply join the history; a reply
        cancelled before its end (stop button, client gone) leaves the history as it was."""
        t0 = time.perf_counter() if t0 is None else t0
        user = turn if isinstance(turn, Message) else self.user_message(turn)
        messages = self.with_system(session.settings, [*session.history, user])
        done: Reply | None = None
        try:
            for event in self.reply(messages, session.settings, t0=t0):
                if isinstance(event, ReplyDone):
                    done = event.reply
                yield event
        finally:
            if done is not None:
                session.history += [user, done.message]

    def reply(self, messages: list[Message], settings: ChatSettings, *, speech_first: bool = False,
              t0: float | None = None) -> Iterator[ChatEvent]:
        """Generate the assistant's reply to ``messages`` (system prompt included by the caller).

        Args:
            speech_first: start the reply in speech (text-to-speech).
            t0: start of the request (``time.perf_counter()``), for the latency figures.

        Raises:
            InputError: the conversation does not fit ``max_context_tokens``; bad settings.
            EngineBusy: no free slot within ``queue_timeout_s``.
        """
        t0 = time.perf_counter() if t0 is None else t0
        plan = self.plan(messages, settings, speech_first=speech_first)
        metrics = LatencyMetrics(prompt_tokens=len(plan.prompt))
        self._acquire()
        metrics.queue_s = time.perf_counter() - t0
        try:
            runner = _ReplyRun(self, plan, settings, metrics, t0)
        except BaseException:
            self._release()
            raise
        yield from runner.events()

    def plan(self, messages: list[Message], settings: ChatSettings, *, speech_first: bool = False) -> ReplyPlan:
        """The prompt, generation settings and speech policy of a reply, without running it.

        :meth:`reply` runs a plan with the LLM and speech decoder threads; a caller that wants the
        same tokens without streaming (a benchmark's serial baseline, batch evaluation) passes
        ``plan.prompt, plan.gen, logits_processor=plan.policy`` to ``model.generate``.
        """
        self.check_settings(settings)
        speech = settings.reply_mode == "speech" or speech_first
        prompt = self._prompt(messages, speech_first)
        gen = GenerationConfig(max_new_tokens=settings.max_tokens, max_audio_frames=self.cfg.max_audio_frames,
                               min_audio_frames=self.cfg.min_audio_frames if speech else 0,
                               text=settings.text, audio=settings.audio, allow_audio=speech, seed=settings.seed)
        cancel = threading.Event()
        policy = SpeechSwitch(self.model.token_ids, self._sentence_end, self.cfg.speech_switch if speech else "model",
                              self.cfg.first_segment_tokens, self.cfg.segment_tokens, len(prompt),
                              int(prompt.input_ids[-1]), cancel)
        return ReplyPlan(prompt, gen, policy, speech, cancel)

    def respond(self, messages: list[Message], settings: ChatSettings, **kw) -> Reply:
        """:meth:`reply`, collected."""
        for event in self.reply(messages, settings, **kw):
            if isinstance(event, ReplyDone):
                return event.reply
        raise RuntimeError("reply ended without a result")  # pragma: no cover

    def transcribe(self, samples: np.ndarray, sample_rate: int, prompt: str | None = None) -> Reply:
        """Speech -> text with the transcription instruction (greedy, text only)."""
        codes = self.encode_audio(samples, sample_rate, "file")
        text = self.cfg.transcribe_prompt + (f" {prompt}" if prompt else "")
        message = Message("user", [AudioPart(codes), TextPart(text)])
        return self.respond([message], self.settings(reply_mode="text", system_prompt=""))

    def speak(self, text: str, voice: str | None = None, max_tokens: int | None = None) -> Iterator[ChatEvent]:
        """Text -> speech: the model is asked to read ``text`` and starts its reply in speech."""
        text = text.strip()
        if not text:
            raise InputError("input: empty text", param="input")
        if len(text) > self.cfg.max_text_chars:
            raise InputError(f"input longer than {self.cfg.max_text_chars} characters ({len(text)})", param="input")
        settings = self.settings(reply_mode="speech", system_prompt="", voice=voice,
                                 max_tokens=max_tokens or self.cfg.default_max_tokens)
        message = Message("user", self.cfg.speech_prompt.format(text=text))
        return self.reply([message], settings, speech_first=True)

    # ------------------------------------------------------------------------------ internals
    @staticmethod
    def with_system(settings: ChatSettings, messages: list[Message]) -> list[Message]:
        prompt = settings.system_prompt.strip()
        return [Message("system", prompt), *messages] if prompt else list(messages)

    def _prompt(self, messages: list[Message], speech_first: bool):
        """Encode the conversation, dropping the oldest turns (not system ones) until it fits."""
        system = [m for m in messages[:1] if m.role == "system"]
        rest = messages[len(system):]
        while True:
            ex = self.model.encode(system + rest, add_generation_prompt=True)
            if len(ex) <= self.cfg.max_context_tokens or len(rest) <= 1:
                break
            rest = rest[1:]
            while rest and rest[0].role == "assistant":  # keep turns in user/assistant pairs
                rest = rest[1:]
        if len(ex) > self.cfg.max_context_tokens:
            raise InputError(f"the message is too long: {len(ex)} tokens > max_context_tokens "
                             f"({self.cfg.max_context_tokens})", param="messages", code="context_length_exceeded")
        if speech_first:
            start = torch.tensor([self.model.token_ids.audio_gen_start])
            ex = replace(ex, input_ids=torch.cat([ex.input_ids, start]),
                         labels=torch.cat([ex.labels, torch.full_like(start, -100)]))
        return ex

    def _acquire(self) -> None:
        """Take a generation slot, waiting in line up to ``queue_timeout_s`` (EngineBusy otherwise)."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self.cfg.queue_size:
                    raise EngineBusy(f"server busy: {self._waiting} requests are already waiting; retry later")
                self._waiting += 1
            try:
                ok = self._slots.acquire(timeout=self.cfg.queue_timeout_s)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not ok:
                raise EngineBusy(f"server busy: no free slot within {self.cfg.queue_timeout_s:g} s; retry later")
        with self._lock:
            self.active += 1

    def _release(self) -> None:
        with self._lock:
            self.active -= 1
            idle = self.active == 0 and self._waiting == 0
        self._slots.release()
        if idle and self.cfg.trim_memory_when_idle:
            trim_heap()


class _ReplyRun:
    """One reply: the LLM thread, the decoder thread, and the merged event stream the caller iterates."""

    def __init__(self, chat: SpeechChat, plan: ReplyPlan, settings: ChatSettings, metrics: LatencyMetrics, t0: float):
        self.chat, self.metrics, self.t0 = chat, metrics, t0
        self.prompt, self.gen, self.policy, self.speech, self.cancel = (plan.prompt, plan.gen, plan.policy,
                                                                        plan.speech, plan.cancel)
        self.out: queue.Queue = queue.Queue()
        self.decoder: FrameDecoder | None = None
        if plan.speech:
            self.decoder = FrameDecoder(chat.decoder, chat.voices.resolve(settings.voice),
                                        on_chunk=lambda c: self.out.put(("audio", c)),
                                        on_error=lambda e: self.out.put(("error", e)), stream=chat.cfg.stream_audio)
        self.timed_out = False
        self.timer = threading.Timer(chat.cfg.generation_timeout_s, self._timeout)
        self.timer.daemon = True
        self.thread = threading.Thread(target=self._llm, name="omni-llm", daemon=True)
        self.thread.start()
        self.timer.start()

    def _timeout(self) -> None:
        self.timed_out = True
        self.cancel.set()  # the speech policy stops the LLM at its next step, the decoder is cancelled

    def _llm(self) -> None:
        """LLM thread: stream events, feed frames to the decoder, collect the assistant turn."""
        parts: list = []
        segments: list[list[torch.Tensor]] = []
        reason = "length"
        try:
            with torch.inference_mode():
                for ev in self.chat.model.stream(self.prompt, self.gen, logits_processor=self.policy):
                    if isinstance(ev, TextPiece):
                        if parts and isinstance(parts[-1], str):
                            parts[-1] += ev.text
                        else:
                            parts.append(ev.text)
                        self.out.put(("text", ev.text))
                    elif isinstance(ev, AudioFrame):
                        if not parts or not isinstance(parts[-1], list):
                            parts.append([])
                            segments.append(parts[-1])
                        parts[-1].append(ev.codes)
                        self.decoder.push(ev.codes, self.policy.calls)
                    elif isinstance(ev, AudioSegmentEnd):
                        if self.decoder is not None:
                            self.decoder.end_segment()
                        if parts and isinstance(parts[-1], list):
                            parts.append(None)  # a later frame opens a new segment
                    elif isinstance(ev, Finished):
                        reason = ev.reason
        except GenerationCancelled:
            reason = "cancelled"
        except BaseException as e:
            self.out.put(("error", e))
            reason = "error"
        finally:
            try:
                if self.decoder is not None:
                    if reason in ("cancelled", "error"):
                        self.decoder.cancel()
                    else:
                        self.decoder.close()
                    self.decoder.join()
            finally:
                self.chat._release()
                self.out.put(("done", reason, [p for p in parts if p is not None], self.policy.calls))

    def events(self) -> Iterator[ChatEvent]:
        m = self.metrics
        chunks: list[np.ndarray] = []
        try:
            while True:
                kind, *payload = self.out.get()
                now = time.perf_counter() - self.t0
                if kind == "text":
                    if m.ttft_s is None:
                        m.ttft_s = now
                    yield TextDelta(payload[0])
                elif kind == "audio":
                    chunk: SpeechChunk = payload[0]
                    if m.ttfa_s is None:
                        m.ttfa_s, m.llm_steps_first_audio = now, chunk.llm_step
                    chunks.append(chunk.samples)
                    yield AudioDelta(chunk.samples, chunk.sample_rate, chunk.segment)
                elif kind == "error":
                    self.cancel.set()
                    raise payload[0]
                else:
                    reason, parts, steps = payload
                    if self.timed_out and reason == "cancelled":
                        raise GenerationTimeout(f"the reply took longer than generation_timeout_s "
                                                f"({self.chat.cfg.generation_timeout_s:g} s) and was stopped")
                    yield ReplyDone(self._finish(reason, parts, steps, chunks))
                    return
        finally:
            self.timer.cancel()
            self.cancel.set()  # a consumer that stops early (client gone, stop button) stops the threads

    def _finish(self, reason: str, parts: list, steps: int, chunks: list[np.ndarray]) -> Reply:
        m = self.metrics
        content, segments, text = [], [], ""
        for p in parts:
            if isinstance(p, str):
                content.append(TextPart(p))
                text += p
            elif p:
                codes = torch.stack(p)  # (n, K)
                segments.append(codes)
                content.append(AudioPart(codes))
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        m.llm_steps = steps
        m.audio_frames = sum(int(s.shape[0]) for s in segments)
        m.total_s = time.perf_counter() - self.t0
        m.audio_s = len(audio) / self.chat.sample_rate
        m.rtf = m.total_s / m.audio_s if m.audio_s > 0 else None
        return Reply(text=text, message=Message("assistant", content), segments=segments, audio=audio,
                     sample_rate=self.chat.sample_rate, finish_reason=reason, metrics=m)

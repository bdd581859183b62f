"""The Gradio voice chat UI (Blocks): speech or text in, streamed speech and text out, over a :class:`SpeechChat`.

Layout: the chat history (the user's recordings and messages, the reply text and the reply audio),
a streaming audio player that starts while the reply is generated, inputs (microphone / upload,
text box, optional image), settings (voice, reply mode, system prompt, sampling, length), send /
stop / clear buttons and a latency readout (time to first text and first audio, LLM steps before
the first audio, real-time factor). Each browser session holds its own :class:`ChatSession`
(``gr.State``), so histories never mix; the queue runs ``cfg.concurrency`` replies at a time.

The UI has no model code: everything goes through the engine (``serve.pipeline``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np

from omni.audio.io import AudioError, save_audio
from omni.config import FieldError
from omni.model.sampling import SamplingConfig
from serve.errors import ServeError
from serve.pipeline import AudioDelta, ChatSession, ReplyDone, SpeechChat, TextDelta, UserTurn

MODES = {"speech + text": "speech", "text only": "text"}
USER_ERRORS = (ServeError, AudioError, FieldError)


def _latency_md(metrics=None, note: str = "") -> str:
    if metrics is None:
        return f"**Latency** — {note or 'no reply yet'}"
    m = metrics
    fmt = lambda v, unit=" s": "–" if v is None else f"{v:.2f}{unit}"  # noqa: E731
    steps = "–" if m.llm_steps_first_audio is None else str(m.llm_steps_first_audio)
    return (f"**Latency** — first text token: {fmt(m.ttft_s)} · first audio chunk: {fmt(m.ttfa_s)} "
            f"({steps} LLM steps) · total: {fmt(m.total_s)} · speech: {fmt(m.audio_s)} · "
            f"real-time factor: {fmt(m.rtf, '')}")


def _int16(samples: np.ndarray) -> np.ndarray:
    """Float chunk -> int16 (Gradio normalises float arrays by their peak, which would change the gain per chunk)."""
    return (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)


@dataclass
class UiState:
    """One browser session: the engine's chat session and the messages shown."""

    session: ChatSession
    shown: list = field(default_factory=list)


def build_ui(engine: SpeechChat, out_dir: str | Path | None = None) -> gr.Blocks:
    """The Blocks app; reply audio files are written under ``out_dir`` (a temp directory by default)."""
    cfg = engine.cfg
    out = Path(out_dir or tempfile.mkdtemp(prefix="omni-serve-"))
    out.mkdir(parents=True, exist_ok=True)
    voices = engine.voice_names()

    def respond(audio_path, text, image_path, voice, mode, system, temperature, top_p, max_tokens,
                state: UiState | None):
        t0 = time.perf_counter()
        state = state or UiState(engine.new_session())
        session, history = state.session, state.shown
        try:
            session.settings = engine.settings(
                voice=voice or None, reply_mode=MODES.get(mode, "speech"), system_prompt=system or "",
                max_tokens=int(max_tokens),
                text=SamplingConfig(do_sample=True, temperature=float(temperature), top_p=float(top_p))
                if temperature and temperature > 0 else SamplingConfig())
            turn = UserTurn(text=text or "")
            if audio_path:
                turn.audio, turn.sample_rate = engine.load_audio_file(audio_path, name="the recording / upload")
            if image_path:
                from PIL import Image

                turn.images.append(Image.open(image_path))
            user = engine.user_message(turn)
        except USER_ERRORS as e:
            raise gr.Error(str(e), title="Cannot send this message") from None
        except OSError as e:  # an unreadable image
            raise gr.Error(f"cannot read the image: {e}", title="Cannot send this message") from None

        shown = [*([{"path": image_path}] if image_path else []), *([{"path": audio_path}] if audio_path else []),
                 *([text] if text else [])]
        history.append({"role": "user", "content": shown})
        history.append({"role": "assistant", "content": ""})
        reply_text = ""
        yield history, None, _latency_md(note="generating…"), state, None, ""
        try:
            for ev in engine.chat(session, user, t0=t0):
                if isinstance(ev, TextDelta):
                    reply_text += ev.text
                    history[-1] = {"role": "assistant", "content": reply_text}
                    yield history, None, gr.skip(), state, gr.skip(), gr.skip()
                elif isinstance(ev, AudioDelta):
                    yield history, (ev.sample_rate, _int16(ev.samples)), gr.skip(), state, gr.skip(), gr.skip()
                elif isinstance(ev, ReplyDone):
                    reply = ev.reply
                    history[-1] = {"role": "assistant", "content": reply.text or "(no text)"}
                    if reply.audio.size:
                        path = out / f"reply-{session.id}-{len(session.history) // 2:03d}.wav"
                        save_audio(path, reply.audio, reply.sample_rate)
                        history.append({"role": "assistant", "content": {"path": str(path)}})
                    yield history, None, _latency_md(reply.metrics), state, gr.skip(), gr.skip()
        except USER_ERRORS as e:
            raise gr.Error(str(e), title="Cannot answer") from None

    def clear():
        return None, [], None, _latency_md(), None, "", None

    with gr.Blocks(title="omni voice chat") as demo:
        gr.Markdown("# omni voice chat\nSpeak or type; the reply is spoken while it is generated. "
                    f"Model: `{cfg.model_name}` · voices: {', '.join(voices) or 'default'}")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Conversation", height=420, elem_id="chat")
                reply_audio = gr.Audio(label="Reply (streamed)", streaming=True, autoplay=True, interactive=False,
                                       elem_id="reply-audio")
                latency = gr.Markdown(_latency_md(), elem_id="latency")
            with gr.Column(scale=2):
                audio_in = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Speak or upload",
                                    elem_id="audio-in")
                text_in = gr.Textbox(label="Message", placeholder="Type a message (optional with speech)", lines=2,
                                     elem_id="text-in")
                image_in = gr.Image(type="filepath", label="Image (optional)", visible=engine.has_vision,
                                    elem_id="image-in")
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    stop = gr.Button("Stop", variant="stop", elem_id="stop")
                    clear_btn = gr.Button("Clear", elem_id="clear")
                with gr.Accordion("Settings", open=False):
                    voice = gr.Dropdown(voices, value=cfg.voice or (voices[0] if voices else None), label="Voice",
                                        allow_custom_value=False)
                    mode = gr.Radio(list(MODES), value="speech + text" if cfg.reply_mode == "speech" else "text only",
                                    label="Reply")
                    system = gr.Textbox(cfg.system_prompt, label="System prompt", lines=2)
                    temperature = gr.Slider(0.0, 1.5, value=cfg.text.temperature if cfg.text.do_sample else 0.0,
                                            step=0.05, label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0.05, 1.0, value=cfg.text.top_p, step=0.05, label="Top-p")
                    max_tokens = gr.Slider(16, cfg.max_tokens, value=cfg.default_max_tokens, step=16,
                                           label="Max generated tokens (text + speech frames)")

        inputs = [audio_in, text_in, image_in, voice, mode, system, temperature, top_p, max_tokens, state]
        outputs = [chatbot, reply_audio, latency, state, audio_in, text_in]
        # progress and errors show on the latency readout (not as overlays that hide the conversation)
        kw = dict(concurrency_limit=cfg.concurrency, concurrency_id="chat", show_progress_on=[latency])
        on_send = send.click(respond, inputs, outputs, api_name="chat", **kw)
        on_submit = text_in.submit(respond, inputs, outputs, api_name=False, **kw)
        stop.click(None, None, None, cancels=[on_send, on_submit], api_name=False)
        clear_btn.click(clear, None, [state, chatbot, reply_audio, latency, audio_in, text_in, image_in],
                        cancels=[on_send, on_submit], api_name="clear")
    demo.queue(max_size=cfg.queue_size or None, default_concurrency_limit=cfg.concurrency)
    demo.reply_dir = out  # noqa: B010 -- where reply files go (allowed path of the mounted app)
    return demo

"""Streaming speech replies: LLM steps before the first audio chunk, and time to the first audio chunk
against the total time of a 10 s spoken reply, through the server's engine (:class:`serve.pipeline.SpeechChat`).

The model is a random tiny bundle (``omni bundle tiny``, built in a temporary directory): its timings
are plumbing figures, not a trained model's speed; the *structure* carries over (how many LLM steps run
before the first chunk, how early the first chunk comes relative to the whole reply). The reply is a
read-aloud request (speech first) forced to one 125-frame (10 s at 12.5 Hz) speech segment, greedy.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from omni.bench.core import BenchContext, Figure, Goal

REPLY_FRAMES = 125  # 10 s at 12.5 Hz


def reply_once(engine, messages) -> tuple[float, float, float, int]:
    """(seconds to the first audio chunk, total seconds, seconds of speech, LLM steps before the first chunk)."""
    from serve.pipeline import AudioDelta, ReplyDone

    t0 = time.perf_counter()
    ttfa, reply = None, None
    for ev in engine.reply(messages, engine.settings(system_prompt=""), speech_first=True, t0=t0):
        if isinstance(ev, AudioDelta) and ttfa is None:
            ttfa = time.perf_counter() - t0
        elif isinstance(ev, ReplyDone):
            reply = ev.reply
    total = time.perf_counter() - t0
    if ttfa is None or reply is None:
        raise RuntimeError("the reply produced no audio")
    return ttfa, total, reply.metrics.audio_s, reply.metrics.llm_steps_first_audio


def bench_streaming(ctx: BenchContext) -> list[Figure]:
    from omni.bundle import tiny_bundle
    from omni.model import Message
    from serve.config import ServeConfig
    from serve.pipeline import SpeechChat

    frames = 25 if ctx.cfg.quick else REPLY_FRAMES
    cfg = ServeConfig(device=ctx.cfg.device, default_max_tokens=frames + 2, min_audio_frames=frames,
                      max_audio_frames=frames)
    with tempfile.TemporaryDirectory(prefix="omni-bench-stream-") as tmp:
        engine = SpeechChat.from_checkpoint(tiny_bundle(Path(tmp) / "bundle"), cfg)
        messages = [Message("user", cfg.speech_prompt.format(text="Hello there, how are you today?"))]
        reply_once(engine, messages)  # warm-up
        runs = [reply_once(engine, messages) for _ in range(ctx.repeats)]
    ttfa = statistics.median(r[0] for r in runs)
    total = statistics.median(r[1] for r in runs)
    speech = runs[0][2]
    steps = max(r[3] for r in runs)
    dec = engine.decoder.cfg
    return [
        Figure("LLM steps before the first audio chunk", steps, "steps", goal=Goal("<=", 16),
               note=f"decoder first chunk {dec.first_chunk_tokens} + look-ahead {dec.lookahead_tokens} frames"),
        Figure(f"time to first audio vs total reply ({speech:.1f} s of speech)", ttfa, "s", total, "total reply s",
               Goal("<=", 0.2), note="random tiny bundle: plumbing figures; greedy, streaming engine"),
    ]

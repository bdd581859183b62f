"""Serving latency: time to first audio chunk and total time, streaming vs non-streaming, on a fixed prompt set.

    PYTHONPATH=. python bench/bench_serve.py --device cpu --threads 1 [--checkpoint DIR] [--repeats 3]

Without ``--checkpoint`` a random tiny bundle (``omni bundle tiny``) is built in a temporary
directory: its timings are plumbing figures (a ~1 M parameter model talks nonsense fast), not
the speed of a trained model. For each prompt, in one process and interleaved (A B C A B C ...)
so machine load affects the three alike, greedy decoding so all three make the same tokens:

* ``stream``: the server's path (:class:`serve.pipeline.SpeechChat`, ``stream_audio: true``):
  the LLM thread feeds each speech frame to ``SpeechDecoder.stream``, which emits a chunk
  after its first ``first_chunk_tokens + lookahead_tokens`` frames;
* ``segment``: the same engine with ``stream_audio: false``: each speech segment is synthesised
  whole once the LLM closes it (decoding still overlaps the LLM's next text);
* ``serial``: non-streaming: ``model.generate`` on the same plan, then ``SpeechDecoder.synthesize``
  of every segment; the first audio is the whole reply (what a non-streaming API returns).

It prints, per prompt and mode, the median time to first text token (TTFT), to first audio
chunk (TTFA), total time, seconds of speech and real-time factor, plus the LLM steps that had
run when the first audio chunk's last frame was generated (goal <= 16), and the ratios
stream / serial and segment / serial of the medians over prompts. ``--device cuda`` is skipped
with a note when no GPU is available.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from omni.bench.timing import use_device
from omni.model import Message
from serve.config import ServeConfig
from serve.pipeline import AudioDelta, ReplyDone, SpeechChat, TextDelta, UserTurn

MODES = ("stream", "segment", "serial")


def speech_like(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced-sounding signal (harmonics, wobbling pitch, syllable-rate envelope), float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 1.5 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    return (0.3 * x / np.abs(x).max() + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


#: The fixed prompt set: (name, user turn or TTS text).
PROMPTS: list[tuple[str, UserTurn | str]] = [
    ("speech 2 s", UserTurn(audio=speech_like(2.0, seed=1), sample_rate=16000)),
    ("speech 4 s + text", UserTurn(text="Answer briefly.", audio=speech_like(4.0, seed=2), sample_rate=16000)),
    ("text question", UserTurn(text="What is two plus three?")),
    ("text request", UserTurn(text="Tell me a short story about a cat and a dog.")),
    ("tts (speech first)", "Hello there, how are you today?"),
]


@dataclass
class Run:
    """One reply's figures (seconds)."""

    ttft: float | None
    ttfa: float | None
    total: float
    audio_s: float
    steps_first_audio: int | None
    steps: int
    codes: list[torch.Tensor]


def messages_for(engine: SpeechChat, prompt: UserTurn | str) -> tuple[list[Message], bool]:
    if isinstance(prompt, str):
        return [Message("user", engine.cfg.speech_prompt.format(text=prompt))], True
    settings = engine.settings()
    return engine.with_system(settings, [engine.user_message(prompt)]), False


def run_engine(engine: SpeechChat, messages: list[Message], speech_first: bool) -> Run:
    """``stream`` / ``segment``: the engine's threaded reply, timed from the call."""
    t0 = time.perf_counter()
    settings = engine.settings(system_prompt="") if speech_first else engine.settings()
    ttft = ttfa = None
    reply = None
    for ev in engine.reply(messages, settings, speech_first=speech_first, t0=t0):
        now = time.perf_counter() - t0
        if isinstance(ev, TextDelta) and ttft is None:
            ttft = now
        elif isinstance(ev, AudioDelta) and ttfa is None:
            ttfa = now
        elif isinstance(ev, ReplyDone):
            reply = ev.reply
    total = time.perf_counter() - t0
    m = reply.metrics
    return Run(ttft, ttfa, total, m.audio_s, m.llm_steps_first_audio, m.llm_steps, reply.segments)


def run_serial(engine: SpeechChat, messages: list[Message], speech_first: bool) -> Run:
    """``serial``: generate the whole reply, then synthesise its speech; everything arrives at the end."""
    t0 = time.perf_counter()
    settings = engine.settings(system_prompt="") if speech_first else engine.settings()
    plan = engine.plan(messages, settings, speech_first=speech_first)
    voice = engine.voices.resolve(settings.voice)
    with torch.inference_mode():
        out = engine.model.generate(plan.prompt, plan.gen, logits_processor=plan.policy)
        segments = [s for s in out.segments[0] if s.shape[0]]
        audio = [engine.decoder.synthesize(s, speaker=voice).cpu().numpy() for s in segments]
    total = time.perf_counter() - t0
    audio_s = sum(len(a) for a in audio) / engine.sample_rate
    return Run(total if out.text[0] else None, total if audio else None, total, audio_s,
               plan.policy.calls if audio else None, plan.policy.calls, segments)


def med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "-" if v is None else f"{v * scale:.{digits}f}"


def bench(checkpoint: Path, device: str, repeats: int, max_tokens: int, min_audio_frames: int) -> dict:
    cfg = ServeConfig(device=device, default_max_tokens=max_tokens, max_tokens=max(max_tokens, 1024),
                      min_audio_frames=min_audio_frames)
    stream = SpeechChat.from_checkpoint(checkpoint, cfg)
    engines = {"stream": stream, "segment": SpeechChat(stream.bundle, replace(cfg, stream_audio=False))}
    dec = stream.decoder.cfg
    print(f"checkpoint {checkpoint} · device {device} · torch threads {torch.get_num_threads()} · "
          f"max_tokens {max_tokens} · speech_switch {cfg.speech_switch} (first segment after "
          f"<= {cfg.first_segment_tokens} text tokens) · decoder first chunk {dec.first_chunk_tokens} + "
          f"look-ahead {dec.lookahead_tokens} frames, then {dec.chunk_tokens} · speech segments >= "
          f"{min_audio_frames} frames · median of {repeats}")
    results: dict[str, dict[str, list[Run]]] = {name: {m: [] for m in MODES} for name, _ in PROMPTS}
    for name, prompt in PROMPTS:
        messages, speech_first = messages_for(stream, prompt)
        run_engine(stream, messages, speech_first)  # warm-up
        for _ in range(repeats):
            for mode in MODES:
                r = (run_serial(stream, messages, speech_first) if mode == "serial"
                     else run_engine(engines[mode], messages, speech_first))
                results[name][mode].append(r)
        ref = results[name]["serial"][0].codes
        for mode in MODES:  # greedy: every mode made exactly the same speech
            for r in results[name][mode]:
                assert len(r.codes) == len(ref) and all(torch.equal(a, b) for a, b in zip(r.codes, ref)), \
                    f"{name}: {mode} made different speech codes"

    print(f"\n{'prompt':<20}{'mode':<9}{'TTFT s':>8}{'TTFA s':>8}{'total s':>9}{'speech s':>9}{'RTF':>7}"
          f"{'steps to 1st audio':>20}{'LLM steps':>11}")
    summary: dict[str, dict[str, list[float | None]]] = {m: {"ttfa": [], "total": [], "steps": []} for m in MODES}
    for name, _ in PROMPTS:
        for mode in MODES:
            runs = results[name][mode]
            ttfa, total, audio_s = med([r.ttfa for r in runs]), med([r.total for r in runs]), runs[0].audio_s
            steps = runs[0].steps_first_audio
            rtf = total / audio_s if audio_s else None
            print(f"{name:<20}{mode:<9}{fmt(med([r.ttft for r in runs])):>8}{fmt(ttfa):>8}{fmt(total):>9}"
                  f"{fmt(audio_s, digits=2):>9}{fmt(rtf, digits=2):>7}{'-' if steps is None else steps:>20}"
                  f"{runs[0].steps:>11}")
            summary[mode]["ttfa"].append(ttfa)
            summary[mode]["total"].append(total)
            summary[mode]["steps"].append(steps)

    print(f"\nmedian over the {len(PROMPTS)} prompts:")
    meds = {m: {k: med(v) for k, v in summary[m].items()} for m in MODES}
    for mode in MODES:
        worst = max((s for s in summary[mode]["steps"] if s is not None), default=None)
        print(f"  {mode:<8} TTFA {fmt(meds[mode]['ttfa'])} s · total {fmt(meds[mode]['total'])} s · LLM steps "
              f"before the first audio chunk: median {fmt(meds[mode]['steps'], digits=0)}, max {worst}")
    for mode in ("stream", "segment"):
        print(f"  {mode} / serial: TTFA {meds[mode]['ttfa'] / meds['serial']['ttfa']:.2f} · "
              f"total {meds[mode]['total'] / meds['serial']['total']:.2f}")
    worst = max(s for s in summary["stream"]["steps"] if s is not None)
    print(f"  streaming goal (<= 16 LLM steps before the first audio chunk): "
          f"{'met' if worst <= 16 else 'NOT met'} (max {worst})")
    return meds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--checkpoint", type=Path, default=None, help="bundle directory (default: a random tiny one)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=96, help="generated positions per reply (text + frames)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--min-audio-frames", type=int, default=ServeConfig().min_audio_frames,
                    help="shortest speech segment (a random model closes segments at once; 40 = 3.2 s segments, "
                    "like a trained model's sentences)")
    args = ap.parse_args(argv)
    if not use_device(args.device, args.threads):
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            from omni.bundle import tiny_bundle

            checkpoint = tiny_bundle(Path(tmp) / "bundle")
            print("note: random tiny bundle: timings are plumbing figures, not a trained model's speed")
        bench(checkpoint, args.device, args.repeats, args.max_tokens, args.min_audio_frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())

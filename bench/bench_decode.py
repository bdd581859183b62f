"""Batch-1 decode speed of the omni loop vs transformers' generate(), and the cost of an audio frame.

    PYTHONPATH=. python bench/bench_decode.py --device cpu --sizes tiny,100m --new-tokens 64 --threads 1

For each model size (random weights, same seed), in one process and
interleaved (A B A B ...) so machine load affects both alike:

* ``hf generate``: ``model.backbone.generate()`` greedy, exactly N new tokens (``min_new_tokens=N``);
* ``omni text``: our loop, text only (``allow_audio=False, ignore_eos=True``), N tokens;
* ``omni audio``: our loop from a prompt ending in the modality switch, N audio frames
  (``min_audio_frames=N``): each frame = one LLM step + the depth transformer's K steps;
* ``depth head``: the depth transformer alone for one frame (K cached steps).

Every run includes the prefill of the same short prompt. It prints the
median time per generated token/frame, tokens/s, and the ratios
(omni text / hf generate speed, audio frame / text token cost).
``--device cuda`` is skipped with a note when no GPU is available.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

from omni.bench.decode import SIZES, build_model, decode_runs
from omni.bench.timing import use_device
from omni.model import OmniModel


def build(size: str, device: str) -> OmniModel:
    return build_model(size, device, torch.bfloat16 if device == "cuda" else torch.float32)


def timed(fn: Callable[[], object], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench(size: str, device: str, n: int, repeats: int) -> dict[str, float]:
    model = build(size, device)
    runs, _ = decode_runs(model, n, device)
    with torch.no_grad():
        out = runs["omni audio"]()
        assert out.frames[0].shape[0] == n, "the audio run must produce n frames"
        for fn in runs.values():  # warm-up
            fn()
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(repeats):
            for name, fn in runs.items():
                times[name].append(timed(fn, device) / n)
    per = {k: statistics.median(v) for k, v in times.items()}
    params = sum(p.numel() for p in model.backbone.parameters())
    print(f"\n== {size}: backbone {params / 1e6:.1f} M parameters, audio head "
          f"{sum(p.numel() for p in model.audio_head.parameters()) / 1e6:.2f} M, device {device}, "
          f"threads {torch.get_num_threads()}, N = {n}, median of {repeats}")
    print(f"  {'run':<12}{'ms / item':>12}{'items / s':>12}")
    for k, v in per.items():
        print(f"  {k:<12}{v * 1e3:>12.2f}{1 / v:>12.1f}")
    ratio_speed = per["hf generate"] / per["omni text"]
    ratio_frame = per["omni audio"] / per["omni text"]
    print(f"  omni text tokens/s / hf generate tokens/s = {ratio_speed:.2f}")
    print(f"  audio frame cost / text token cost        = {ratio_frame:.2f} "
          f"(depth head alone = {per['depth head'] / per['omni text']:.2f} text tokens)")
    return per


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--sizes", default="tiny,100m", help="comma-separated: " + ", ".join(SIZES))
    ap.add_argument("--new-tokens", type=int, default=64, help="tokens / frames generated per run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = ap.parse_args(argv)
    if not use_device(args.device, args.threads):
        return 0
    for size in args.sizes.split(","):
        if size not in SIZES:
            print(f"error: unknown size {size!r} (known: {', '.join(SIZES)})", file=sys.stderr)
            return 2
        bench(size, args.device, args.new_tokens, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())

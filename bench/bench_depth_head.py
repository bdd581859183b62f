"""Depth transformer (audio head) per-frame cost, back to back in one process: the cached K steps through the
transformers model forward (mask building, rotary table and output dataclass per step) against the direct
decoder-layer calls that ``AudioHead.generate`` uses (``AudioHead._generate_by_layers``).

    PYTHONPATH=. python bench/bench_depth_head.py --device cpu --threads 1

The head is the one of ``omni bench decode``'s 100m model (3 layers x 256 wide, 8 codebooks of 1024).
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import torch

from omni.bench.timing import use_device


def main() -> None:
    from omni.bench.decode import build_model
    from omni.model.audio_head import AudioHead

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--frames", type=int, default=32, help="frames per timed run")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not use_device(args.device, args.threads):
        return
    model = build_model("100m", args.device)
    head = model.audio_head
    hidden = torch.randn(1, model.backbone.config.hidden_size, device=args.device)  # (1, D)

    def per_frame() -> float:
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.frames):
            head.generate(hidden)
        if args.device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / args.frames

    times: dict[str, list[float]] = {"model forward": [], "direct layers": []}
    with torch.no_grad():
        with mock.patch.object(AudioHead, "_layers_callable", lambda self: False):
            assert torch.equal(head.generate(hidden), ref := head.generate(hidden))
        assert torch.equal(head.generate(hidden), ref), "the two paths must agree"
        for _ in range(args.repeats):
            with mock.patch.object(AudioHead, "_layers_callable", lambda self: False):
                times["model forward"].append(per_frame())
            times["direct layers"].append(per_frame())
    a, b = (statistics.median(v) for v in times.values())
    print(f"device {args.device} ({torch.get_num_threads()} threads), median of {args.repeats} x {args.frames} frames")
    print(f"depth head per frame: model forward {a * 1e3:.2f} ms, direct layers {b * 1e3:.2f} ms, speed-up {a / b:.2f}x")


if __name__ == "__main__":
    main()

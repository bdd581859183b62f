"""Sequence packing vs plain padding (and duration buckets) on a mixed-length manifest: tokens/s and padding.

Builds a manifest of mixed lengths in a temporary directory (text documents of 10-500 words and ASR rows
with 1-30 s of cached audio codes, so examples run from ~20 to ~900 tokens), then trains the same
model for the same number of steps through the real stage data path (index, plan, data set, collator)
in three modes in one process, one step of each mode in turn (so load changes on a shared machine hit
them alike):

* ``padded``: one example per row, rows padded to the longest of the step (random order);
* ``buckets``: the same, with examples grouped into 5 s duration buckets;
* ``packed``: examples packed into rows of ``--max-seq-len`` tokens (best-fit decreasing).

It prints, per mode, the real (non-padding) tokens, the share of non-padding positions, the time and
the tokens per second of forward + backward + AdamW, and the ratios against plain padding
(targets: >= 1.5x tokens/s and >= 95% non-padding tokens with packing).

    PYTHONPATH=. python bench/bench_packing.py --device cpu --threads 1
    PYTHONPATH=. python bench/bench_packing.py --device cuda --size base --steps 30 --packed-rows 16 --padded-rows 32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from omni.bench.timing import use_device

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omni.bench.packing import build_model, make_manifests, run_interleaved  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--size", choices=["tiny", "small", "medium", "base"], default="small",
                    help="Backbone: tiny (64 wide), small (384 x 6 layers), medium (768 x 8), base (1024 x 12). The "
                    "narrower the model, the larger the share of attention, which packed rows pay over their whole "
                    "length (SDPA with a block-diagonal mask computes every pair; flash-attention varlen would not).")
    ap.add_argument("--steps", type=int, default=6, help="Timed steps per mode.")
    ap.add_argument("--warmup", type=int, default=1, help="Untimed steps per mode.")
    ap.add_argument("--max-seq-len", type=int, default=1024, help="Packed row length (tokens).")
    ap.add_argument("--packed-rows", type=int, default=4, help="Packed rows per step.")
    ap.add_argument("--padded-rows", type=int, default=8, help="Examples per step when padding.")
    ap.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: leave as is).")
    args = ap.parse_args()
    if not use_device(args.device, args.threads):
        return
    from omni.data.dataset import DataConfig
    from omni.data.index import SourceConfig

    dtype = torch.bfloat16 if args.device == "cuda" else None
    with tempfile.TemporaryDirectory() as tmp:
        text, asr, texts = make_manifests(Path(tmp), n_text=300, n_asr=300)
        model = build_model(args.size, texts, args.device)
        sources = [SourceConfig(name="text", manifests=[str(text)], ratio=0.5),
                   SourceConfig(name="asr", manifests=[str(asr)], task="asr", ratio=0.5)]
        modes = {
            "padded": (DataConfig(sources=sources, max_seq_len=args.max_seq_len, packing=False, bucket_seconds=0),
                       args.padded_rows),
            "buckets": (DataConfig(sources=sources, max_seq_len=args.max_seq_len, packing=False, bucket_seconds=5),
                        args.padded_rows),
            "packed": (DataConfig(sources=sources, max_seq_len=args.max_seq_len, packing=True), args.packed_rows),
        }
        n_params = sum(p.numel() for p in model.parameters())
        print(f"device {args.device}, model {args.size} ({n_params / 1e6:.1f} M parameters), "
              f"{args.steps} timed steps per mode after {args.warmup} warm-up steps (modes stepped in turn), "
              f"max_seq_len {args.max_seq_len}")
        results = run_interleaved(model, modes, args.steps, args.warmup, args.device, dtype)
    base = results["padded"][0] / results["padded"][2]
    print(f"\n{'mode':<9}{'rows/step':>10}{'tokens':>10}{'positions':>11}{'non-pad':>9}{'seconds':>9}"
          f"{'tokens/s':>10}{'vs padded':>10}")
    for name, (tokens, positions, seconds) in results.items():
        rows = modes[name][1]
        rate = tokens / seconds
        print(f"{name:<9}{rows:>10}{tokens:>10}{positions:>11}{tokens / positions:>9.1%}{seconds:>9.2f}"
              f"{rate:>10.0f}{rate / base:>9.2f}x")
    tokens, positions, seconds = results["packed"]
    print(f"\npacking: {tokens / seconds / base:.2f}x the tokens/s of plain padding (target >= 1.5x), "
          f"{tokens / positions:.1%} non-padding tokens (target >= 95%)")


if __name__ == "__main__":
    main()

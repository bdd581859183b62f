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
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("the kitchen lights are on and the music plays softly in the living room while it rains outside "
         "two plus three is five and the meeting starts at half past nine tomorrow morning").split()


def make_manifests(root: Path, n_text: int, n_asr: int, seed: int = 0) -> tuple[Path, Path, list[str]]:
    """A text manifest and a code-cached ASR manifest of mixed lengths."""
    from omni.data.codes import write_codes_shard

    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(10, 500)))) + "." for _ in range(n_text)]
    with open(root / "text.jsonl", "w") as f:
        for k, t in enumerate(texts):
            f.write(json.dumps({"id": f"t{k}", "task": "text", "text": t}) + "\n")
    codes, rows = {}, []
    for k in range(n_asr):
        seconds = float(rng.uniform(1.0, 30.0))
        frames = int(seconds * 12.5)
        codes[f"c{k}"] = torch.from_numpy(rng.integers(0, 16, size=(frames, 8)))
        text = " ".join(rng.choice(WORDS, size=max(2, int(seconds * 2.5)))) + "."
        rows.append({"id": f"a{k}", "task": "asr", "audio": f"audio/a{k}.flac", "duration": seconds, "text": text,
                     "language": "en", "region": "US", "codes": {"path": "codes/shard-00000.safetensors", "key": f"c{k}"}})
    write_codes_shard(root / "codes" / "shard-00000.safetensors", codes)
    with open(root / "asr.codes.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return root / "text.jsonl", root / "asr.codes.jsonl", texts


def build_model(size: str, texts: list[str], device: str):
    from omni.model.tiny import tiny_model
    from omni.text.tokenizer import train_bpe_tokenizer

    tok = train_bpe_tokenizer(texts[:200], vocab_size=400, min_frequency=2)
    sizes = {"tiny": {},  # 64 wide, 2 layers: attention dominates, so long packed rows cost more per token
             "small": dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6,
                           num_key_value_heads=2),
             "medium": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=12,
                            num_key_value_heads=4),
             "base": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=12, num_attention_heads=16,
                          num_key_value_heads=4)}
    model = tiny_model("qwen2", seed=0, tokenizer=tok, vision=False, **sizes[size])
    return model.to(device).train()


def mode_steps(model, data_cfg, steps: int, warmup: int, rows: int, device: str, dtype: torch.dtype | None):
    """A generator training one step per ``next()`` (``warmup + steps`` steps of ``rows`` rows); yields
    (real tokens, positions, seconds) of each step, ``None`` for the untimed warm-up steps."""
    from omni.data.dataset import build_stage_data
    from omni.training.stage_task import stage_loss
    from omni.training.trainer import to_device

    sd = build_stage_data(data_cfg, model, seed=0, batch_size=rows, rank=0, world=1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batches = iter(sd.plan.micro_batches(0, warmup + steps, 0, 1, 1))
    for step in range(warmup + steps):
        keys = next(batches)
        batch = to_device(sd.collate([sd.dataset[k] for k in keys]), torch.device(device))
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            out = model(batch.model, return_loss=False)
            loss = stage_loss(out, batch, 16).total
        (loss / max(batch.model.num_target_tokens, 1)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        yield (batch.num_tokens, batch.num_positions, time.perf_counter() - t0) if step >= warmup else None


def run_interleaved(model, modes: dict, steps: int, warmup: int, device: str, dtype: torch.dtype | None):
    """Step the modes round-robin (one step of each in turn), so a change of machine load hits them alike;
    returns mode -> (real tokens, positions, seconds) summed over the timed steps."""
    gens = {name: mode_steps(model, cfg, steps, warmup, rows, device, dtype) for name, (cfg, rows) in modes.items()}
    totals = {name: [0, 0, 0.0] for name in modes}
    for _ in range(warmup + steps):
        for name, gen in gens.items():
            got = next(gen)
            if got is not None:
                totals[name] = [a + b for a, b in zip(totals[name], got)]
    return {name: tuple(v) for name, v in totals.items()}


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
    if args.device == "cuda" and not torch.cuda.is_available():
        print("cuda: not available on this machine, skipped")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
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

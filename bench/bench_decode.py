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

from omni.model import Message, OmniExample, OmniModel
from omni.model.tiny import tiny_config, tiny_tokenizer

SIZES = {
    # name: (backbone hf_config overrides, audio head (hidden, heads, intermediate), codebook size)
    "tiny": ({}, (32, 2, 64), None),
    "100m": (dict(hidden_size=640, intermediate_size=1792, num_hidden_layers=12, num_attention_heads=10,
                  num_key_value_heads=2, vocab_size=32000), (256, 4, 704), 1024),
}


def build(size: str, device: str) -> OmniModel:
    overrides, (hidden, heads, inter), codebook = SIZES[size]
    cfg = tiny_config("qwen2", vision=False, **overrides)
    cfg.audio_head.hidden_size, cfg.audio_head.num_heads, cfg.audio_head.intermediate_size = hidden, heads, inter
    if codebook:
        cfg.codebook_sizes = [codebook] * 8
        cfg.audio_embed.embed_dim = 256
    if device == "cuda":
        cfg.backbone.dtype = "bfloat16"
    torch.manual_seed(0)
    return OmniModel.from_config(cfg, tokenizer=tiny_tokenizer()).to(device).eval()


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
    t = model.token_ids
    prompt = model.encode([Message("user", "What is two plus three? Answer in speech, please.")],
                          add_generation_prompt=True)
    switch = torch.tensor([t.audio_gen_start])
    speech = OmniExample(torch.cat([prompt.input_ids, switch]), torch.cat([prompt.labels, switch * 0 - 100]),
                         prompt.audio_codes.reshape(0, 8), prompt.audio_target)
    ids = prompt.input_ids.unsqueeze(0).to(device)
    hidden = torch.randn(1, model.backbone.config.hidden_size, device=device, dtype=model.dtype)

    runs = {
        "hf generate": lambda: model.backbone.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
            do_sample=False, pad_token_id=t.pad, eos_token_id=list(t.eos)),
        "omni text": lambda: model.generate(prompt, max_new_tokens=n, allow_audio=False, ignore_eos=True),
        "omni audio": lambda: model.generate(speech, max_new_tokens=n, min_audio_frames=n, max_audio_frames=n,
                                             ignore_eos=True),
        "depth head": lambda: [model.audio_head.generate(hidden) for _ in range(n)],
    }
    with torch.no_grad():
        out = runs["omni audio"]()
        assert out.frames[0].shape[0] == n, "the audio run must produce n frames"
        assert runs["hf generate"]().shape[1] == ids.shape[1] + n
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
    if args.device == "cuda" and not torch.cuda.is_available():
        print("note: --device cuda requested but no CUDA device is available; skipped")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    for size in args.sizes.split(","):
        if size not in SIZES:
            print(f"error: unknown size {size!r} (known: {', '.join(SIZES)})", file=sys.stderr)
            return 2
        bench(size, args.device, args.new_tokens, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())

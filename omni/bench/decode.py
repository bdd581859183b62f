"""Batch-1 decode: our generation loop vs transformers' ``generate()``, vs the memory-bandwidth bound,
and the cost of an audio frame against a text token.

Runs, on the same randomly initialised model (same seed), interleaved (A B A B ...) in one process:

* ``hf generate``: ``model.backbone.generate()`` greedy, exactly N new tokens, with the cache kind ours uses
  on the device (static + compiled on CUDA, where ``generate()`` compiles its static-cache steps itself;
  dynamic on the CPU);
* ``omni text``: :meth:`OmniModel.generate`, text only (``allow_audio=False, ignore_eos=True``), N tokens, with
  its default cache (``cache_implementation="auto"``: static with CUDA graphs on CUDA, dynamic on the CPU);
* ``omni audio``: our loop from a prompt ending in the modality switch, N frames (one LLM step + the
  depth transformer's K cached steps each);
* ``depth head``: the depth transformer alone for one frame.

Bandwidth bound: a decode step must read every weight the step touches (the backbone without its input
embedding table, of which it reads one row, plus the LM head) and the KV cache so far; at the measured
copy bandwidth that takes ``bytes / bandwidth`` seconds, so tokens/s <= bandwidth / bytes per step.
The ratio is our tokens/s over that bound (goal >= 0.5 on CPU, >= 0.7 on a GPU).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from omni.bench.core import BenchContext, Figure, Goal, Skip

#: name: (backbone hf_config overrides, audio head (hidden, heads, intermediate), codebook size)
SIZES: dict[str, tuple[dict, tuple[int, int, int], int | None]] = {
    "tiny": ({}, (32, 2, 64), None),
    "100m": (dict(hidden_size=640, intermediate_size=1792, num_hidden_layers=12, num_attention_heads=10,
                  num_key_value_heads=2, vocab_size=32000), (256, 4, 704), 1024),
}


def build_model(size: str, device: torch.device | str, dtype: torch.dtype = torch.float32):
    """A random :class:`OmniModel` of one of :data:`SIZES` (text + audio, no vision), in eval mode."""
    from omni.model import OmniModel
    from omni.model.tiny import tiny_config, tiny_tokenizer

    overrides, (hidden, heads, inter), codebook = SIZES[size]
    cfg = tiny_config("qwen2", vision=False, **overrides)
    cfg.audio_head.hidden_size, cfg.audio_head.num_heads, cfg.audio_head.intermediate_size = hidden, heads, inter
    if codebook:
        cfg.codebook_sizes = [codebook] * 8
        cfg.audio_embed.embed_dim = 256
    if dtype == torch.bfloat16:
        cfg.backbone.dtype = "bfloat16"
    torch.manual_seed(0)
    return OmniModel.from_config(cfg, tokenizer=tiny_tokenizer()).to(device).eval()


def decode_runs(model, n: int, device: torch.device | str) -> tuple[dict[str, Callable[[], object]], int]:
    """The four timed runs (see the module docstring), each generating ``n`` tokens / frames, and the
    prompt length."""
    hf_cache = {"cache_implementation": "static"} if torch.device(device).type == "cuda" else {}
    from omni.model import Message, OmniExample

    t = model.token_ids
    prompt = model.encode([Message("user", "What is two plus three? Answer in speech, please.")],
                          add_generation_prompt=True)
    switch = torch.tensor([t.audio_gen_start])
    speech = OmniExample(torch.cat([prompt.input_ids, switch]), torch.cat([prompt.labels, switch * 0 - 100]),
                         prompt.audio_codes.reshape(0, 8), prompt.audio_target)  # prompt + switch: audio next
    ids = prompt.input_ids.unsqueeze(0).to(device)  # (1, P)
    hidden = torch.randn(1, model.backbone.config.hidden_size, device=device, dtype=model.dtype)  # (1, D)
    return {
        "hf generate": lambda: model.backbone.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
            do_sample=False, pad_token_id=t.pad, eos_token_id=list(t.eos), **hf_cache),
        "omni text": lambda: model.generate(prompt, max_new_tokens=n, allow_audio=False, ignore_eos=True),
        "omni audio": lambda: model.generate(speech, max_new_tokens=n, min_audio_frames=n, max_audio_frames=n,
                                             ignore_eos=True),
        "depth head": lambda: [model.audio_head.generate(hidden) for _ in range(n)],
    }, ids.shape[1]


def time_runs(ctx: BenchContext, runs: dict[str, Callable[[], object]], n: int, repeats: int) -> dict[str, float]:
    """Median seconds per generated item of each run, interleaved after one warm-up of each."""
    with torch.no_grad():
        for fn in runs.values():
            fn()
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(repeats):
            for name, fn in runs.items():
                times[name].append(ctx.time(fn) / n)
    return {k: statistics.median(v) for k, v in times.items()}


def step_bytes(model, context: int) -> float:
    """Bytes one decode step reads: backbone weights but the input embedding (one row is read) and the KV
    cache of ``context`` positions (2 x layers x kv_heads x head_dim x context elements)."""
    bb = model.backbone
    emb = bb.get_input_embeddings().weight
    tied = bb.get_output_embeddings() is not None and bb.get_output_embeddings().weight is emb
    weights = sum(p.numel() * p.element_size() for p in bb.parameters())
    if not tied:
        weights -= emb.numel() * emb.element_size()
    c = bb.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv = 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * context * emb.element_size()
    return weights + kv


def bench_decode(ctx: BenchContext) -> list[Figure]:
    if ctx.ceilings is None:
        raise Skip("needs the ceilings (run with them)")
    size = "tiny" if ctx.cfg.quick else "100m"
    n = 8 if ctx.cfg.quick else 32
    model = build_model(size, ctx.device, ctx.dtype)
    runs, prompt_len = decode_runs(model, n, ctx.device)
    with torch.no_grad():
        assert runs["omni audio"]().frames[0].shape[0] == n, "the audio run must produce n frames"
    per = time_runs(ctx, runs, n, ctx.repeats)
    bound_tps = ctx.ceilings.bandwidth / step_bytes(model, prompt_len + n // 2)
    params = sum(p.numel() for p in model.backbone.parameters()) / 1e6
    what = f"{size} backbone ({params:.0f} M params, {str(ctx.dtype).replace('torch.', '')}), N = {n}"
    figs = [
        Figure("decode tokens/s: omni vs hf generate", 1 / per["omni text"], "tok/s", 1 / per["hf generate"],
               "hf generate", Goal(">=", 1.0), note=what),
        Figure("decode tokens/s vs memory-bandwidth bound", 1 / per["omni text"], "tok/s", bound_tps,
               "bound", Goal(">=", 0.7 if ctx.cuda else 0.5),
               note="bound = copy bandwidth / (weights + KV bytes per step); prefill included in ours"),
        Figure("audio frame cost vs text token", per["omni audio"], "s/frame", per["omni text"], "s/text token",
               Goal("<=", 1.3), note=f"depth head alone = {per['depth head'] / per['omni text']:.2f} text tokens"),
    ]
    if ctx.cuda:
        figs += static_cache_figures(ctx, model, n)
    else:
        figs.append(Figure("omni static cache + CUDA graphs vs dynamic", 0.0, "tok/s",
                           skipped="the static cache is compiled into CUDA graphs on a GPU only"))
    return figs


def static_cache_figures(ctx: BenchContext, model, n: int) -> list[Figure]:
    """GPU only: our loop with its static KV cache compiled into CUDA graphs (the default there) against the
    same loop on the dynamic cache."""
    from omni.model import Message

    prompt = model.encode([Message("user", "What is two plus three?")], add_generation_prompt=True)
    common = dict(max_new_tokens=n, allow_audio=False, ignore_eos=True)
    runs = {
        "dynamic": lambda: model.generate(prompt, cache_implementation="dynamic", **common),
        "static": lambda: model.generate(prompt, cache_implementation="static", compile="reduce-overhead", **common),
    }
    per = time_runs(ctx, runs, n, ctx.repeats)
    return [Figure("omni static cache + CUDA graphs vs dynamic", 1 / per["static"], "tok/s", 1 / per["dynamic"],
                   "dynamic cache", note="text decode, batch 1")]

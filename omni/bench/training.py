"""Training throughput: packing vs padding, DPO vs SFT step time, and (on a GPU) model FLOPs utilisation.

* packing: :mod:`omni.bench.packing` (the real stage data path), tokens/s of ``packed`` over ``padded``
  and the non-padding share of packed rows;
* DPO vs SFT: one optimizer step (zero_grad, forward, backward, AdamW) on the same B pairs = 2B padded rows
  of a text-only model: the stage SFT loss, :class:`PreferenceTask` with a frozen reference (live), and with
  reference log-probs read from the batch (cached); round-robin, medians;
* MFU (GPU only): a ~0.5 B Qwen2 backbone (Qwen2.5-0.5B's shape), bf16 autocast, SDPA attention, forward
  + backward on full rows; model FLOPs = 6 N T + 12 L T^2 d (per row, causal attention counted whole, the
  PaLM convention) over the step time, against the GEMM ceiling measured first.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from omni.bench.core import BenchContext, Figure, Goal, Skip


def packing_figures(ctx: BenchContext) -> list[Figure]:
    from omni.bench.packing import build_model, make_manifests, run_interleaved
    from omni.data.dataset import DataConfig
    from omni.data.index import SourceConfig

    quick = ctx.cfg.quick
    dtype = torch.bfloat16 if ctx.cuda else None
    size, steps, seq = ("tiny", 1, 512) if quick else (("base", 10, 2048) if ctx.cuda else ("small", 4, 1024))
    with tempfile.TemporaryDirectory(prefix="omni-bench-pack-") as tmp:
        n = 40 if quick else 300
        text, asr, texts = make_manifests(Path(tmp), n_text=n, n_asr=n)
        model = build_model(size, texts, ctx.cfg.device)
        sources = [SourceConfig(name="text", manifests=[str(text)], ratio=0.5),
                   SourceConfig(name="asr", manifests=[str(asr)], task="asr", ratio=0.5)]
        rows = (2, 4) if quick else (4, 8)
        modes = {"padded": (DataConfig(sources=sources, max_seq_len=seq, packing=False, bucket_seconds=0), rows[1]),
                 "packed": (DataConfig(sources=sources, max_seq_len=seq, packing=True), rows[0])}
        res = run_interleaved(model, modes, steps, 1, ctx.cfg.device, dtype)
    (pad_tok, _, pad_s), (pk_tok, pk_pos, pk_s) = res["padded"], res["packed"]
    what = f"{size} model, {steps} steps per mode, rows of {seq} tokens"
    return [Figure("training tokens/s: packing vs padding", pk_tok / pk_s, "tok/s", pad_tok / pad_s, "padded",
                   Goal(">=", 1.5), note=what),
            Figure("non-padding fraction (packed)", pk_tok / pk_pos, "fraction", goal=Goal(">=", 0.95), note=what)]


def preference_steps(base: Any, batch: Any, n_pairs: int) -> dict[str, Callable[[], None]]:
    """One optimizer step each (AdamW on a copy of ``base``) on the same preference batch: ``sft`` (NLL of the
    rows), ``live`` (DPO with a frozen-copy reference) and ``cached`` (DPO with precomputed reference log-probs).
    Shared by ``omni bench`` and bench/bench_dpo.py (which adds TRL's DPOTrainer beside them)."""
    from omni.align.config import PreferenceLossConfig
    from omni.align.data import PreferenceBatch
    from omni.align.reference import CachedReference, FrozenReference
    from omni.align.task import PreferenceTask
    from omni.model.losses import text_loss

    live_ref = FrozenReference(base)
    with torch.no_grad():
        cached = PreferenceBatch(batch.model, batch.ids, live_ref.logps(None, batch))
    cfg = PreferenceLossConfig(type="dpo", beta=0.1)

    def make_step(fn):
        model = copy.deepcopy(base)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)

        def step():
            opt.zero_grad(set_to_none=True)
            fn(model).backward()
            opt.step()
        return step

    return {
        "sft": make_step(lambda m: text_loss(m(batch.model, return_loss=False).text_logits,
                                             batch.model.labels).total / n_pairs),
        "live": make_step(lambda m: PreferenceTask(cfg, live_ref).compute_loss(m, batch, "main").loss / n_pairs),
        "cached": make_step(lambda m: PreferenceTask(cfg, CachedReference()).compute_loss(m, cached, "main").loss
                            / n_pairs),
    }


def dpo_figures(ctx: BenchContext) -> list[Figure]:
    from omni.align.data import PreferenceBatch
    from omni.model.batch import IGNORE, OmniExample, collate
    from omni.model.tiny import tiny_model

    hidden, layers, n_pairs, length = (64, 2, 2, 32) if ctx.cfg.quick else (256, 4, 8, 96)
    base = tiny_model("qwen2", seed=0, vision=False, hidden_size=hidden, intermediate_size=4 * hidden,
                      num_hidden_layers=layers, num_attention_heads=max(4, hidden // 64),
                      num_key_value_heads=2).to(ctx.device).train()
    g = torch.Generator().manual_seed(0)
    vocab = len(base.tokenizer) - 40  # ordinary tokens only

    def ex(p: list[int], r: list[int]) -> OmniExample:
        return OmniExample(torch.tensor(p + r), torch.tensor([IGNORE] * len(p) + r),
                           torch.zeros(0, 8, dtype=torch.long), torch.zeros(0, dtype=torch.bool))

    data = [[torch.randint(3, vocab, (k,), generator=g).tolist()
             for k in (length // 3, 2 * length // 3 - i % 5, 2 * length // 3 - (i + 2) % 7)] for i in range(n_pairs)]
    rows = [ex(p, c) for p, c, _ in data] + [ex(p, r) for p, _, r in data]  # chosen rows, then rejected rows
    batch = PreferenceBatch(collate(rows, base.token_ids.pad).to(ctx.device), [str(i) for i in range(n_pairs)])
    steps = preference_steps(base, batch, n_pairs)
    rounds = 2 if ctx.cfg.quick else 4 * ctx.repeats
    times: dict[str, list[float]] = {k: [] for k in steps}
    for rnd in range(rounds + 2):
        for name, step in steps.items():
            t = ctx.time(step)
            if rnd >= 2:  # two warm-up rounds
                times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    what = f"Qwen2 {hidden} x {layers} layers, {n_pairs} pairs x {length} tokens, median of {rounds} steps"
    return [Figure("DPO (live reference) vs SFT step time", med["live"], "s/step", med["sft"], "SFT s/step",
                   Goal("<=", 1.35), note=what),
            Figure("DPO (cached reference log-probs) vs SFT step time", med["cached"], "s/step", med["sft"],
                   "SFT s/step", Goal("<=", 1.05), note=what)]


def mfu_figures(ctx: BenchContext) -> list[Figure]:
    """GPU only: model FLOPs utilisation of a ~0.5 B backbone (bf16 autocast, SDPA) against the GEMM ceiling."""
    if not ctx.cuda:
        raise Skip("MFU is measured on a GPU only")
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                      num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096,
                      attn_implementation="sdpa", tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).to(ctx.device).train()
    rows, seq = (2, 256) if ctx.cfg.quick else (8, 2048)
    ids = torch.randint(0, cfg.vocab_size, (rows, seq), device=ctx.device)  # (B, T)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    t = statistics.median(ctx.time(step) for _ in range(max(3, ctx.repeats)))
    n = sum(p.numel() for p in model.parameters())
    flops = rows * (6 * n * seq + 12 * cfg.num_hidden_layers * seq * seq * cfg.hidden_size)
    return [Figure("training MFU (~0.5 B, bf16, SDPA)", flops / t / 1e12, "TFLOP/s", ctx.ceilings.matmul_flops / 1e12,
                   "measured bf16 GEMM peak", Goal(">=", 0.4), note=f"{n / 1e6:.0f} M params, {rows} x {seq} tokens")]


def bench_training(ctx: BenchContext) -> list[Figure]:
    figs = packing_figures(ctx) + dpo_figures(ctx)
    try:
        figs += mfu_figures(ctx)
    except Skip as e:
        figs.append(Figure("training MFU (~0.5 B, bf16, SDPA)", 0.0, "TFLOP/s", goal=Goal(">=", 0.4), skipped=str(e)))
    return figs

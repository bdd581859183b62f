"""Sequence packing vs padding through the real stage data path: the reusable core of
``bench/bench_packing.py`` and of ``omni bench training``.

A mixed-length manifest (text of 10-500 words, ASR rows with 1-30 s of cached codes) is trained on in
three modes, one step of each in turn: ``padded`` (one example per row), ``buckets`` (5 s duration
buckets) and ``packed`` (rows of ``max_seq_len`` tokens, best-fit decreasing).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

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

"""Tiny preference data for alignment tests: hand-written pairs with fake cached codes, and a tiny model.

No audio is rendered: every audio reference carries codes written with ``write_codes_shard`` (random
frames within the tiny model's codebooks), which is all the LLM reads. Facts follow the synthetic
corpus: the chosen reply holds the ``answer_key``, the rejected one a wrong answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from omni.data.codes import write_codes_shard

FACTS = [
    ("What color is the sky?", "The sky is blue.", "The sky is green.", "blue"),
    ("What is two plus three?", "Two plus three is five.", "Two plus three is seven.", "five"),
    ("What color is a banana?", "A banana is yellow.", "A banana is purple.", "yellow"),
    ("What noise does a lion make?", "A lion roars.", "A lion barks.", "roars"),
    ("What is six minus four?", "Six minus four is two.", "Six minus four is one.", "two"),
    ("What color is grass?", "Grass is green.", "Grass is red.", "green"),
]


def write_preference_data(out: Path, speech: bool = True, seed: int = 0, frames: tuple[int, int] = (3, 6)) -> Path:
    """``out/pref.jsonl`` (+ codes shard): one row per fact; with ``speech`` the prompt and both replies also
    carry (fake) speech codes. Returns the manifest path."""
    from omni.model.tiny import TINY_CODEBOOKS

    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    codes: dict[str, torch.Tensor] = {}

    def speech_ref(key: str) -> dict:
        n = int(torch.randint(frames[0], frames[1] + 1, (1,), generator=g))
        codes[key] = torch.stack([torch.randint(0, v, (n,), generator=g) for v in TINY_CODEBOOKS], dim=-1)  # (n, 8)
        return {"audio": f"audio/{key}.flac", "codes": {"path": "codes/pref.safetensors", "key": key}}

    rows = []
    for i, (q, good, bad, key) in enumerate(FACTS):
        prompt = {"role": "user", "text": q, **(speech_ref(f"q{i}") if speech else {})}
        chosen = {"role": "assistant", "text": good, **(speech_ref(f"c{i}") if speech else {})}
        rejected = {"role": "assistant", "text": bad, **(speech_ref(f"r{i}") if speech else {})}
        rows.append({"id": f"pair-{i}", "task": "preference", "prompt": [prompt], "chosen": chosen,
                     "rejected": rejected, "meta": {"answer_key": key}})
    if codes:
        write_codes_shard(out / "codes" / "pref.safetensors", codes)
    path = out / "pref.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_aligned_model(out: Path, seed: int = 0) -> Path:
    """A tiny omni model (no vision tower) saved to ``out``; returns its directory."""
    from omni.model.tiny import tiny_model

    if not (out / "omni_config.json").is_file():
        tiny_model("qwen2", seed=seed, vision=False).save_pretrained(out)
    return out


def dpo_overrides(model: Path, manifest: Path, out: Path, **extra) -> list[str]:
    """Overrides that point configs/stages/dpo.yaml at tiny data and model (a few CPU steps)."""
    values = {
        "init_from": str(model), "data.train": [str(manifest)], "data.dev": [str(manifest)], "loop.output_dir": str(out),
        "loop.max_steps": 3, "loop.batch_size": 4, "loop.grad_accum": 1, "loop.save_every": 100, "loop.eval_every": 0,
        "loop.progress": False, "loop.log_every": 1, "loop.mixed_precision": "no", "data.max_seq_len": 256,
        "optim.warmup_steps": 0, "gradient_checkpointing": False, "param_groups": [],
    }
    values.update(extra)
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]

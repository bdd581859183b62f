"""Shared test data for staged training: a tiny code-cached corpus, PIL-drawn images and a tiny omni model.

Built once per pytest session under the base temp directory (rebuilding is a no-op), on top of the
mini synthetic corpus of :mod:`tests.helpers.speech_data`:

    stage_data/
        tokenizer/                    a randomly initialised tiny audio tokenizer (8 codebooks of 16)
        asr_train.codes.jsonl ...     code-cached manifests (codes/<stem>/shard-*.safetensors)
        images/*.png                  coloured shapes drawn with PIL
        image_caption.jsonl, image_qa.jsonl
        model/                        a tiny omni model (2-layer Qwen2, vision tower) with a corpus BPE
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CACHED = ("asr_train", "asr_dev", "tts_train", "spoken_qa_train", "spoken_chat_train", "interleaved_train",
          "spoken_qa_dev")

SHAPES = [("red", "circle", (96, 64)), ("blue", "square", (64, 64)), ("green", "triangle", (64, 112)),
          ("yellow", "circle", (80, 80)), ("purple", "square", (120, 60)), ("orange", "triangle", (60, 90))]


def draw_images(out: Path) -> list[tuple[str, str, str]]:
    """Six small images of coloured shapes; returns (relative path, colour, shape)."""
    from PIL import Image, ImageDraw

    (out / "images").mkdir(parents=True, exist_ok=True)
    made = []
    for k, (colour, shape, (w, h)) in enumerate(SHAPES):
        img = Image.new("RGB", (w, h), "white")
        d = ImageDraw.Draw(img)
        box = (w // 5, h // 5, 4 * w // 5, 4 * h // 5)
        if shape == "circle":
            d.ellipse(box, fill=colour)
        elif shape == "square":
            d.rectangle(box, fill=colour)
        else:
            d.polygon([(w // 2, h // 5), (w // 5, 4 * h // 5), (4 * w // 5, 4 * h // 5)], fill=colour)
        rel = f"images/shape{k}.png"
        img.save(out / rel)
        made.append((rel, colour, shape))
    return made


def write_image_manifests(out: Path) -> None:
    """image_caption.jsonl and image_qa.jsonl over the drawn images."""
    images = draw_images(out)
    with open(out / "image_caption.jsonl", "w") as f:
        for k, (rel, colour, shape) in enumerate(images):
            f.write(json.dumps({"id": f"cap{k}", "task": "image_caption", "image": rel,
                                "text": f"A {colour} {shape} on a white background."}) + "\n")
    with open(out / "image_qa.jsonl", "w") as f:
        for k, (rel, colour, _shape) in enumerate(images):
            f.write(json.dumps({"id": f"iqa{k}", "task": "image_qa", "image": rel, "conversation": [
                {"role": "user", "text": "What colour is the shape?"},
                {"role": "assistant", "text": f"It is {colour}."}]}) + "\n")


def stage_data(tmp_path_factory) -> Path:
    """The code-cached corpus, images and the tiny model (see the module docstring)."""
    from audio_tokenizer.cache import tokenize_manifest
    from tests.helpers.speech_data import initialised_tokenizer, mini_corpus

    corpus = mini_corpus(tmp_path_factory)
    out = tmp_path_factory.getbasetemp() / "stage_data"
    if (out / "model" / "omni_config.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tok_dir = out / "tokenizer"
    if not (tok_dir / "config.json").is_file():
        initialised_tokenizer(seed=5).save_pretrained(tok_dir)
    for stem in CACHED:
        tokenize_manifest(corpus / f"{stem}.jsonl", tok_dir, out=out / f"{stem}.codes.jsonl", shard_size=50,
                          progress=False, log=lambda s: None)
    for stem in ("text_train", "text_dev"):
        rows = [json.loads(x) for x in (corpus / f"{stem}.jsonl").read_text().splitlines() if x.strip()]
        (out / f"{stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:60]))
    write_image_manifests(out)
    tiny_omni_model(out / "model", corpus)
    return out


def tiny_omni_model(path: Path, corpus: Path) -> None:
    """A tiny omni model whose BPE knows the corpus text, saved with save_pretrained."""
    from omni.model.tiny import tiny_model
    from omni.text.tokenizer import manifest_texts, train_bpe_tokenizer

    texts = manifest_texts([corpus / "text_train.jsonl", corpus / "asr_train.jsonl"])
    tok = train_bpe_tokenizer(texts, vocab_size=400, min_frequency=2)
    model = tiny_model("qwen2", seed=0, tokenizer=tok)
    model.save_pretrained(path)


def stage_overrides(data: Path, out: Path, **extra) -> list[str]:
    """Overrides that point any stage YAML at the tiny data and model (a few CPU steps)."""
    sources = [
        {"name": "asr", "manifests": [str(data / "asr_train.codes.jsonl")], "task": "asr", "ratio": 0.3},
        {"name": "tts", "manifests": [str(data / "tts_train.codes.jsonl")], "task": "tts", "ratio": 0.2},
        {"name": "chat", "manifests": [str(data / "spoken_qa_train.codes.jsonl")], "ratio": 0.2},
        {"name": "intlv", "manifests": [str(data / "interleaved_train.codes.jsonl")], "task": "interleaved", "ratio": 0.1},
        {"name": "captions", "manifests": [str(data / "image_caption.jsonl")], "ratio": 0.1},
        {"name": "text", "manifests": [str(data / "text_train.jsonl")], "ratio": 0.1},
    ]
    values = {
        "init_from": str(data / "model"), "model": None, "loop.output_dir": str(out), "loop.max_steps": 3,
        "loop.batch_size": 4, "loop.grad_accum": 1, "loop.save_every": 100, "loop.eval_every": 0,
        "loop.progress": False, "loop.log_every": 1, "loop.mixed_precision": "no", "data.max_seq_len": 256,
        "data.dev_sources": [], "data.shards": 1, "optim.warmup_steps": 0, "gradient_checkpointing": False,
        "data.sources": sources,
    }
    values.update(extra)
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}

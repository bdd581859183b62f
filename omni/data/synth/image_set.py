"""The synthetic image set (``kind: images``): drawn scenes with captions and QA manifests.

``build_image_set(cfg, out_dir)`` writes::

    out_dir/
      images.json                    config and counts (what was built)
      images/{split}/{i:05d}.png     one drawn scene per file
      image_caption_{split}.jsonl    image -> caption
      image_qa_{split}.jsonl         image + question -> answer, meta.answer_key / meta.question_kind
      image_preference_{split}.jsonl image + question -> chosen (right) / rejected (wrong) answer, for a
                                     ``preference_fraction`` of the QA rows (none by default)

Splits are drawn from independent random streams, so dev/test images are
new draws, never copies of training images. Deterministic for a seed;
rerunning skips images already on disk.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

from omni.config import check, option, to_data
from omni.data.manifest import ManifestRow, Turn, write_manifest
from omni.data.synth.scenes import (
    COLORS,
    POSITIONS,
    QA,
    SHAPES,
    Scene,
    ScenePalette,
    caption,
    draw_scene,
    questions,
    sample_scene,
)
from omni.integrity import write_atomic

SPLITS = ("train", "dev", "test")


@dataclass
class ImageSetConfig:
    """What ``omni data images`` draws."""

    seed: int = option(0, help="Seed for every random choice; the same seed gives the same images and manifests.")
    train_images: int = option(3000, help="Images in the training split.")
    dev_images: int = option(100, help="Images in the dev split.")
    test_images: int = option(200, help="Images in the test split (held-out draws).")
    size: int = option(112, help="Image side in pixels (square; a multiple of 28 keeps Qwen2-VL patches exact).")
    questions_per_image: int = option(
        2, help="QA rows per training image (distinct questions drawn from those the scene answers); dev/test "
        "images get every question.")
    colors: list[str] = option(default_factory=lambda: list(COLORS), help=f"Colours used, from {sorted(COLORS)}.")
    shapes: list[str] = option(default_factory=lambda: list(SHAPES), help=f"Shapes used, from {list(SHAPES)}.")
    max_count: int = option(4, help="Most shapes in one scene (count questions range over 1..max_count).")
    digit_fraction: float = option(0.25, help="Share of scenes showing a digit instead of shapes.")
    preference_fraction: float = option(
        0.0, help="Share of each split's QA rows that also get a preference row (image_preference_{split}.jsonl): "
        "chosen = the right answer, rejected = the answer for the scene with the asked fact changed (another colour, "
        "count, shape, position or digit). For DPO on image questions.")

    def __post_init__(self) -> None:
        for name in ("train_images", "dev_images", "test_images"):
            check(getattr(self, name) >= 1, name, "must be >= 1")
        check(56 <= self.size <= 1024 and self.size % 28 == 0, "size", f"must be a multiple of 28 in 56..1024, "
              f"got {self.size}")
        check(self.questions_per_image >= 1, "questions_per_image", "must be >= 1")
        bad = [c for c in self.colors if c not in COLORS]
        check(not bad and len(self.colors) >= 2, "colors", f"need >= 2 of {sorted(COLORS)}; unknown: {bad}")
        bad = [s for s in self.shapes if s not in SHAPES]
        check(not bad and len(self.shapes) >= 1, "shapes", f"need >= 1 of {list(SHAPES)}; unknown: {bad}")
        check(1 <= self.max_count <= 6, "max_count", "must be in 1..6")
        check(0.0 <= self.digit_fraction <= 1.0, "digit_fraction", "must be in [0, 1]")
        check(0.0 <= self.preference_fraction <= 1.0, "preference_fraction", "must be in [0, 1]")

    def palette(self) -> ScenePalette:
        return ScenePalette(tuple(self.colors), tuple(self.shapes), self.max_count, self.digit_fraction)

    def count(self, split: str) -> int:
        return getattr(self, f"{split}_images")


@dataclass
class ImageSetSummary:
    """What :func:`build_image_set` produced."""

    out_dir: Path
    manifests: dict[str, int]
    drawn: int
    seconds: float


def _atomic_png(image, path: Path) -> None:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    write_atomic(path, buf.getvalue())


def wrong_answer(scene: Scene, qa: QA, rng: random.Random, palette: ScenePalette) -> QA | None:
    """The answer to ``qa``'s question about ``scene`` with the asked fact changed to another value drawn from
    ``palette`` (a plausible wrong answer), or None when the palette has no other value."""
    fact, values = {"color": ("color", palette.colors), "shape": ("shape", palette.shapes),
                     "count": ("count", tuple(range(1, palette.max_count + 1))), "position": ("position", POSITIONS),
                     "digit": ("digit", tuple(range(10)))}[qa.kind]
    others = [v for v in values if v != getattr(scene, fact)]
    if not others:
        return None
    changed = dataclasses.replace(scene, **{fact: rng.choice(others)})
    if qa.kind == "count" and changed.count > 1:  # a position question exists only for one shape
        changed = dataclasses.replace(changed, position=None)
    return next(q for q in questions(changed) if q.kind == qa.kind)


def _same_config(old: dict, cfg: ImageSetConfig) -> bool:
    """Whether a marker's config is ``cfg``; fields added since it was written count at their defaults."""
    return {**to_data(ImageSetConfig()), **old} == to_data(cfg)


def build_image_set(cfg: ImageSetConfig, out_dir: str | os.PathLike) -> ImageSetSummary:
    """Draw every split's images and write the caption and QA manifests."""
    start = time.perf_counter()
    out = Path(out_dir)
    marker = out / "images.json"
    if marker.exists():
        old = json.loads(marker.read_text(encoding="utf-8")).get("config")
        if old is not None and not _same_config(old, cfg):
            raise ValueError(f"{marker}: {out} holds an image set built with a different config; "
                             "choose another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"config": to_data(cfg), "complete": False}, indent=2) + "\n", encoding="utf-8")
    palette, manifests, drawn = cfg.palette(), {}, 0
    for s, split in enumerate(SPLITS):
        rng = random.Random(f"{cfg.seed}:{split}:{s}")
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        captions: list[ManifestRow] = []
        qa_rows: list[ManifestRow] = []
        pref_rows: list[ManifestRow] = []
        pref_rng = random.Random(f"{cfg.seed}:{split}:preference")  # its own stream: images and QA stay as they were
        for i in range(cfg.count(split)):
            scene = sample_scene(rng, palette)
            rel = f"images/{split}/{i:05d}.png"
            if not (out / rel).exists():
                _atomic_png(draw_scene(scene, cfg.size), out / rel)
                drawn += 1
            meta = {"scene": scene.kind, "color": scene.color, "shape": scene.shape, "count": scene.count,
                    "position": scene.position, "digit": scene.digit}
            captions.append(ManifestRow(id=f"imgcap-{split}-{i:05d}", task="image_caption", image=rel,
                                        text=caption(scene), language="en", meta=meta))
            qas = questions(scene)
            if split == "train":
                qas = rng.sample(qas, min(cfg.questions_per_image, len(qas)))
            for k, qa in enumerate(qas):
                qa_rows.append(ManifestRow(
                    id=f"imgqa-{split}-{i:05d}-{k}", task="image_qa", image=rel, language="en",
                    conversation=[Turn("user", qa.question), Turn("assistant", qa.answer)],
                    meta={"answer_key": qa.answer_key, "question_kind": qa.kind, **meta}))
                if cfg.preference_fraction and pref_rng.random() < cfg.preference_fraction:
                    wrong = wrong_answer(scene, qa, pref_rng, palette)
                    if wrong is not None:
                        pref_rows.append(ManifestRow(
                            id=f"imgpref-{split}-{i:05d}-{k}", task="preference", image=rel, language="en",
                            prompt=[Turn("user", qa.question)], chosen=Turn("assistant", qa.answer),
                            rejected=Turn("assistant", wrong.answer),
                            meta={"answer_key": qa.answer_key, "question_kind": qa.kind,
                                  "wrong_key": wrong.answer_key, **meta}))
        tables = [(f"image_caption_{split}", captions), (f"image_qa_{split}", qa_rows)]
        if cfg.preference_fraction:
            tables.append((f"image_preference_{split}", pref_rows))
        for name, rows in tables:
            write_manifest(out / f"{name}.jsonl", rows)
            manifests[name] = len(rows)
    seconds = time.perf_counter() - start
    marker.write_text(json.dumps({"config": to_data(cfg), "complete": True, "manifests": manifests},
                                 indent=2) + "\n", encoding="utf-8")
    return ImageSetSummary(out, manifests, drawn, seconds)

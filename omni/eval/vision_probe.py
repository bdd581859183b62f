"""Linear probe of the vision branch: can the question's answer be read off the projector's output at all?

For each kind of image question (colour, shape, count, position, digit) a logistic regression learns the
answer from the projector output of the training images (all tokens of an image, flattened) and is scored
on the test images. If the probe cannot tell the shapes apart, no LLM stage can: the vision tower is what
blocks image QA; if it can, the LLM stages are. Chance is the test share of the most frequent answer.

``omni eval vision-probe --model DIR --train image_qa_train.jsonl --test image_qa_test.jsonl --out DIR``
(``--model`` a saved omni model, e.g. a stage's ``final``; ``--random`` probes a freshly initialised tower
of that model's config, the baseline of a tower that learned nothing).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class ProbeResult:
    """Test accuracy of the linear probe per question kind, with chance and the counts."""

    accuracy: dict[str, float] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    train: dict[str, int] = field(default_factory=dict)
    test: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: {"accuracy": self.accuracy[k], "chance": self.chance[k], "train": self.train[k],
                    "test": self.test[k]} for k in self.accuracy}


def image_features(vision: Any, processor: Any, paths: Sequence[str | os.PathLike], batch: int = 32) -> np.ndarray:
    """Projector outputs of images, flattened per image: (N, tokens * D). Images must share one size."""
    from omni.model.projector_init import project_images

    return project_images(vision, processor, paths, batch).reshape(len(paths), -1).numpy()  # (N, tokens * D)


def probe(train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, test_y: Sequence[str]) -> float:
    """Test accuracy of a standardised logistic regression (scikit-learn) trained on (train_x, train_y)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    clf.fit(train_x, list(train_y))
    return float(clf.score(test_x, list(test_y)))


def probe_vision(vision: Any, processor: Any, train_manifest: str | os.PathLike,
                 test_manifest: str | os.PathLike) -> ProbeResult:
    """Probe every question kind of two image-QA manifests (rows with ``image`` and ``meta.question_kind`` /
    ``meta.answer_key``, as the synthetic image set writes them)."""
    from omni.data.manifest import load_manifest, resolve_media

    rows = {}
    for split, manifest in (("train", train_manifest), ("test", test_manifest)):
        rows[split] = [(str(resolve_media(manifest, r.image)), r.meta["question_kind"], str(r.meta["answer_key"]))
                       for r in load_manifest(manifest) if r.image and r.meta and "answer_key" in r.meta]
    images = sorted({p for split in rows.values() for p, _, _ in split})
    index = {p: i for i, p in enumerate(images)}
    feats = image_features(vision, processor, images)
    result = ProbeResult()
    for kind in sorted({k for _, k, _ in rows["train"]}):
        tr = [(index[p], y) for p, k, y in rows["train"] if k == kind]
        te = [(index[p], y) for p, k, y in rows["test"] if k == kind]
        if len({y for _, y in tr}) < 2 or not te:
            continue
        result.accuracy[kind] = probe(feats[[i for i, _ in tr]], [y for _, y in tr], feats[[i for i, _ in te]],
                                      [y for _, y in te])
        result.chance[kind] = Counter(y for _, y in te).most_common(1)[0][1] / len(te)
        result.train[kind], result.test[kind] = len(tr), len(te)
    return result


def write_probe(result: ProbeResult, out_dir: str | os.PathLike, model: str) -> Path:
    """``report.json`` and ``report.md`` of a probe run; returns the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"task": "vision_probe", "model": model, "kinds": result.to_json()},
                                                indent=2) + "\n", encoding="utf-8")
    lines = [f"# Linear probe of the vision branch: {model}", "", "| question kind | probe accuracy | chance | train | test |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {k} | {result.accuracy[k]:.3f} | {result.chance[k]:.3f} | {result.train[k]} | {result.test[k]} |"
              for k in result.accuracy]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / "report.md"

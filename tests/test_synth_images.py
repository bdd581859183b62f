"""The synthetic image set: the pixels show what the captions and answers say."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from omni.config import load_config
from omni.config.fields import FieldError
from omni.data.manifest import load_manifest
from omni.data.synth.domain import answer_matches
from omni.data.synth.image_set import ImageSetConfig, build_image_set, wrong_answer
from omni.data.synth.scenes import (
    COLORS,
    ScenePalette,
    caption,
    draw_scene,
    questions,
    sample_scene,
)


def _mask(img: Image.Image, color: str) -> np.ndarray:
    """Pixels within a small distance of the named colour."""
    px = np.asarray(img).astype(int)
    return np.abs(px - np.array(COLORS[color])).sum(-1) < 60


def test_scenes_show_their_facts():
    rng = random.Random(5)
    palette = ScenePalette(digit_fraction=0.0)
    for _ in range(60):
        scene = sample_scene(rng, palette)
        img = draw_scene(scene, 112)
        mask = _mask(img, scene.color)
        _, n = ndimage.label(mask)
        assert n == scene.count, (caption(scene), n)
        # no other palette colour is drawn
        for other in COLORS:
            if other != scene.color:
                assert _mask(img, other).sum() < 5, (caption(scene), other)
        if scene.count == 1:
            ys, xs = np.nonzero(mask)
            cx, cy = xs.mean() / 112, ys.mean() / 112
            expect = {"left": cx < 0.35, "right": cx > 0.65, "top": cy < 0.35, "bottom": cy > 0.65,
                      "center": abs(cx - 0.5) < 0.1 and abs(cy - 0.5) < 0.1}
            assert expect[scene.position], (caption(scene), cx, cy)


def test_digit_scenes_and_answers():
    rng = random.Random(1)
    scene = sample_scene(rng, ScenePalette(digit_fraction=1.0))
    img = draw_scene(scene, 112)
    assert _mask(img, scene.color).sum() > 150  # the glyph is drawn, large, in the named colour
    qas = {qa.kind: qa for qa in questions(scene)}
    assert set(qas) == {"digit", "color"}
    assert qas["color"].answer_key == scene.color and scene.color in qas["color"].answer
    assert qas["digit"].answer_key in qas["digit"].answer


def test_answers_contain_their_keys_and_count_words():
    """The reference answer scores as right under the evaluation's own matching (whole words: a key "square"
    is not in "I see squares.", which once scored every many-shape answer wrong)."""
    rng = random.Random(2)
    kinds = set()
    for _ in range(80):
        scene = sample_scene(rng, ScenePalette())
        for qa in questions(scene):
            assert qa.answer_key and answer_matches(qa.answer, qa.answer_key), qa
            kinds.add((qa.kind, scene.count > 1))
        if scene.kind == "shapes":
            count = next(q for q in questions(scene) if q.kind == "count")
            assert count.answer_key == ["one", "two", "three", "four"][scene.count - 1]
    assert {("shape", False), ("shape", True)} <= kinds


def test_build_image_set(tmp_path):
    cfg = load_config("configs/data/images_smoke.yaml", ImageSetConfig)
    summary = build_image_set(cfg, tmp_path)
    assert summary.drawn == cfg.train_images + cfg.dev_images + cfg.test_images
    assert summary.manifests["image_caption_train"] == cfg.train_images
    qa = load_manifest(tmp_path / "image_qa_test.jsonl")  # raises on any bad line
    assert len(qa) >= 2 * cfg.test_images  # every question on test images
    train_qa = load_manifest(tmp_path / "image_qa_train.jsonl")
    assert len(train_qa) == cfg.questions_per_image * cfg.train_images
    for row in qa:
        assert (tmp_path / row.image).is_file()
        assert row.meta["answer_key"] in row.conversation[1].text

    def digest(split):
        return {hashlib.sha1((tmp_path / f"images/{split}/{i:05d}.png").read_bytes()).hexdigest()
                for i in range(cfg.count(split))}
    before = digest("train")
    assert not before & digest("test")  # held-out images are new draws
    # rerun: nothing redrawn, same files; another seed in the same directory is refused
    again = build_image_set(cfg, tmp_path)
    assert again.drawn == 0 and digest("train") == before
    with pytest.raises(ValueError, match="different config"):
        build_image_set(load_config("configs/data/images_smoke.yaml", ImageSetConfig, overrides=["seed=9"]),
                        tmp_path)


def test_deterministic_for_a_seed(tmp_path):
    cfg = load_config("configs/data/images_smoke.yaml", ImageSetConfig)
    build_image_set(cfg, tmp_path / "a")
    build_image_set(cfg, tmp_path / "b")
    for name in ("image_qa_train.jsonl", "image_caption_test.jsonl", "images/dev/00001.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_wrong_answers_change_only_the_asked_fact():
    """Every rejected answer is a well-formed answer of the same kind that the image does not support: its key is
    another value of the asked fact, and the right answer's key is not in it."""
    rng, palette = random.Random(3), ScenePalette()
    kinds = set()
    for _ in range(120):
        scene = sample_scene(rng, palette)
        for qa in questions(scene):
            wrong = wrong_answer(scene, qa, rng, palette)
            assert wrong is not None and wrong.kind == qa.kind
            assert wrong.answer_key != qa.answer_key and not answer_matches(wrong.answer, qa.answer_key), (qa, wrong)
            assert answer_matches(wrong.answer, wrong.answer_key)
            kinds.add(qa.kind)
    assert kinds == {"color", "count", "shape", "position", "digit"}
    one_shape = ScenePalette(shapes=("circle",), digit_fraction=0.0)
    scene = sample_scene(rng, one_shape)
    shape_q = next(q for q in questions(scene) if q.kind == "shape")
    assert wrong_answer(scene, shape_q, rng, one_shape) is None  # no other shape to name


def test_image_preference_rows(tmp_path):
    """preference_fraction adds DPO rows (image + question, right / wrong answer) without changing the images or
    the QA rows; an image set built before the option existed is still recognised as the same config."""
    plain = load_config("configs/data/images_smoke.yaml", ImageSetConfig)
    build_image_set(plain, tmp_path / "plain")
    assert not (tmp_path / "plain" / "image_preference_train.jsonl").exists()
    cfg = load_config("configs/data/images_smoke.yaml", ImageSetConfig, overrides=["preference_fraction=1.0"])
    summary = build_image_set(cfg, tmp_path / "pref")
    for name in ("image_qa_train.jsonl", "image_qa_test.jsonl", "images/train/00003.png"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "pref" / name).read_bytes()
    qa = {r.id.replace("imgqa", ""): r for r in load_manifest(tmp_path / "pref" / "image_qa_train.jsonl")}
    pref = load_manifest(tmp_path / "pref" / "image_preference_train.jsonl")
    assert len(pref) == summary.manifests["image_preference_train"] == len(qa)  # every row: five shapes, 10 digits
    for row in pref:
        q = qa[row.id.replace("imgpref", "")]
        assert row.task == "preference" and row.image == q.image
        assert row.prompt[0].text == q.conversation[0].text and row.chosen.text == q.conversation[1].text
        assert not answer_matches(row.rejected.text, row.meta["answer_key"])
    half = build_image_set(load_config("configs/data/images_smoke.yaml", ImageSetConfig,
                                       overrides=["preference_fraction=0.5"]), tmp_path / "half")
    assert 0 < half.manifests["image_preference_train"] < len(qa)
    marker = tmp_path / "plain" / "images.json"  # written before preference_fraction existed
    data = json.loads(marker.read_text())
    del data["config"]["preference_fraction"]
    marker.write_text(json.dumps(data))
    assert build_image_set(plain, tmp_path / "plain").drawn == 0


def test_config_errors():
    with pytest.raises(FieldError, match="colors"):
        ImageSetConfig(colors=["red", "mauve"])
    with pytest.raises(FieldError, match="size"):
        ImageSetConfig(size=100)
    with pytest.raises(FieldError, match="preference_fraction"):
        ImageSetConfig(preference_fraction=1.5)

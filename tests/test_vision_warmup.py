"""Vision-tower warm-up: the label loss against the math, a run that learns and exports a tower the omni model
loads through vision.path, resume, bad settings named."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from omni.config import FieldError, load_config
from omni.data.synth.image_set import ImageSetConfig, build_image_set
from omni.model import OmniModel
from omni.model.tiny import tiny_config, tiny_tokenizer
from omni.training.config import LoopConfig
from omni.vision.losses import IGNORE, label_loss
from omni.vision.warmup import (
    VisionWarmupConfig,
    collate_images,
    read_labelled_images,
    train_vision,
)
from tests.helpers.threads import one_torch_thread  # noqa: F401


def test_label_loss_matches_hand_worked_numbers_and_skips_unlabelled():
    logits = {"shape": torch.tensor([[0.0, 0.0], [2.0, 0.0]]), "digit": torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])}
    labels = torch.tensor([[1, IGNORE], [IGNORE, 2]])
    out = label_loss(logits, labels, ["shape", "digit"])
    digit = -math.log(math.exp(3) / (2 + math.exp(3)))
    assert out.count.item() == 2
    assert out.per_attribute["shape"][0].item() == pytest.approx(math.log(2))
    assert out.per_attribute["digit"][0].item() == pytest.approx(digit)
    assert out.total.item() == pytest.approx(math.log(2) + digit)
    ref = F.cross_entropy(logits["digit"], torch.tensor([IGNORE, 2]), ignore_index=IGNORE, reduction="sum")
    torch.testing.assert_close(out.per_attribute["digit"][0], ref)
    with pytest.raises(ValueError, match=r"labels must be \(B, 2\)"):
        label_loss(logits, labels[:, :1], ["shape", "digit"])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    out = tmp_path_factory.mktemp("images")
    build_image_set(ImageSetConfig(train_images=96, dev_images=32, test_images=4, questions_per_image=1), out)
    return out


def _cfg(images, out, steps=40, **kw) -> VisionWarmupConfig:
    loop = LoopConfig(output_dir=str(out), max_steps=steps, batch_size=16, eval_every=0, save_every=20,
                      log_every=10, progress=False)
    return VisionWarmupConfig(train_manifests=[str(images / "image_caption_train.jsonl")],
                              dev_manifests=[str(images / "image_caption_dev.jsonl")], loop=loop,
                              projector_width=64, **kw)


def test_batch_lays_the_images_patches_end_to_end(images):
    from omni.vision.warmup import LabelledImages, label_classes

    cfg = _cfg(images, "unused")
    items = read_labelled_images(cfg.train_manifests, cfg.attributes)
    assert len(items) == 96  # one row per caption image, each labelled
    classes = label_classes(items, cfg.attributes)
    data = LabelledImages(items, classes, cfg.image_size, cfg.vision)
    batch = collate_images([data[0], data[1]])
    assert batch.pixel_values.shape == (2 * 64, 3 * 2 * 14 * 14)  # 8 x 8 patches of a 112-pixel image each
    assert batch.grid_thw.tolist() == [[1, 8, 8], [1, 8, 8]]
    for b, (_, values) in enumerate(items[:2]):
        for a, name in enumerate(classes):
            want = classes[name].index(values[name]) if name in values else IGNORE
            assert batch.labels[b, a].item() == want


def test_warmup_learns_the_labels_and_the_omni_model_loads_its_tower(images, tmp_path):
    cfg = _cfg(images, tmp_path / "run", steps=150)
    run = train_vision(cfg)
    assert run.result.complete and run.model_dir == tmp_path / "run" / "model"
    # the last logged loss per labelled pair against a guess of uniform odds (ln of each head's classes)
    chance = sum(math.log(len(c)) for c in run.classes.values()) / len(run.classes)
    assert run.result.last_metrics["loss"] < 0.75 * chance, (run.result.last_metrics["loss"], chance)
    acc = {k: v for k, v in run.result.last_metrics.items() if k.startswith("eval/acc/")}
    # dev images never seen: the scene (digit or shapes; 4 in 5 are shapes) and, on average, every attribute
    # (chance 0.1-0.25 for colour, shape, count, position, digit) are read off the tokens after 150 steps
    assert acc["eval/acc/scene"] >= 0.9 and acc["eval/acc/mean"] > 0.55, acc
    assert json.loads((run.model_dir / "labels.json").read_text())["scene"] == ["digit", "shapes"]

    base = tiny_config("qwen2")
    omni_cfg = dataclasses.replace(base, vision=dataclasses.replace(base.vision, path=str(run.model_dir)))
    model = OmniModel.from_config(omni_cfg, tokenizer=tiny_tokenizer())
    from safetensors.torch import load_file

    saved = load_file(str(run.model_dir / "model.safetensors"))
    for name, value in model.vision.tower.state_dict().items():
        torch.testing.assert_close(value, saved[f"visual.{name}"], msg=name)  # the projector too: widths match


def test_crash_then_rerun_ends_where_one_run_ends(images, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from omni.vision import warmup

    whole = train_vision(_cfg(images, tmp_path / "whole"))
    real, calls = warmup.WarmupTask.compute_loss, {"n": 0}

    def crash(self, model, batch, phase):
        calls["n"] += 1
        if calls["n"] == 27:  # during step 27, after the checkpoint of step 20
            raise KeyboardInterrupt
        return real(self, model, batch, phase)

    monkeypatch.setattr(warmup.WarmupTask, "compute_loss", crash)
    with pytest.raises(KeyboardInterrupt):
        train_vision(_cfg(images, tmp_path / "run"))
    assert not (tmp_path / "run" / "model").exists()
    monkeypatch.setattr(warmup.WarmupTask, "compute_loss", real)
    again = train_vision(_cfg(images, tmp_path / "run"))  # the same command: resumes at step 20
    assert again.result.complete and again.result.step == 40
    a, b = load_file(str(whole.model_dir / "model.safetensors")), load_file(str(again.model_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-6, msg=name)
    # finished, export lost: the rerun restores the last checkpoint and writes it again, training nothing
    import shutil

    shutil.rmtree(again.model_dir)
    third = train_vision(_cfg(images, tmp_path / "run"))
    for name, value in load_file(str(third.model_dir / "model.safetensors")).items():
        torch.testing.assert_close(value, a[name], atol=1e-6, rtol=1e-6, msg=name)


def test_bad_settings_and_data_are_named(images, tmp_path):
    with pytest.raises(FieldError, match="image_size"):
        _cfg(images, tmp_path, image_size=100)
    with pytest.raises(FieldError, match="attributes"):
        _cfg(images, tmp_path, attributes=["shape", "shape"])
    with pytest.raises(ValueError, match=r"attributes \['weight'\]: no training image"):
        train_vision(_cfg(images, tmp_path / "w", attributes=["shape", "weight"]))
    with pytest.raises(FileNotFoundError, match="nope.jsonl: manifest not found"):
        train_vision(dataclasses.replace(_cfg(images, tmp_path / "m"), train_manifests=[str(tmp_path / "nope.jsonl")]))


def test_tiny_config_loads():
    cfg = load_config("configs/vision/tiny.yaml", VisionWarmupConfig)
    assert cfg.vision.embed_dim == 32 and cfg.projector_width == 128 and cfg.image_size == 112

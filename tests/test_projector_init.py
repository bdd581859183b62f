"""The vision projector's data-dependent start (stage option ``projector_init``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omni.config import load_config
from omni.model.projector_init import centre_projector, project_images
from omni.model.tiny import tiny_model
from omni.model.vision_inputs import VisionProcessor
from omni.training.stage import StageConfig, load_stage_model
from tests.helpers.speech_data import tiny_lm
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from omni.data.synth.image_set import ImageSetConfig, build_image_set

    out = tmp_path_factory.mktemp("images")
    build_image_set(ImageSetConfig(train_images=24, dev_images=2, test_images=2, size=56), out)
    return out


def _paths(images: Path, split: str = "train") -> list[Path]:
    return sorted((images / "images" / split).glob("*.png"))


def test_centred_tokens_have_mean_zero_and_the_asked_norm_and_the_map_stays_affine(images):
    torch.manual_seed(0)
    model = tiny_model("qwen2")
    proc = VisionProcessor(model.cfg.vision)
    vision = model.vision.eval()
    fit, other = _paths(images)[:16], _paths(images)[16:]
    before, before_other = project_images(vision, proc, fit), project_images(vision, proc, other)  # (N, D)
    mean = before.mean(0)
    start = centre_projector(vision, before, norm=0.5)
    after, after_other = project_images(vision, proc, fit), project_images(vision, proc, other)
    assert float(after.mean(0).norm()) < 1e-4 * float(mean.norm())
    assert float(after.norm(dim=-1).mean()) == pytest.approx(0.5, rel=1e-4)
    assert start.scale == pytest.approx(0.5 / float((before - mean).norm(dim=-1).mean()), rel=1e-5)
    assert start.shared_norm == pytest.approx(float(mean.norm()), rel=1e-5) and start.tokens == before.shape[0]
    # images it was not fitted on go through the same affine map: s * (y - mean)
    torch.testing.assert_close(after_other, start.scale * (before_other - mean), atol=1e-5, rtol=1e-4)


def test_equal_tokens_or_a_bad_norm_are_refused():
    model = tiny_model("qwen2")
    with pytest.raises(ValueError, match="all equal"):
        centre_projector(model.vision, torch.ones(8, model.backbone.config.hidden_size))
    with pytest.raises(ValueError, match="norm"):
        centre_projector(model.vision, torch.randn(8, model.backbone.config.hidden_size), norm=0.0)


def _stage(tmp_path: Path, lm: Path, **extra: str) -> StageConfig:
    overrides = [f"loop.output_dir={tmp_path / 'run'}",
                 f"model_overrides=[backbone.path={lm}, tokenizer={lm}]",
                 *[f"{k}={v}" for k, v in extra.items()]]
    return load_config(ROOT / "configs" / "stages" / "tiny" / "image_text_pretrain_1.yaml", StageConfig,
                       overrides=overrides)


def test_a_stage_that_builds_its_model_centres_the_projector_on_the_manifests_images(
        images, tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(ROOT)
    lm = tiny_lm(tmp_path_factory)
    manifest = images / "image_caption_train.jsonl"
    torch.manual_seed(0)
    fresh = load_stage_model(_stage(tmp_path, lm, **{"projector_init.images": "null"}))
    torch.manual_seed(0)
    model = load_stage_model(_stage(tmp_path, lm, **{"projector_init.images": str(manifest),
                                                     "projector_init.count": "12", "projector_init.norm": "2.0"}))
    assert model.vision.training == fresh.vision.training  # centring leaves the branch in the mode it found
    proc = VisionProcessor(model.cfg.vision)
    fit = _paths(images)[:12]  # the manifest lists the images in file order
    tokens = project_images(model.vision.eval(), proc, fit)
    assert float(tokens.mean(0).norm()) < 1e-3
    assert float(tokens.norm(dim=-1).mean()) == pytest.approx(2.0, rel=1e-4)
    raw = project_images(fresh.vision.eval(), proc, fit)
    assert float(raw.mean(0).norm()) > 0.05  # the random start shares a vector (0.26 of 1.37 here); centring removes it
    for (name, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):
        if not name.startswith("vision.tower.merger.mlp.2."):
            assert torch.equal(p, q), name  # only the projector's last layer moved


def test_a_stage_that_loads_its_model_recentres_the_saved_projector(images, tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(ROOT)
    lm = tiny_lm(tmp_path_factory)
    saved = load_stage_model(_stage(tmp_path, lm, **{"projector_init.images": "null"}))
    saved.save_pretrained(tmp_path / "saved")
    cfg = load_config(ROOT / "configs" / "stages" / "tiny" / "image_text_pretrain_2.yaml", StageConfig,
                      overrides=[f"init_from={tmp_path / 'saved'}", f"loop.output_dir={tmp_path / 'run2'}",
                                 f"projector_init.images={images / 'image_qa_train.jsonl'}", "projector_init.count=8"])
    model = load_stage_model(cfg)
    tokens = project_images(model.vision.eval(), VisionProcessor(model.cfg.vision), _paths(images)[:8])
    assert float(tokens.mean(0).norm()) < 1e-3  # QA rows repeat an image: the first 8 distinct ones were measured
    assert float(tokens.norm(dim=-1).mean()) == pytest.approx(1.0, rel=1e-4)


def test_a_missing_manifest_or_no_vision_branch_is_a_clear_error(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(ROOT)
    lm = tiny_lm(tmp_path_factory)
    with pytest.raises(FileNotFoundError, match="projector_init.images"):
        load_stage_model(_stage(tmp_path, lm, **{"projector_init.images": str(tmp_path / "missing.jsonl")}))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "task": "image_caption"\n', encoding="utf-8")  # truncated JSON on line 1
    with pytest.raises(ValueError, match=r"projector_init.images: .*bad.jsonl:1:"):
        load_stage_model(_stage(tmp_path, lm, **{"projector_init.images": str(bad)}))
    with pytest.raises(ValueError, match="no vision branch"):
        load_stage_model(load_config(
            ROOT / "configs" / "stages" / "tiny" / "image_text_pretrain_1.yaml", StageConfig,
            overrides=[f"loop.output_dir={tmp_path / 'run'}", "projector_init.images=x.jsonl",
                       f"model_overrides=[backbone.path={lm}, tokenizer={lm}, vision.enabled=false]"]))

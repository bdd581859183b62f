"""save_pretrained -> from_pretrained gives the same model; loading is local-only with clear errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from omni.config import ConfigError, load_config
from omni.model import (
    Audio,
    Image,
    Message,
    ModelLoadError,
    OmniModel,
    OmniModelConfig,
    Text,
    collate,
)
from omni.model.backbone import BackboneConfig
from omni.model.tiny import tiny_model
from omni.model.vision_inputs import VisionProcessor
from tests.helpers.threads import one_torch_thread  # noqa: F401

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"


@pytest.fixture
def no_network(monkeypatch):
    """Offline mode, and any socket connection attempt fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _batch(model):
    img = VisionProcessor(model.cfg.vision).images(
        [PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8))])
    codes = torch.stack([torch.arange(4) % v for v in model.cfg.codebook_sizes], -1)
    ex = model.encode([Message("user", [Image(img), Text("Describe it.")]),
                       Message("assistant", [Text("A cat."), Audio(codes)])])
    return collate([ex], model.token_ids.pad)


@pytest.mark.parametrize("arch,tied", [("qwen2", False), ("qwen3_moe", False), ("llama", True)])
def test_round_trip_gives_identical_outputs(tmp_path, no_network, arch, tied):
    model = tiny_model(arch, seed=3, tie_word_embeddings=tied)
    batch = _batch(model)
    model.save_pretrained(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"omni_config.json", "model.safetensors", "tokenizer.json"} <= files
    again = OmniModel.from_pretrained(tmp_path / "m")
    assert not again.training
    assert again.token_ids == model.token_ids and again.cfg.codebook_sizes == model.cfg.codebook_sizes
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    with torch.no_grad():
        x, y = model(batch), again(batch)
    assert torch.equal(x.text_logits, y.text_logits)
    for a, b in zip(x.audio_logits, y.audio_logits):
        assert torch.equal(a, b)
    prompt = model.encode([Message("user", "Hello")], add_generation_prompt=True)
    assert torch.equal(model.generate(prompt, max_new_tokens=12).tokens,
                       again.generate(prompt, max_new_tokens=12).tokens)
    if tied:
        assert again.backbone.lm_head.weight is again.backbone.get_input_embeddings().weight


def test_sharded_save_and_overwrite(tmp_path):
    model = tiny_model("qwen2", vision=False)
    model.save_pretrained(tmp_path / "m", max_shard_size="200KB")
    assert (tmp_path / "m" / "model.safetensors.index.json").is_file()
    model.save_pretrained(tmp_path / "m")  # replaces the sharded copy
    assert not (tmp_path / "m" / "model.safetensors.index.json").exists()
    again = OmniModel.from_pretrained(tmp_path / "m")
    assert torch.equal(again.audio_head.heads[0].weight, model.audio_head.heads[0].weight)
    assert not list(tmp_path.glob(".m.*"))  # no temporary directories left


def test_bogus_hub_id_is_a_clear_error_without_download(no_network):
    with pytest.raises(ModelLoadError, match=r"'Qwen/Qwen2.5-7B-Bogus' is not a local directory.*never downloaded"):
        OmniModel.from_pretrained("Qwen/Qwen2.5-7B-Bogus")
    cfg = OmniModelConfig(backbone=BackboneConfig(path="someone/bogus-model"))
    with pytest.raises(ModelLoadError, match="backbone.path: 'someone/bogus-model'.*hub id"):
        OmniModel.from_config(cfg)


def test_missing_pieces_are_clear_errors(tmp_path, no_network):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="has no omni_config.json"):
        OmniModel.from_pretrained(tmp_path / "empty")
    model = tiny_model("qwen2", vision=False)
    model.save_pretrained(tmp_path / "m")
    cfg_file = tmp_path / "m" / "omni_config.json"
    data = json.loads(cfg_file.read_text())
    data["config"]["codebook_sizes"] = [1]
    cfg_file.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="codebook_sizes"):
        OmniModel.from_pretrained(tmp_path / "m")
    data["config"]["codebook_sizes"] = [64] * 8  # other head shapes than the saved weights
    cfg_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="weights do not match omni_config.json.*size mismatch"):
        OmniModel.from_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="no tokenizer"):
        OmniModel.from_config(OmniModelConfig(backbone=BackboneConfig(model_type="qwen2")))


def test_committed_configs_validate_and_tiny_builds(tmp_path):
    big = load_config(CONFIGS / "qwen2_5_7b.yaml")
    assert big.backbone.path and big.vision.path and big.backbone.dtype == "bfloat16"
    with pytest.raises(ModelLoadError, match="backbone.path"):
        OmniModel.from_config(big)  # validates here, but the 7B directory is not on this machine
    tiny = load_config(CONFIGS / "tiny.yaml")
    from omni.model.tiny import tiny_tokenizer

    model = OmniModel.from_config(tiny, tokenizer=tiny_tokenizer())
    assert model.cfg.num_codebooks == 8 and len(model.audio_head.transformer.layers) == 3
    assert sum(p.numel() for p in model.parameters()) < 5_000_000

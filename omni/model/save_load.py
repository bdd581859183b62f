"""Saving and loading a whole omni model as one local directory.

Layout written by :func:`save_pretrained`::

    DIR/omni_config.json          {"format": "omni-model", "version": 1,
                                   "config": OmniModelConfig (paths cleared),
                                   "backbone_config": the LLM's transformers config,
                                   "vision_config": the vision tower's config or null}
    DIR/model.safetensors         all weights (or model-0000i-of-0000n.safetensors + index when large)
    DIR/tokenizer.json, ...       the tokenizer with the omni special tokens

The saved transformers configs are the source of truth on load: the model is
rebuilt from them (no pretrained directory is read again) and the weights
are loaded strictly. ``checksums.json`` (sha256 of every weights file,
:mod:`omni.integrity`) is verified before the weights are read. Tensors shared by several names (tied LM head and
embedding) are stored once. Saving writes a temporary sibling directory and
renames it into place, so an interrupted save never leaves a half-written
model. Loading only reads local directories; a hub id is a clear error.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import torch
from huggingface_hub import load_torch_model, save_torch_state_dict
from transformers import CONFIG_MAPPING
from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig

from omni.config import from_data, to_data
from omni.integrity import verify_checksums, write_checksums
from omni.model.backbone import ModelLoadError, build_backbone, local_dir
from omni.model.config import OmniModelConfig
from omni.model.model import OmniModel
from omni.model.vision import VisionBranch

CONFIG_FILE = "omni_config.json"
FORMAT = "omni-model"
VERSION = 1


def _aliases(model: torch.nn.Module) -> dict[str, str]:
    """Map each state-dict name to the first name holding the same tensor (itself when not shared)."""
    first: dict[tuple, str] = {}
    out = {}
    for name, t in model.state_dict(keep_vars=True).items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        out[name] = first.setdefault(key, name)
    return out


def save_pretrained(model: OmniModel, path: str | os.PathLike, max_shard_size: str | int = "5GB",
                    state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Write ``model`` to the local directory ``path`` (replaced if it exists), atomically.

    Args:
        state_dict: the weights to write instead of ``model.state_dict()`` (e.g. the full state dict
            ``accelerator.get_state_dict`` gathers from FSDP / ZeRO-3 shards); same keys.
    """
    path = Path(path)
    cfg = model.cfg
    clean = replace(cfg, tokenizer=None, backbone=replace(cfg.backbone, path=None),
                    vision=replace(cfg.vision, path=None))
    data = {
        "format": FORMAT,
        "version": VERSION,
        "config": to_data(clean),
        "backbone_config": model.backbone.config.to_dict(),
        "vision_config": model.vision.config.to_dict() if model.vision is not None else None,
    }
    aliases = _aliases(model)
    full = model.state_dict() if state_dict is None else state_dict
    state = {k: v for k, v in full.items() if aliases.get(k, k) == k}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_torch_state_dict(state, tmp, max_shard_size=max_shard_size)
        model.tokenizer.save_pretrained(str(tmp))
        (tmp / CONFIG_FILE).write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        write_checksums(tmp)
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_pretrained(path: str | os.PathLike) -> OmniModel:
    """Rebuild a model saved by :func:`save_pretrained` and load its weights (eval mode).

    Raises:
        ModelLoadError: ``path`` is not a local omni model directory (hub ids are never downloaded).
        ConfigError: the saved config does not validate.
        ValueError: the weights do not fit the saved config.
        IntegrityError: a weights file does not match ``checksums.json`` (truncated, corrupted, tampered).
    """
    from omni.text.tokenizer import load_tokenizer

    path = local_dir(path, "omni model", must_contain=CONFIG_FILE)
    verify_checksums(path)
    try:
        data = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{path / CONFIG_FILE}: not valid JSON ({e})") from None
    if data.get("format") != FORMAT:
        raise ModelLoadError(f"{path / CONFIG_FILE}: not an omni model config (format {data.get('format')!r})")
    if data.get("version", 0) > VERSION:
        raise ModelLoadError(f"{path}: saved by a newer omni (format version {data['version']} > {VERSION})")
    cfg = from_data(OmniModelConfig, data["config"], source=str(path / CONFIG_FILE))
    tokenizer = load_tokenizer(path)
    hf = data["backbone_config"]
    backbone = build_backbone(cfg.backbone, hf_config=CONFIG_MAPPING[hf["model_type"]].from_dict(hf))
    vision = None
    if data.get("vision_config") is not None:
        vision = VisionBranch(Qwen2VLVisionConfig.from_dict(data["vision_config"]), cfg.backbone.attn_implementation)
    model = OmniModel(cfg, backbone, tokenizer, vision)
    try:
        missing, unexpected = load_torch_model(model, path, strict=False)
    except RuntimeError as e:  # shape mismatches: name the first few
        lines = [ln.strip() for ln in str(e).splitlines()[1:]]
        more = f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""
        raise ValueError(f"{path}: weights do not match {CONFIG_FILE}: {'; '.join(lines[:3])}{more}") from None
    aliases = _aliases(model)
    missing = [k for k in missing if aliases[k] == k]  # a tied alias is loaded through its first name
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match {CONFIG_FILE}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return model.eval()

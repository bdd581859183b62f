"""Saving and loading decoder models: ``model.safetensors`` + ``config.json`` in one directory.

``config.json`` holds ``{"kind": ..., "config": {...}}``: the model's config
dataclass as plain data, validated on load like a YAML config. Loading never
downloads anything: a missing directory or file is a clear error naming it; the
weights are checked against ``checksums.json`` (:mod:`omni.integrity`) first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file

from omni.config import from_data, to_data
from omni.integrity import verify_checksums, write_checksums

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
T = TypeVar("T")


def save_pretrained(directory: str | os.PathLike, module: torch.nn.Module, cfg: Any, kind: str,
                    state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``module``'s weights (or ``state_dict``) and ``cfg`` to ``directory`` (files replaced atomically)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = state_dict if state_dict is not None else module.state_dict()
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    tmp = out / f".{WEIGHTS}.tmp"
    save_file(tensors, str(tmp), metadata={"kind": kind})
    os.replace(tmp, out / WEIGHTS)
    tmp = out / f".{CONFIG}.tmp"
    tmp.write_text(json.dumps({"kind": kind, "config": to_data(cfg)}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / CONFIG)
    write_checksums(out)
    return out


def load_config_json(directory: str | os.PathLike, cls: type[T], kind: str) -> T:
    """The validated config saved in ``directory/config.json``.

    Raises:
        FileNotFoundError: no such directory or no config.json in it.
        ValueError: the file is not a ``kind`` model config or does not validate.
    """
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: model directory not found (models load from local directories only)")
    cfg_path = path / CONFIG
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: missing; not a saved {kind} model directory")
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        found = data.get("kind") if isinstance(data, dict) else None
        raise ValueError(f"{cfg_path}: expected a '{kind}' model, found kind {found!r}")
    return from_data(cls, data.get("config", {}), source=str(cfg_path))


def load_weights(directory: str | os.PathLike, module: torch.nn.Module, strict: bool = True) -> None:
    """Load ``directory/model.safetensors`` into ``module`` (missing/unexpected keys are an error when strict)."""
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing model weights")
    verify_checksums(directory)
    result = module.load_state_dict(load_file(str(path)), strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise ValueError(f"{path}: weights do not match the config (missing {result.missing_keys[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]})")

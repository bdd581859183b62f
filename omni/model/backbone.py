"""The LLM backbone: any Hugging Face causal LM, from a local directory or built from a config.

Two ways to get one, both through ``transformers``' auto classes:

* ``path``: a local directory holding a pretrained model (``config.json`` +
  weights), loaded with ``AutoModelForCausalLM.from_pretrained(path,
  local_files_only=True)``. A missing directory is a :class:`ModelLoadError`
  naming the path; nothing is ever downloaded.
* ``model_type`` + ``hf_config``: a fresh randomly initialised model from
  ``AutoConfig.for_model(model_type, **hf_config)`` (tiny models for tests and
  CPU recipes): ``qwen2``, ``llama``, ``qwen3``, ``qwen3_moe``, ...

Usage::

    llm = build_backbone(BackboneConfig(path="/models/Qwen2.5-7B-Instruct", dtype="bfloat16"))
    llm = build_backbone(BackboneConfig(model_type="qwen2", hf_config={"hidden_size": 64, ...}), vocab_size=300)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from omni.config import check, option
from omni.integrity import verify_checksums

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _selects_hidden_states() -> bool:
    try:  # transformers >= 5.23: output_hidden_states may list the indices to keep, negative ones included
        from transformers.utils.output_capturing import selected_hidden_states  # noqa: F401
    except ImportError:
        return False
    return True


#: What to pass as a backbone's ``output_hidden_states`` so that ``out.hidden_states[-1]`` is the last hidden
#: state (after the final norm): ``[-1]`` keeps only that one where transformers can select by index; older
#: releases (5.13-5.22) take a list as "all" or drop negative indices, so they get ``True`` (every layer's state;
#: the same final entry).
LAST_HIDDEN_STATE: bool | list[int] = [-1] if _selects_hidden_states() else True


class ModelLoadError(FileNotFoundError):
    """A pretrained model or component that cannot be loaded from local disk (message names the path)."""


def local_dir(path: str | os.PathLike, what: str, must_contain: str | None = "config.json") -> Path:
    """Check that ``path`` is a local directory (holding ``must_contain``) and return it.

    Raises:
        ModelLoadError: naming ``what``, the path and the fact that nothing is downloaded; a string that
            looks like a hub id (``org/name``) gets a hint.
    """
    p = Path(path).expanduser()
    if not p.is_dir():
        hint = ""
        text = str(path)
        if text.count("/") == 1 and not text.startswith((".", "/", "~")):
            hint = f" ('{text}' looks like a Hugging Face hub id: download it yourself, e.g. with " \
                   f"`huggingface-cli download {text} --local-dir DIR`, and pass DIR)"
        raise ModelLoadError(f"{what}: '{text}' is not a local directory; models are only loaded from disk, "
                             f"never downloaded{hint}")
    if must_contain and not (p / must_contain).is_file():
        raise ModelLoadError(f"{what}: '{p}' has no {must_contain} (is it a model directory?)")
    return p


@dataclass
class BackboneConfig:
    """Which causal LM to wrap and how to load it."""

    path: str | None = option(
        None,
        help="Local directory of a pretrained Hugging Face causal LM (config.json + safetensors). When set, "
        "model_type and hf_config are ignored. Never a hub id: nothing is downloaded.",
    )
    model_type: str = option(
        "qwen2", help="Architecture for a model built from scratch (no path): any transformers model_type with a "
        "causal-LM class, e.g. qwen2, llama, qwen3, qwen3_moe.",
    )
    hf_config: dict[str, Any] = option(
        default_factory=dict,
        help="Keyword arguments of the transformers config for a model built from scratch (hidden_size, "
        "num_hidden_layers, ...). vocab_size defaults to the tokenizer's size.",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = option(
        "float32", help="Parameter dtype of the whole omni model (backbone, vision branch, audio modules)."
    )
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = option(
        "sdpa", help="Attention kernel passed to transformers (flash_attention_2 needs the flash-attn package)."
    )

    def __post_init__(self) -> None:
        check(self.path is None or bool(str(self.path).strip()), "path", "must be a directory or null")
        check(bool(self.model_type), "model_type", "must name a transformers model_type, e.g. qwen2")
        check("model_type" not in self.hf_config, "hf_config", "put the architecture in model_type, not here")


def backbone_hf_config(cfg: BackboneConfig, vocab_size: int | None = None) -> PretrainedConfig:
    """The transformers config of the backbone ``cfg`` describes (read from ``path`` or built).

    Args:
        vocab_size: for built models, the default vocabulary size (the tokenizer's length) unless
            ``hf_config`` sets one.
    """
    if cfg.path:
        return AutoConfig.from_pretrained(str(local_dir(cfg.path, "backbone.path")), local_files_only=True)
    kwargs = dict(cfg.hf_config)
    if vocab_size is not None:
        kwargs.setdefault("vocab_size", vocab_size)
    try:
        return AutoConfig.for_model(cfg.model_type, **kwargs)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"backbone: cannot build a '{cfg.model_type}' config from hf_config: {e}") from None


def build_backbone(cfg: BackboneConfig, vocab_size: int | None = None,
                   hf_config: PretrainedConfig | None = None) -> PreTrainedModel:
    """Load (``cfg.path``) or build the causal LM.

    Args:
        cfg: backbone settings.
        vocab_size: default vocabulary size for built models (see :func:`backbone_hf_config`).
        hf_config: build from this exact transformers config instead (used by ``from_pretrained`` of a
            saved omni model, whose weights are loaded afterwards).

    Raises:
        ModelLoadError: ``cfg.path`` is not a local model directory.
    """
    dtype = DTYPES[cfg.dtype]
    if hf_config is None and cfg.path:
        path = local_dir(cfg.path, "backbone.path")
        verify_checksums(path)  # when the directory has a checksums.json (an 'omni train lm' export)
        return AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=dtype, attn_implementation=cfg.attn_implementation,
            use_safetensors=True,
        )
    config = hf_config if hf_config is not None else backbone_hf_config(cfg, vocab_size)
    config._attn_implementation = cfg.attn_implementation
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model

"""Vision branch: the Qwen2-VL NaViT vision transformer with its 2x2 patch merger as projector.

``transformers``' ``Qwen2VisionTransformerPretrainedModel`` is the encoder:
images and videos at native resolution and aspect ratio, cut into 14x14
patches (2 frames deep for video), 2-D rotary positions, variable-length
attention per image. Its ``PatchMerger`` is the projector of the design
brief: it concatenates each 2x2 block of neighbouring patch features and runs
a 2-layer MLP into the LLM width (``hidden_size`` of the vision config is set
to the LLM width), so an image of ``grid (t, h, w)`` patches gives
``t*h*w/4`` tokens.

Parameter groups: ``vision_encoder`` (patch embedding + blocks) and
``vision_projector`` (the merger).

Weights come from a local Qwen2-VL directory (``path``): only the tensors of
the vision tower (``visual.*`` or ``model.visual.*``) are read from its
safetensors files. When the LLM width differs from the checkpoint's merger
output, the merger is re-initialised (it is trained in image-text stage 1).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig
from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

from omni.config import check, option
from omni.model.backbone import ModelLoadError, local_dir

log = logging.getLogger(__name__)

#: Prefixes of the vision tower's tensors in Qwen2-VL checkpoints (original and transformers>=4.52 layouts).
VISION_PREFIXES = ("model.visual.", "visual.")


@dataclass
class VisionConfig:
    """The NaViT vision encoder, its projector and how images and videos are prepared for it."""

    enabled: bool = option(True, help="Build the vision branch; false gives a speech/text-only model.")
    path: str | None = option(
        None, help="Local directory of a pretrained Qwen2-VL model whose vision tower is loaded (only its "
        "'visual.*' tensors are read). Null: a randomly initialised tower with the sizes below.",
    )
    depth: int = option(32, help="Transformer blocks of the encoder (ignored when path is set).")
    embed_dim: int = option(1280, help="Width of the encoder (ignored when path is set).")
    num_heads: int = option(16, help="Attention heads of the encoder (ignored when path is set).")
    mlp_ratio: int = option(4, help="MLP width / embed_dim in each encoder block (ignored when path is set).")
    patch_size: int = option(14, help="Side of a square patch in pixels.")
    temporal_patch_size: int = option(2, help="Frames per patch (an image is repeated to fill them).")
    spatial_merge_size: int = option(2, help="Side of the block of patches merged into one LLM token (2 = 2x2).")
    min_pixels: int = option(56 * 56, help="Smallest image area after resizing (pixels); smaller images are upscaled.")
    max_pixels: int = option(
        28 * 28 * 1280, help="Largest image area after resizing (pixels); 28*28*1280 caps an image at 1280 tokens."
    )
    video_fps: float = option(1.0, help="Frames sampled per second of video.")
    video_max_frames: int = option(32, help="Most frames sampled from one video (spread uniformly when capped).")
    video_max_size: tuple[int, int] = option(
        (560, 1120), help="Bounding box (short side, long side) in pixels that every video frame is resized within."
    )

    def __post_init__(self) -> None:
        for name in ("depth", "embed_dim", "num_heads", "mlp_ratio", "patch_size", "temporal_patch_size",
                     "spatial_merge_size", "video_max_frames"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.embed_dim % self.num_heads == 0, "embed_dim", "must be divisible by num_heads")
        check((self.embed_dim // self.num_heads) % 4 == 0, "num_heads",
              "embed_dim / num_heads must be divisible by 4 (2-D rotary halves)")
        factor = self.patch_size * self.spatial_merge_size
        check(self.min_pixels >= factor * factor, "min_pixels", f"must be >= {factor}^2 (one merged token)")
        check(self.max_pixels >= self.min_pixels, "max_pixels", "must be >= min_pixels")
        check(self.video_fps > 0, "video_fps", "must be > 0")
        short, long = self.video_max_size
        check(factor <= short <= long, "video_max_size", f"needs {factor} <= short side <= long side")
        check(short % factor == 0 and long % factor == 0, "video_max_size",
              f"both sides must be multiples of patch_size * spatial_merge_size = {factor}, got {short}x{long}")

    @property
    def merge_factor(self) -> int:
        """Pixels per side of one LLM token (patch_size * spatial_merge_size, 28 by default)."""
        return self.patch_size * self.spatial_merge_size


def vision_hf_config(cfg: VisionConfig, llm_hidden_size: int) -> Qwen2VLVisionConfig:
    """The transformers vision config: from ``cfg.path`` (its ``vision_config``) or from the sizes in ``cfg``.

    ``hidden_size`` (the merger's output width) is always the LLM width.
    """
    if cfg.path:
        path = local_dir(cfg.path, "vision.path")
        full = AutoConfig.from_pretrained(str(path), local_files_only=True)
        vision = getattr(full, "vision_config", None)
        if vision is None or not isinstance(vision, Qwen2VLVisionConfig):
            raise ModelLoadError(f"vision.path: '{path}' is not a Qwen2-VL model (config has no Qwen2-VL vision_config)")
        for name in ("patch_size", "temporal_patch_size", "spatial_merge_size"):
            if getattr(vision, name) != getattr(cfg, name):
                raise ValueError(f"vision.{name}: {getattr(cfg, name)} differs from the checkpoint's "
                                 f"{getattr(vision, name)} in '{path}' (the processor must cut patches the same way)")
        data = vision.to_dict()
        data["hidden_size"] = llm_hidden_size
        data.pop("model_type", None)
        return Qwen2VLVisionConfig(**{k: v for k, v in data.items() if not k.startswith("_")})
    return Qwen2VLVisionConfig(
        depth=cfg.depth, embed_dim=cfg.embed_dim, hidden_size=llm_hidden_size, num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio, patch_size=cfg.patch_size, temporal_patch_size=cfg.temporal_patch_size,
        spatial_merge_size=cfg.spatial_merge_size,
    )


class VisionBranch(nn.Module):
    """Qwen2-VL vision tower + 2x2 merger/projector into the LLM width.

    Args:
        hf_config: the tower's config (``hidden_size`` = LLM width); see :func:`vision_hf_config`.
        attn_implementation: ``sdpa``, ``eager`` or ``flash_attention_2``.
    """

    def __init__(self, hf_config: Qwen2VLVisionConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        hf_config._attn_implementation = attn_implementation
        self.tower = Qwen2VisionTransformerPretrainedModel(hf_config)
        self.merge_size = hf_config.spatial_merge_size

    @property
    def config(self) -> Qwen2VLVisionConfig:
        return self.tower.config

    def num_tokens(self, grid_thw: torch.Tensor) -> torch.Tensor:
        """LLM tokens per image/video: ``t * h * w / merge_size**2`` for each row of ``grid_thw`` (N, 3)."""
        return grid_thw.prod(-1) // (self.merge_size**2)

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """Encode and project.

        Args:
            pixel_values: (P, C * temporal_patch * patch * patch) flattened patches of all images (or all
                videos), in the order of ``grid_thw``, as the Qwen2-VL processors lay them out.
            grid_thw: (N, 3) patches along time, height, width for each image/video.

        Returns:
            (P / merge_size**2, D_llm) one feature per LLM placeholder token, images in order.
        """
        pixel_values = pixel_values.to(self.tower.get_dtype())
        return self.tower(pixel_values, grid_thw=grid_thw).pooler_output  # (P/4, D)

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Copy the vision tower weights of a local Qwen2-VL checkpoint into this branch.

        The merger is skipped (kept as initialised) when its output width differs from this branch's.

        Raises:
            ModelLoadError: no safetensors files, or tensors missing for the encoder.
        """
        path = local_dir(path, "vision.path")
        files = _safetensors_files(path)
        state = {}
        for file in files:
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():
                    for prefix in VISION_PREFIXES:
                        if key.startswith(prefix):
                            state[key[len(prefix):]] = f.get_tensor(key)
                            break
        if not state:
            raise ModelLoadError(f"vision.path: '{path}' holds no vision tower tensors (visual.* / model.visual.*)")
        own = self.tower.state_dict()
        skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        if skipped and not all(k.startswith("merger.") for k in skipped):
            raise ModelLoadError(f"vision.path: '{path}': tensor shapes differ from the configured tower: {skipped[:3]}")
        if skipped:
            log.warning("vision.path: merger output width %s differs from the LLM width %s; the projector is "
                        "re-initialised", state["merger.mlp.2.weight"].shape[0], own["merger.mlp.2.weight"].shape[0])
            state = {k: v for k, v in state.items() if not k.startswith("merger.")}
        missing, unexpected = self.tower.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (skipped and k.startswith("merger."))]
        if missing or unexpected:
            raise ModelLoadError(f"vision.path: '{path}': missing tensors {missing[:3]}, unexpected {unexpected[:3]}")


def _safetensors_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():  # sharded: open only the shards that hold vision tensors
        weight_map = json.loads(index.read_text())["weight_map"]
        names = sorted({f for k, f in weight_map.items() if k.startswith(VISION_PREFIXES)})
        return [path / n for n in names]
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"vision.path: '{path}' has no .safetensors weight files")
    return files

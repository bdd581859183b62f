"""Images and videos to vision-tower inputs (flattened patches + grid sizes), with the Qwen2-VL processor.

Images go through ``transformers``' ``Qwen2VLImageProcessorPil``: resized with
``smart_resize`` so both sides are multiples of 28 (patch 14 x merge 2) and
the area is within ``[min_pixels, max_pixels]`` (aspect ratio kept), then
normalised and cut into patches. A 333x517 image becomes 336x504 pixels,
a grid of (1, 24, 36) patches and 24*36/4 = 216 LLM tokens.

Videos (the design brief, section 4): frames are sampled at ``video_fps`` (1 fps), at most
``video_max_frames`` (32, spread uniformly over the whole video when
capped), every frame resized within ``video_max_size`` (560x1120: short side
<= 560, long side <= 1120) then to multiples of 28; consecutive frames are
paired into temporal patches (``temporal_patch_size`` = 2), so 32 frames give
``grid_t`` = 16. (``transformers``' Qwen2-VL *video* processor needs
torchvision, which this stack does not install; frames are therefore processed
by the image processor and paired here, in the video processor's patch layout.)

Usage::

    proc = VisionProcessor(cfg.vision)
    img = proc.images([load_image("cat.png")])            # VisionInputs(pixel_values (P, 1176), grid_thw (1, 3))
    vid = proc.video(*load_video("clip.mp4", cfg.vision))  # frames sampled at 1 fps, <= 32
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
    Qwen2VLImageProcessorPil,
    smart_resize,
)

from omni.model.vision import VisionConfig


@dataclass
class VisionInputs:
    """Patches of one or more images (or videos), laid out as the Qwen2-VL vision tower expects.

    Attributes:
        pixel_values: (P, C * temporal_patch * patch * patch) float; P = sum over items of t*h*w.
        grid_thw: (N, 3) long: patches along time, height, width of each item.
    """

    pixel_values: torch.Tensor
    grid_thw: torch.Tensor

    def num_tokens(self, merge_size: int = 2) -> list[int]:
        """LLM placeholder tokens per item: t*h*w / merge_size**2."""
        return [int(n) for n in self.grid_thw.prod(-1) // (merge_size**2)]

    @staticmethod
    def concat(items: Sequence[VisionInputs]) -> VisionInputs | None:
        """Concatenate items in order (None for an empty list)."""
        if not items:
            return None
        return VisionInputs(torch.cat([i.pixel_values for i in items]), torch.cat([i.grid_thw for i in items]))


ImageLike = Image.Image | np.ndarray | str | os.PathLike


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as RGB.

    Raises:
        FileNotFoundError / ValueError: naming the path.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: image file not found")
    try:
        with Image.open(p) as im:
            return im.convert("RGB")
    except Exception as e:  # PIL raises many types for bad files
        raise ValueError(f"{p}: cannot read image ({e})") from None


def load_video(path: str | os.PathLike, cfg: VisionConfig) -> tuple[np.ndarray, float]:
    """Decode the frames of a video file that :meth:`VisionProcessor.video` will use, with ffmpeg.

    Only the sampled frames (``cfg.video_fps``, at most ``cfg.video_max_frames``) are kept in memory.

    Returns:
        (frames (F, H, W, 3) uint8, their rate in frames per second) — pass both to ``video()``.

    Raises:
        FileNotFoundError / ValueError: naming the path.
    """
    import imageio_ffmpeg

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: video file not found")
    try:
        reader = imageio_ffmpeg.read_frames(str(p))
        meta = next(reader)
        width, height = meta["size"]
        src_fps = float(meta.get("fps") or 0.0)
        duration = float(meta.get("duration") or 0.0)
        if src_fps <= 0 or duration <= 0:
            raise ValueError("no frame rate or duration in the stream header")
        expected = max(1, round(duration * src_fps))
        wanted = sample_frame_indices(expected, src_fps, cfg.video_fps, cfg.video_max_frames)
        keep, frames = set(wanted), []
        for i, raw in enumerate(reader):
            if i in keep:
                frames.append(np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3))
            if i >= wanted[-1]:
                break
        reader.close()
    except (RuntimeError, OSError, StopIteration, KeyError, ValueError) as e:
        raise ValueError(f"{p}: cannot decode video ({e})") from None
    if not frames:
        raise ValueError(f"{p}: no frames decoded")
    rate = len(frames) / duration if len(wanted) == cfg.video_max_frames else cfg.video_fps
    return np.stack(frames), rate


def sample_frame_indices(num_frames: int, fps: float, target_fps: float = 1.0, max_frames: int = 32) -> list[int]:
    """Indices of the frames to keep: one every ``1/target_fps`` seconds, at most ``max_frames``.

    Up to the cap, frame ``i`` is taken at time ``i / target_fps`` seconds (so a 40 s clip at 1 fps
    gives 40 candidates); above it, ``max_frames`` indices are spread uniformly over the whole video.

    Args:
        num_frames: frames in the source.
        fps: their rate.
    """
    if num_frames < 1 or fps <= 0:
        raise ValueError(f"need at least one frame and a positive fps, got {num_frames} frames at {fps} fps")
    duration = num_frames / fps
    wanted = max(1, math.floor(duration * target_fps + 1e-6))
    if wanted <= max_frames:
        return sorted({min(num_frames - 1, math.floor(i / target_fps * fps + 1e-6)) for i in range(wanted)})
    return [int(round(x)) for x in np.linspace(0, num_frames - 1, max_frames)]


def fit_within(height: int, width: int, box: tuple[int, int]) -> tuple[float, float]:
    """Scale (height, width) down, aspect kept, so the short side <= box[0] and the long side <= box[1]."""
    short, long = min(height, width), max(height, width)
    scale = min(1.0, box[0] / short, box[1] / long)
    return height * scale, width * scale


class VisionProcessor:
    """Turns images and videos into :class:`VisionInputs` for :class:`~omni.model.vision.VisionBranch`."""

    def __init__(self, cfg: VisionConfig):
        self.cfg = cfg
        common = dict(patch_size=cfg.patch_size, merge_size=cfg.spatial_merge_size)
        self._images = Qwen2VLImageProcessorPil(
            size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels},
            temporal_patch_size=cfg.temporal_patch_size, **common,
        )
        # frames: one temporal slice each; pairs are built in video()
        self._frames = Qwen2VLImageProcessorPil(do_resize=False, temporal_patch_size=1, **common)

    def images(self, images: Sequence[ImageLike]) -> VisionInputs:
        """Process images (PIL, (H, W, 3) uint8 arrays or paths) at native aspect ratio."""
        pil = [load_image(im) if isinstance(im, (str, os.PathLike)) else im for im in images]
        if not pil:
            raise ValueError("images: empty list")
        out = self._images(images=pil, return_tensors="pt")
        return VisionInputs(out["pixel_values"], out["image_grid_thw"].long())

    def video(self, frames: np.ndarray | Sequence[ImageLike], fps: float) -> VisionInputs:
        """Process one video given as frames at ``fps`` frames per second.

        Args:
            frames: (F, H, W, 3) uint8 array or a list of PIL images, all the same size.
            fps: rate of ``frames`` (1.0 for frames already sampled at 1 fps).

        Returns:
            VisionInputs with one item of grid (ceil(F' / temporal_patch), h, w), F' <= video_max_frames.
        """
        cfg = self.cfg
        if len(frames) == 0:
            raise ValueError("video: no frames")
        keep = sample_frame_indices(len(frames), fps, cfg.video_fps, cfg.video_max_frames)
        pil = [f if isinstance(f, Image.Image) else Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
        pil = [pil[i].convert("RGB") for i in keep]
        h, w = fit_within(pil[0].height, pil[0].width, cfg.video_max_size)
        height, width = smart_resize(round(h), round(w), factor=cfg.merge_factor, min_pixels=cfg.min_pixels,
                                     max_pixels=cfg.video_max_size[0] * cfg.video_max_size[1])
        pil = [im.resize((width, height), Image.Resampling.BICUBIC) for im in pil]
        tp = cfg.temporal_patch_size
        pil += [pil[-1]] * (-len(pil) % tp)  # pad to whole temporal patches with the last frame
        out = self._frames(images=pil, return_tensors="pt")
        per_frame = out["pixel_values"]  # (F * h*w, C * p * p)
        grid_h, grid_w = (int(x) for x in out["image_grid_thw"][0, 1:])
        n, c, p2 = len(pil), 3, cfg.patch_size**2
        x = per_frame.reshape(n // tp, tp, grid_h * grid_w, c, p2)  # (T, tp, h*w, C, p*p)
        x = x.permute(0, 2, 3, 1, 4)  # (T, h*w, C, tp, p*p): the video processor's (C, t, p, p) patch order
        pixel_values = x.reshape(n // tp * grid_h * grid_w, c * tp * p2)
        return VisionInputs(pixel_values, torch.tensor([[n // tp, grid_h, grid_w]], dtype=torch.long))

"""Media sources for the formatters: cached audio codes, processed images and videos.

* :class:`CachedMedia` (training): codes read from the shards of ``omni data tokenize``
  (:class:`~omni.data.codes.CodesReader`), checked against the model's codebooks; images and videos
  through the Qwen2-VL processor (:class:`~omni.model.vision_inputs.VisionProcessor`).
* :class:`ShapeMedia` (indexing): the same shapes without the data: code shapes from the shard
  headers, image token grids from the image header and the processor's ``smart_resize``. Formatting a
  row with it gives the exact sequence length the example will have, which packing and bucketing need.

Problems become :class:`~omni.data.formatters.DataError` naming the manifest, the row and the field,
so a bad row is skipped and counted instead of stopping the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from omni.data.codes import CodesReader
from omni.data.formatters import DataError
from omni.data.manifest import resolve_media
from omni.model.vision import VisionConfig
from omni.model.vision_inputs import VisionInputs, VisionProcessor, load_image, load_video


class _Codes:
    """CodesReader per manifest, created lazily (and dropped when pickled into DataLoader workers)."""

    def __init__(self) -> None:
        self._readers: dict[str, CodesReader] = {}

    def reader(self, manifest: str) -> CodesReader:
        if manifest not in self._readers:
            self._readers[manifest] = CodesReader(manifest)
        return self._readers[manifest]

    def __getstate__(self) -> dict:
        return {"_readers": {}}


def _ref(manifest: str, holder: Any, where: str) -> Any:
    if getattr(holder, "audio", None) is None:
        raise DataError(f"{where}: no audio")
    if holder.codes is None:
        raise DataError(f"{where}: audio '{holder.audio}' has no cached codes (run 'omni data tokenize' "
                        "on this manifest and train on the .codes.jsonl it writes)")
    return holder.codes


class CachedMedia:
    """Training-time media: real codes (checked) and processed pixels.

    Args:
        codebook_sizes: the model's codebook sizes (K levels); codes must fit them.
        vision: the model's vision settings (None: the model has no vision branch; image rows fail).
    """

    def __init__(self, codebook_sizes: list[int], vision: VisionConfig | None):
        self.sizes = torch.tensor(codebook_sizes)
        self.vision = vision
        self._codes = _Codes()
        self._processor: VisionProcessor | None = None

    def codes(self, manifest: str, holder: Any, where: str) -> torch.Tensor:
        ref = _ref(manifest, holder, where)
        try:
            codes = self._codes.reader(manifest).load(ref)  # (T, K)
        except Exception as e:  # missing / corrupt shard or key (safetensors raises its own error types)
            raise DataError(f"{where}: cannot read codes ({e})") from None
        _check_codes_shape(manifest, where, tuple(codes.shape), len(self.sizes))
        if bool((codes < 0).any()) or bool((codes >= self.sizes).any()):
            raise DataError(f"{where}: codes outside the codebooks {self.sizes.tolist()} (cached with "
                            "another audio tokenizer?)")
        return codes

    def _vision(self) -> VisionProcessor:
        if self.vision is None:
            raise DataError("the batch has images or videos but the model has no vision branch (vision.enabled: false)")
        if self._processor is None:
            self._processor = VisionProcessor(self.vision)
        return self._processor

    def image(self, manifest: str, path: str) -> VisionInputs:
        proc = self._vision()
        try:
            return proc.images([load_image(resolve_media(manifest, path))])
        except (OSError, ValueError) as e:
            raise DataError(f"image '{path}': {e}") from None

    def video(self, manifest: str, path: str) -> VisionInputs:
        proc = self._vision()
        try:
            return proc.video(*load_video(resolve_media(manifest, path), proc.cfg))
        except (OSError, ValueError) as e:
            raise DataError(f"video '{path}': {e}") from None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_processor": None}


class ShapeMedia:
    """Index-time media: tensors of the right shapes, read from headers only (codes are zeros, pixels empty).

    Videos are decoded once to count their sampled frames exactly (videos are rare; images are not decoded).
    """

    def __init__(self, codebook_sizes: list[int], vision: VisionConfig | None):
        self.k = len(codebook_sizes)
        self.vision = vision
        self._codes = _Codes()
        self._real = CachedMedia(codebook_sizes, vision)

    def codes(self, manifest: str, holder: Any, where: str) -> torch.Tensor:
        ref = _ref(manifest, holder, where)
        try:
            shape = self._codes.reader(manifest).shape(ref)
        except Exception as e:  # missing / corrupt shard or key
            raise DataError(f"{where}: cannot read codes ({e})") from None
        _check_codes_shape(manifest, where, shape, self.k)
        return torch.zeros(shape, dtype=torch.long)

    def image(self, manifest: str, path: str) -> VisionInputs:
        from PIL import Image as PILImage

        if self.vision is None:
            raise DataError(f"image '{path}': the model has no vision branch (vision.enabled: false)")
        file = resolve_media(manifest, path)
        if not Path(file).is_file():
            raise DataError(f"image '{path}': file not found")
        try:
            with PILImage.open(file) as im:  # reads the header only
                width, height = im.size
        except Exception as e:  # PIL raises many types for bad files
            raise DataError(f"image '{path}': cannot read image ({e})") from None
        return image_shape(height, width, self.vision)

    def video(self, manifest: str, path: str) -> VisionInputs:
        inputs = self._real.video(manifest, path)
        return VisionInputs(inputs.pixel_values[:0], inputs.grid_thw)


def image_shape(height: int, width: int, vision: VisionConfig) -> VisionInputs:
    """Empty pixels with the patch grid the Qwen2-VL processor gives an image of this size: (1, h/14, w/14)."""
    h, w = smart_resize(height, width, factor=vision.merge_factor, min_pixels=vision.min_pixels,
                        max_pixels=vision.max_pixels)
    grid = torch.tensor([[1, h // vision.patch_size, w // vision.patch_size]], dtype=torch.long)
    dim = 3 * vision.temporal_patch_size * vision.patch_size**2
    return VisionInputs(torch.zeros(0, dim), grid)


def _check_codes_shape(manifest: str, where: str, shape: tuple, k: int) -> None:
    if len(shape) != 2 or shape[1] != k:
        raise DataError(f"{where}: codes of shape {tuple(shape)}, the model expects (frames, {k})")
    if shape[0] == 0:
        raise DataError(f"{where}: empty codes (0 frames)")

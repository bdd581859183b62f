"""Where the vision projector's output starts: centred and scaled on real images (a data-dependent start).

A random vision tower maps every image to nearly the same tokens: synthetic (and most real) images are
largely background, and the merger's random bias adds one more shared vector. Measured on the tiny model
(reports/learning.md V): the projected tokens have norm 0.71, of which 0.70 is one vector common to all
images and 0.06 depends on the image. The LLM normalises each position (RMSNorm) before it reads it, so
what tells the images apart is drowned, and training the tower and the LLM together then grows the
shared vector instead (norm 17 after 250 image-QA steps) while the answers stay at chance.

:func:`centre_projector` shifts and scales the merger's last linear layer so that the tokens of a set of
images have zero mean and a chosen mean norm; the map stays affine, nothing else changes::

    y = W h + b                     (the merger's last layer, y: (N, D) tokens of the images)
    y' = s (y - mean(y))            W' = s W,  b' = s (b - mean(y)),  s = norm / mean ||y - mean(y)||

The stage option ``projector_init`` does it on the first images of a manifest when a stage starts, on the
model it builds or loads (:func:`omni.training.stage.load_stage_model`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from omni.model.vision import VisionBranch
from omni.model.vision_inputs import VisionProcessor


@dataclass
class ProjectorStart:
    """What :func:`centre_projector` measured and applied.

    Attributes:
        token_norm: mean norm of the projected tokens before.
        shared_norm: norm of their mean (the vector every token shares) before.
        scale: the factor ``s`` applied to the last layer.
        tokens: how many tokens were measured.
    """

    token_norm: float
    shared_norm: float
    scale: float
    tokens: int


@torch.no_grad()
def project_images(vision: VisionBranch, processor: VisionProcessor, paths: Sequence[str | os.PathLike],
                   batch: int = 32) -> torch.Tensor:
    """Projector outputs of images, in order: (sum of their tokens, D) float32."""
    out = []
    for i in range(0, len(paths), batch):
        inputs = processor.images([str(p) for p in paths[i:i + batch]])
        out.append(vision(inputs.pixel_values, inputs.grid_thw).float())  # (tokens, D)
    return torch.cat(out)


@torch.no_grad()
def centre_projector(vision: VisionBranch, features: torch.Tensor, norm: float = 1.0) -> ProjectorStart:
    """Make the projector map ``features``' images to tokens of mean zero and mean norm ``norm``.

    Args:
        vision: the branch whose merger's last linear layer is changed in place.
        features: (N, D) this branch's current projector outputs of some images (:func:`project_images`).
        norm: mean norm of the centred tokens afterwards.

    Raises:
        ValueError: fewer than 2 tokens, a non-positive norm, or tokens that are all equal.
    """
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"centre_projector: need (N >= 2, D) projected tokens, got {tuple(features.shape)}")
    if norm <= 0:
        raise ValueError(f"centre_projector: norm must be > 0, got {norm}")
    last = vision.tower.merger.mlp[-1]
    mean = features.mean(0)  # (D,)
    spread = (features - mean).norm(dim=-1).mean()
    if not torch.isfinite(spread) or spread <= 0:
        raise ValueError("centre_projector: the images' tokens are all equal; nothing to centre")
    scale = norm / float(spread)
    last.weight.mul_(scale)
    last.bias.sub_(mean.to(last.bias.dtype)).mul_(scale)
    return ProjectorStart(float(features.norm(dim=-1).mean()), float(mean.norm()), scale, int(features.shape[0]))

"""Examples and batches of the omni model: token ids with audio frames and images in one sequence.

One sequence holds text tokens and placeholders: ``<|audio|>`` for each audio
frame, ``<|image|>`` / ``<|video|>`` for each merged vision patch. The frames'
codes and the images' patches travel beside the ids, in the order their
placeholders appear (row by row, left to right), like the pixel values of
Hugging Face's Qwen2-VL. Labels follow the Hugging Face convention: aligned
with ``input_ids`` and shifted inside the loss (position t predicts t+1).

Example (B = 2, K = 2 codebooks for brevity, right padding, pad id 0; A =
``<|audio|>``, S = ``<|audio_gen_start|>``, E = ``<|audio_end|>``, I = ``<|im_end|>``)::

    row 0  prompt "hi" then a spoken answer of 2 frames:
        input_ids       [ 5,  9,  S,  A,  A,  E,  I]
        labels          [-100, -100, S, A, A, E, I]       # targets: switch, continue x2, stop, end
    row 1  a user utterance of 1 frame, then the text answer "ok":
        input_ids       [ 7,  A, 12,  I,  0,  0,  0]
        labels          [-100, -100, 12, I, -100, -100, -100]

    attention_mask      [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]]
    position_ids        [[0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 0, 0, 0]]
    audio_codes         [[3, 1], [4, 0],          # row 0 frames (targets)
                         [9, 2]]                  # row 1 frame (input speech)
    audio_target        [True, True, False]

The audio head is trained on the target frames: for the frame at position p
it reads the LLM hidden state at p-1 (which also predicts the ``<|audio|>``
token). Packing (``pack``): several examples in one row, ``attention_mask``
None and ``position_ids`` restarting at 0 per example; transformers then
builds a block-diagonal causal mask, so examples never attend to each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from omni.model.vision_inputs import VisionInputs

IGNORE = -100


@dataclass
class OmniExample:
    """One unpadded sequence (what a data set yields).

    Attributes:
        input_ids: (T,) long.
        labels: (T,) long, ``-100`` where no text target.
        audio_codes: (N, K) long, codes of the N ``<|audio|>`` positions in order.
        audio_target: (N,) bool, which of those frames the audio head is trained on (and scored on).
        images: patches of the images, in placeholder order (or None).
        videos: patches of the videos, in placeholder order (or None).
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    audio_codes: torch.Tensor
    audio_target: torch.Tensor
    images: VisionInputs | None = None
    videos: VisionInputs | None = None

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass
class OmniBatch:
    """A padded (or packed) batch; the layout is shown in the module docstring.

    Attributes:
        input_ids: (B, T) long.
        attention_mask: (B, T) long, 1 = token, 0 = padding; None for packed rows.
        position_ids: (B, T) long.
        labels: (B, T) long or None (generation prompts).
        audio_codes: (N, K) long, every ``<|audio|>`` of the batch in row-major order.
        audio_target: (N,) bool.
        pixel_values / image_grid_thw: all images' patches (P, C*2*14*14) and grids (N_img, 3), or None.
        pixel_values_videos / video_grid_thw: the same for videos.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor
    labels: torch.Tensor | None
    audio_codes: torch.Tensor
    audio_target: torch.Tensor
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None
    pixel_values_videos: torch.Tensor | None = None
    video_grid_thw: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> OmniBatch:
        """A copy with every tensor on ``device``."""
        return OmniBatch(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()})

    @property
    def num_target_tokens(self) -> int:
        """Text targets (a loss-unit count for the training loop)."""
        return 0 if self.labels is None else int((self.labels[:, 1:] != IGNORE).sum())

    @property
    def num_target_frames(self) -> int:
        """Audio target frames."""
        return int(self.audio_target.sum())


def _vision(items: Sequence[VisionInputs | None]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    merged = VisionInputs.concat([i for i in items if i is not None])
    return (None, None) if merged is None else (merged.pixel_values, merged.grid_thw)


def _audio(examples: Sequence[OmniExample]) -> tuple[torch.Tensor, torch.Tensor]:
    k = max((e.audio_codes.shape[-1] for e in examples if e.audio_codes.dim() == 2), default=0)
    codes = [e.audio_codes.reshape(-1, k) if k else e.audio_codes for e in examples]
    return torch.cat(codes).long(), torch.cat([e.audio_target for e in examples]).bool()


def collate(examples: Sequence[OmniExample], pad_id: int, padding_side: Literal["right", "left"] = "right",
            pad_to_multiple_of: int = 1) -> OmniBatch:
    """Pad examples into one batch (left padding for generation prompts); the result is laid out as in the
    example of the module docstring.

    Position ids count real tokens only (``cumsum(mask) - 1``), so a left-padded row gets the same
    positions as it would alone; padded positions get 0.
    """
    if not examples:
        raise ValueError("collate: no examples")
    length = max(len(e) for e in examples)
    length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e)
        span = slice(length - n, length) if padding_side == "left" else slice(0, n)
        ids[i, span] = e.input_ids
        labels[i, span] = e.labels
        mask[i, span] = 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0) * mask  # (B, T)
    codes, target = _audio(examples)
    pv, grid = _vision([e.images for e in examples])
    pvv, vgrid = _vision([e.videos for e in examples])
    return OmniBatch(ids, mask, position_ids, labels, codes, target, pv, grid, pvv, vgrid)


def pack(examples: Sequence[OmniExample]) -> OmniBatch:
    """Concatenate examples into one row (B = 1) with positions restarting per example and no padding.

    ``attention_mask`` is None: transformers derives a block-diagonal causal mask from the position
    resets, so each example only sees itself (the model must be run with ``use_cache=False``).
    """
    if not examples:
        raise ValueError("pack: no examples")
    ids = torch.cat([e.input_ids for e in examples]).unsqueeze(0)  # (1, sum T)
    labels = [e.labels.clone() for e in examples]
    for lab in labels:
        lab[0] = IGNORE  # the previous example's last position never predicts this one's first token
    labels = torch.cat(labels).unsqueeze(0)
    positions = torch.cat([torch.arange(len(e)) for e in examples]).unsqueeze(0)
    codes, target = _audio(examples)
    pv, grid = _vision([e.images for e in examples])
    pvv, vgrid = _vision([e.videos for e in examples])
    return OmniBatch(ids, None, positions, labels, codes, target, pv, grid, pvv, vgrid)

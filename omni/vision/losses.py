"""The vision warm-up's loss: cross-entropy of each labelled attribute, a pure function of logits and labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = -100
"""Label of an attribute an image does not have (a digit scene has no shape): no loss, not counted."""


@dataclass
class LabelLoss:
    """Summed cross-entropy over the labelled (image, attribute) pairs of a batch.

    Attributes:
        total: scalar, the sum over every attribute of its summed NLL.
        count: scalar, the number of labelled pairs (the loss units).
        per_attribute: attribute -> (summed NLL, labelled images), for logging each attribute's mean.
    """

    total: torch.Tensor
    count: torch.Tensor
    per_attribute: dict[str, tuple[torch.Tensor, torch.Tensor]]


def label_loss(logits: dict[str, torch.Tensor], labels: torch.Tensor, attributes: list[str]) -> LabelLoss:
    """Cross-entropy of every attribute's head, summed over labelled images.

    Args:
        logits: attribute -> (B, C_attribute) scores.
        labels: (B, A) class index of each image's attribute, column ``a`` for ``attributes[a]``; ``IGNORE``
            where the image has no value.
        attributes: the column order of ``labels``.

    Example: one attribute with logits [[0, 0], [2, 0]] and labels [[1], [IGNORE]] gives total ln 2 and count 1.
    """
    if labels.dim() != 2 or labels.shape[1] != len(attributes):
        raise ValueError(f"labels must be (B, {len(attributes)}), got {tuple(labels.shape)}")
    per: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for a, name in enumerate(attributes):
        target = labels[:, a]  # (B,)
        nll = F.cross_entropy(logits[name].float(), target, ignore_index=IGNORE, reduction="sum")
        per[name] = (nll, (target != IGNORE).sum())
    total = torch.stack([n for n, _ in per.values()]).sum()
    count = torch.stack([c for _, c in per.values()]).sum()
    return LabelLoss(total, count, per)

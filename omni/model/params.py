"""Named parameter groups of the omni model and the one function that freezes / unfreezes them.

==================  ==========================================================================
group               parameters
==================  ==========================================================================
``embeddings``      the LLM's input token embedding (and the LM head when they are tied)
``lm_head``         the LLM's output projection (empty when tied to the embeddings)
``llm``             every other LLM parameter (decoder layers, final norm)
``vision_encoder``  the vision transformer (patch embedding, blocks)
``vision_projector`` the 2x2 patch merger + 2-layer MLP into the LLM width
``audio_embed``     the per-codebook audio embedding tables and their projection
``audio_head``      the depth transformer and its K classification heads
==================  ==========================================================================

Every parameter belongs to exactly one group (tested). Stage configs list the
trainable groups; :func:`set_trainable` applies them and reports counts;
:func:`parameter_groups` also serves per-group learning rates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

GROUPS = ("llm", "embeddings", "lm_head", "vision_encoder", "vision_projector", "audio_embed", "audio_head")


def parameter_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Map every (deduplicated) parameter of an :class:`~omni.model.model.OmniModel` to its group.

    Returns:
        group name -> [(parameter name, parameter)], all groups present (possibly empty).

    Raises:
        RuntimeError: a parameter that matches no group (a new module was added without a group).
    """
    emb = model.backbone.get_input_embeddings().weight
    head = model.backbone.get_output_embeddings()
    head_params = {id(p) for p in head.parameters()} if head is not None else set()
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {g: [] for g in GROUPS}
    for name, p in model.named_parameters():  # shared (tied) tensors are listed once
        if p is emb:
            group = "embeddings"
        elif id(p) in head_params:
            group = "lm_head"
        elif name.startswith("backbone."):
            group = "llm"
        elif name.startswith("vision.tower.merger."):
            group = "vision_projector"
        elif name.startswith("vision."):
            group = "vision_encoder"
        elif name.startswith("audio_embed."):
            group = "audio_embed"
        elif name.startswith("audio_head."):
            group = "audio_head"
        else:
            raise RuntimeError(f"parameter '{name}' belongs to no group; add it to omni.model.params")
        groups[group].append((name, p))
    return groups


def lm_head_tied(model: nn.Module) -> bool:
    """Whether the LM head shares its weight with the input embedding."""
    head = model.backbone.get_output_embeddings()
    return head is not None and head.weight is model.backbone.get_input_embeddings().weight


@dataclass
class TrainableSummary:
    """Parameter counts after :func:`set_trainable`: group -> (trainable, total)."""

    counts: dict[str, tuple[int, int]]

    @property
    def trainable(self) -> int:
        return sum(t for t, _ in self.counts.values())

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts.values())

    def table(self) -> str:
        lines = [f"{'group':<18}{'trainable':>14}{'total':>14}"]
        for g, (t, n) in self.counts.items():
            lines.append(f"{g:<18}{t:>14,}{n:>14,}")
        lines.append(f"{'all':<18}{self.trainable:>14,}{self.total:>14,}")
        return "\n".join(lines)


def set_trainable(model: nn.Module, groups: Iterable[str], verbose: bool = False) -> TrainableSummary:
    """Make exactly the parameters of ``groups`` trainable and freeze the rest.

    Args:
        groups: names from :data:`GROUPS`; ``"all"`` selects every group.
        verbose: print the trainable/frozen table.

    Raises:
        ValueError: an unknown group name, or only one of ``embeddings`` / ``lm_head`` when they are tied
            (one tensor cannot be both frozen and trained).
    """
    wanted = set(groups)
    if "all" in wanted:
        wanted = set(GROUPS)
    unknown = wanted - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown parameter groups {sorted(unknown)}; known: {', '.join(GROUPS)}")
    if lm_head_tied(model) and len(wanted & {"embeddings", "lm_head"}) == 1:
        raise ValueError("the LM head is tied to the input embeddings: make 'embeddings' and 'lm_head' both "
                         "trainable or both frozen")
    counts = {}
    for group, params in parameter_groups(model).items():
        on = group in wanted
        for _, p in params:
            p.requires_grad_(on)
        n = sum(p.numel() for _, p in params)
        counts[group] = (n if on else 0, n)
    summary = TrainableSummary(counts)
    if verbose:
        print(summary.table())
    return summary

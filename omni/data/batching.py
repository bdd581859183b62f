"""Batching for staged training: duration buckets, sequence packing, and the collator.

* :func:`duration_buckets`: 5 s bins over 0-30 s (longer clips join the last bin); padded batches
  drawn from one bin waste little on padding.
* :func:`pack_lengths`: best-fit-decreasing packing of examples into rows of ``capacity`` tokens.
* :func:`collate_rows`: loaded rows -> :class:`StageBatch`, either padded (one example per row, an
  attention mask) or packed (several examples per row, positions restarting at 0 for each example,
  no attention mask: ``transformers`` derives a block-diagonal causal mask from the position resets,
  so no example attends to another; the row's tail padding is one more such block, with no targets).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from omni.model.batch import IGNORE, OmniBatch, OmniExample, collate, pack


def duration_buckets(seconds: np.ndarray, bucket_seconds: float = 5.0, max_seconds: float = 30.0) -> np.ndarray:
    """Bucket of each example: ``floor(seconds / bucket_seconds)``, at most the last bin below ``max_seconds``.

    Args:
        seconds: (n,) seconds of audio per example (0 for text-only examples: bucket 0).

    Returns:
        (n,) int64 bucket ids in ``[0, ceil(max_seconds / bucket_seconds))``.
    """
    n_bins = max(1, int(np.ceil(max_seconds / bucket_seconds)))
    return np.minimum((np.asarray(seconds) // bucket_seconds).astype(np.int64), n_bins - 1)


def bucketed_order(order: Sequence[int], buckets: np.ndarray, chunk: int, rng: np.random.Generator) -> list[int]:
    """Reorder ``order`` so that every run of ``chunk`` consecutive examples shares a bucket.

    Each bucket's examples (in ``order``'s order) are cut into chunks; whole chunks are shuffled; the
    leftover partial chunks of all buckets follow, mixed. Every example appears exactly once.
    """
    by_bucket: dict[int, list[int]] = {}
    for i in order:
        by_bucket.setdefault(int(buckets[i]), []).append(i)
    chunks, rest = [], []
    for b in sorted(by_bucket):
        items = by_bucket[b]
        full = len(items) // chunk * chunk
        chunks += [items[k:k + chunk] for k in range(0, full, chunk)]
        rest += items[full:]
    perm = rng.permutation(len(chunks))
    return [i for c in perm for i in chunks[c]] + rest


def pack_lengths(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit-decreasing bin packing: example indices grouped into rows of at most ``capacity`` tokens.

    Examples are placed longest first, each into the fullest row that still has room (a new row when
    none has), which leaves little padding for mixed lengths.

    Raises:
        ValueError: an example longer than ``capacity``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and int(lengths.max()) > capacity:
        raise ValueError(f"an example of {int(lengths.max())} tokens does not fit rows of {capacity}")
    order = np.argsort(-lengths, kind="stable")
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (room left, row id)
    for i in order.tolist():
        n = int(lengths[i])
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, r = free.pop(k)
            rows[r].append(i)
            bisect.insort(free, (room - n, r))
        else:
            rows.append([i])
            bisect.insort(free, (capacity - n, len(rows) - 1))
    return rows


@dataclass
class LoadedRow:
    """One batch row as loaded by the data set: its examples (one, or several to pack).

    Attributes:
        step: the optimizer step (0-based) the row belongs to.
        examples: the examples that loaded; tasks: their task ids; ids: their example ids.
        failed: messages of the examples of this row that could not be loaded (skipped).
    """

    step: int
    examples: list[OmniExample]
    tasks: list[int]
    ids: list[str]
    failed: list[str] = field(default_factory=list)


@dataclass
class StageBatch:
    """A micro-batch of a training stage: the model's batch plus what the loss needs to split by task.

    Attributes:
        model: the :class:`~omni.model.batch.OmniBatch` (padded or packed).
        example_index: (B, T) long, the example each position belongs to (0..E-1), -1 on padding.
        example_task: (E,) long, task id of each example.
        frame_example: (N,) long, example of each audio frame (``model.audio_codes`` order).
        step: optimizer step (0-based); ids: example ids (E); failed: messages of skipped examples.
    """

    model: OmniBatch
    example_index: torch.Tensor
    example_task: torch.Tensor
    frame_example: torch.Tensor
    step: int
    ids: list[str]
    failed: list[str]

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens."""
        return int((self.example_index >= 0).sum())

    @property
    def num_positions(self) -> int:
        """Positions in the padded block (B x T)."""
        return int(self.example_index.numel())


def _pad_example(n: int, pad_id: int, k: int) -> OmniExample:
    return OmniExample(torch.full((n,), pad_id, dtype=torch.long), torch.full((n,), IGNORE, dtype=torch.long),
                       torch.zeros(0, k, dtype=torch.long), torch.zeros(0, dtype=torch.bool))


def collate_rows(rows: Sequence[LoadedRow], pad_id: int, packed: bool, num_codebooks: int,
                 pad_to_multiple_of: int = 8) -> StageBatch:
    """Rows -> :class:`StageBatch`.

    Padded (``packed=False``, one example per row; pad id 0, ``T`` a target)::

        input_ids        [[5, 6, 7, T, T], [8, 9, T, 0, 0]]
        attention_mask   [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
        position_ids     [[0, 1, 2, 3, 4], [0, 1, 2, 0, 0]]
        example_index    [[0, 0, 0, 0, 0], [1, 1, 1, -1, -1]]

    Packed (``packed=True``, examples a = [5 6 T], b = [8 T] in row 0, c = [9 9 9 T] in row 1)::

        input_ids        [[5, 6, T, 8, T, 0], [9, 9, 9, T, 0, 0]]
        attention_mask   None                              # block-diagonal from the position resets
        position_ids     [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]]
        labels           [[-100, 6, T, -100, T, -100], [-100, 9, 9, T, -100, -100]]
        example_index    [[0, 0, 0, 1, 1, -1], [2, 2, 2, 2, -1, -1]]

    Audio codes (N, K) and vision patches follow their placeholders in row-major order, as in
    :func:`omni.model.batch.collate`. A micro-batch whose examples all failed to load becomes one
    all-padding row with no targets (its loss weight is 0).
    """
    examples = [e for r in rows for e in r.examples]
    tasks = [t for r in rows for t in r.tasks]
    ids = [i for r in rows for i in r.ids]
    failed = [f for r in rows for f in r.failed]
    step = rows[0].step if rows else 0
    if not examples:
        examples, tasks, ids = [_pad_example(2, pad_id, num_codebooks)], [0], ["<empty>"]
        row_groups = [[0]]
    elif packed:
        row_groups, k = [], 0
        for r in rows:
            if r.examples:
                row_groups.append(list(range(k, k + len(r.examples))))
                k += len(r.examples)
    else:
        row_groups = [[i] for i in range(len(examples))]
    lengths = [sum(len(examples[i]) for i in g) for g in row_groups]
    width = -(-max(lengths) // pad_to_multiple_of) * pad_to_multiple_of
    index = torch.full((len(row_groups), width), -1, dtype=torch.long)  # (B, T)
    for b, g in enumerate(row_groups):
        offset = 0
        for i in g:
            index[b, offset:offset + len(examples[i])] = i
            offset += len(examples[i])
    if packed and rows and any(r.examples for r in rows):
        parts = []
        for g, n in zip(row_groups, lengths):
            members = [examples[i] for i in g] + ([_pad_example(width - n, pad_id, num_codebooks)] if width > n else [])
            parts.append(pack(members))
        batch = _stack(parts)
    else:
        batch = collate(examples, pad_id, pad_to_multiple_of=pad_to_multiple_of)
    frames = torch.tensor([e.audio_codes.shape[0] for e in examples])
    frame_example = torch.repeat_interleave(torch.arange(len(examples)), frames)  # (N,)
    return StageBatch(batch, index, torch.tensor(tasks, dtype=torch.long), frame_example, step, ids, failed)


def _stack(parts: list[OmniBatch]) -> OmniBatch:
    """Concatenate one-row packed batches into one batch (rows in order, media in row-major order)."""

    def cat(name: str) -> torch.Tensor | None:
        values = [getattr(p, name) for p in parts if getattr(p, name) is not None]
        return torch.cat(values) if values else None

    k = max(p.audio_codes.shape[-1] for p in parts)
    codes = torch.cat([p.audio_codes.reshape(-1, k) if k else p.audio_codes.reshape(0, 0) for p in parts])  # (N, K)
    return OmniBatch(
        input_ids=cat("input_ids"), attention_mask=None, position_ids=cat("position_ids"), labels=cat("labels"),
        audio_codes=codes, audio_target=cat("audio_target"), pixel_values=cat("pixel_values"),
        image_grid_thw=cat("image_grid_thw"), pixel_values_videos=cat("pixel_values_videos"),
        video_grid_thw=cat("video_grid_thw"),
    )

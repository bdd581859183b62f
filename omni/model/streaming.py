"""Streaming generation: text pieces and audio frames as they are made.

:func:`stream` runs the same loop as :func:`~omni.model.generation.generate`
(:func:`~omni.model.generation.decode_steps`) and turns each step into events::

    for event in stream(model, prompt):
        if isinstance(event, TextPiece):    print(event.text, end="")
        elif isinstance(event, AudioFrame): decoder.push(event.codes)      # (K,) codes of one 80 ms frame
        elif isinstance(event, AudioSegmentEnd): decoder.flush()
        elif isinstance(event, Finished):   ...

Text is detokenised incrementally by ``transformers``' ``TextStreamer`` logic
(whole words, no broken UTF-8), flushed before each audio segment and at the end,
so the pieces of a row concatenate to ``GenerationOutput.text``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers import TextStreamer

from omni.model.batch import OmniBatch, OmniExample
from omni.model.generation import (
    GenerationConfig,
    LogitsProcessor,
    _config,
    decode_steps,
    prompt_batch,
)

if TYPE_CHECKING:
    from omni.model.model import OmniModel


@dataclass
class TextPiece:
    """Newly decoded text of row ``row``."""

    row: int
    text: str


@dataclass
class AudioFrame:
    """One generated frame: ``codes`` (K,) long, the ``segment``-th audio segment of row ``row``."""

    row: int
    codes: torch.Tensor
    segment: int


@dataclass
class AudioSegmentEnd:
    """Row ``row`` closed its ``segment``-th audio segment (``<|audio_end|>``)."""

    row: int
    segment: int


@dataclass
class Finished:
    """Row ``row`` is done: ``reason`` is "stop" (stop token) or "length" (max_new_tokens)."""

    row: int
    reason: str


StreamEvent = TextPiece | AudioFrame | AudioSegmentEnd | Finished


class _Pieces(TextStreamer):
    """transformers' TextStreamer, collecting finalised text instead of printing it."""

    def __init__(self, tokenizer: Any):
        super().__init__(tokenizer, skip_prompt=False, skip_special_tokens=True)
        self.pieces: list[str] = []

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.pieces.append(text)

    def take(self) -> list[str]:
        out, self.pieces = self.pieces, []
        return out


@torch.no_grad()
def stream(model: OmniModel, prompts: OmniBatch | OmniExample | Sequence[OmniExample],
           config: GenerationConfig | None = None, logits_processor: LogitsProcessor | None = None,
           **overrides: Any) -> Iterator[StreamEvent]:
    """Generate like :func:`~omni.model.generation.generate`, yielding events as they are produced.

    Args:
        model: the omni model (eval mode).
        prompts: one example, a list of examples, or a left-padded batch (events carry the row).
        config: as for ``generate``; keyword overrides replace its fields.
        logits_processor: optional steering hook (see :func:`~omni.model.generation.decode_steps`).
    """
    config = _config(config, overrides)
    batch = prompt_batch(model, prompts)
    t = model.token_ids
    stops = set() if config.ignore_eos else set(t.eos) | set(config.stop_token_ids)
    rows = batch.input_ids.shape[0]
    text = [_Pieces(model.tokenizer) for _ in range(rows)]
    segment = [-1] * rows
    open_segment = [False] * rows
    done = [False] * rows

    def flush(row: int) -> Iterator[TextPiece]:
        text[row].end()
        for piece in text[row].take():
            yield TextPiece(row, piece)

    for step in decode_steps(model, batch, config, logits_processor):
        tokens, frames, active = step.tokens.tolist(), step.is_frame.tolist(), step.active.tolist()
        codes = step.codes.cpu() if any(frames) else None
        for row in range(rows):
            if not active[row]:
                continue
            tok = tokens[row]
            if frames[row]:
                if not open_segment[row]:  # the prompt opened the segment
                    segment[row] += 1
                    open_segment[row] = True
                yield AudioFrame(row, codes[row], segment[row])
            elif tok in t.audio_starts:
                yield from flush(row)
                segment[row] += 1
                open_segment[row] = True
            elif tok == t.audio_end:
                if open_segment[row]:
                    yield AudioSegmentEnd(row, segment[row])
                open_segment[row] = False
            elif tok in stops:
                yield from flush(row)
                done[row] = True
                yield Finished(row, "stop")
            else:
                text[row].put(torch.tensor([tok]))
                for piece in text[row].take():
                    yield TextPiece(row, piece)
    for row in range(rows):
        if not done[row]:
            yield from flush(row)
            if open_segment[row]:
                yield AudioSegmentEnd(row, segment[row])
            yield Finished(row, "length")

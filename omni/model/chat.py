"""Chat template: conversations with text, speech, image and video segments to an :class:`OmniExample`.

The format is ChatML (Qwen's), with the omni special tokens for media::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n
    <|im_start|>user\\n<|image_start|><|image|>x216<|image_end|>What is this?<|im_end|>\\n
    <|im_start|>user\\n<|audio_start|><|audio|>x30<|audio_end|><|im_end|>\\n
    <|im_start|>assistant\\nIt is a cat.<|audio_gen_start|><|audio|>x25<|audio_end|><|im_end|>\\n

* user speech: ``<|audio_start|>`` + one ``<|audio|>`` per frame + ``<|audio_end|>``;
* assistant speech: the modality switch ``<|audio_gen_start|>`` + frames + ``<|audio_end|>``;
* an image: ``<|image_start|>`` + t*h*w/4 ``<|image|>`` + ``<|image_end|>`` (videos alike).

Targets: every token of an assistant turn after ``<|im_start|>assistant\\n``,
up to and including ``<|im_end|>`` (text, the switch, one ``<|audio|>`` per
frame = "continue", ``<|audio_end|>`` = "stop"), and the codes of its audio
frames. ``Message(train=False)`` keeps an assistant turn as context only.
Text segments are tokenized one by one (no BPE merge across a segment
boundary).

Qwen3 backbones (``think_block=True``): ``/think`` and ``/no_think`` in a
system or user message switch reasoning on or off for the following turns;
in no-think mode every assistant answer starts with an empty think block
``<think>\\n\\n</think>\\n\\n`` (a target in training, pre-filled in the
generation prompt), as in Qwen3's own template.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import PreTrainedTokenizerBase

from omni.model.batch import IGNORE, OmniExample
from omni.model.special_tokens import TokenIds
from omni.model.vision_inputs import VisionInputs

EMPTY_THINK = "<think>\n\n</think>\n\n"


@dataclass
class Text:
    """A piece of text."""

    text: str


@dataclass
class Audio:
    """Speech as audio-token frames: (N, K) long codes at 12.5 Hz."""

    codes: torch.Tensor


@dataclass
class Image:
    """One image, processed (``VisionProcessor.images([img])``)."""

    inputs: VisionInputs


@dataclass
class Video:
    """One video, processed (``VisionProcessor.video(frames, fps)``)."""

    inputs: VisionInputs


Segment = Text | Audio | Image | Video


@dataclass
class Message:
    """One turn.

    Attributes:
        role: system, user or assistant.
        content: segments in order (a plain string is one text segment).
        train: whether the turn is a target; default: assistant turns are, others are not.
    """

    role: Literal["system", "user", "assistant"]
    content: list[Segment] | str = field(default_factory=list)
    train: bool | None = None

    def segments(self) -> list[Segment]:
        return [Text(self.content)] if isinstance(self.content, str) else list(self.content)


_TEXT_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TEXT_IDS_MAX = 200_000


def text_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """``tokenizer(text, add_special_tokens=False)["input_ids"]``, remembered per tokenizer (and its vocabulary
    size, so a token added later is seen): a stage's data index encodes every example, whose prompts and
    sentences repeat, and the tokenizer call costs far more than its Rust encoding (reports/learning.md, P).
    Returns a new list each call."""
    memo = _TEXT_IDS.setdefault(tokenizer, {})
    key = (len(tokenizer), text)
    ids = memo.get(key)
    if ids is None:
        if len(memo) >= _TEXT_IDS_MAX:
            memo.clear()
        ids = memo[key] = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(ids)


class SequenceBuilder:
    """Appends tokens, frames and images to one example, with their targets.

    The chat template uses it; data sets for non-chat tasks (interleaved documents, ASR/TTS
    pretraining) can use it directly.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, ids: TokenIds, merge_size: int = 2):
        self.tok = tokenizer
        self.ids = ids
        self.merge_size = merge_size
        self.input_ids: list[int] = []
        self.labels: list[int] = []
        self.codes: list[torch.Tensor] = []
        self.targets: list[bool] = []
        self.images: list[VisionInputs] = []
        self.videos: list[VisionInputs] = []

    def tokens(self, token_ids: Sequence[int], target: bool) -> SequenceBuilder:
        self.input_ids.extend(token_ids)
        self.labels.extend(token_ids if target else [IGNORE] * len(token_ids))
        return self

    def text(self, text: str, target: bool) -> SequenceBuilder:
        return self.tokens(text_ids(self.tok, text), target) if text else self

    def audio(self, codes: torch.Tensor, target: bool, generated: bool | None = None) -> SequenceBuilder:
        """A speech segment: start token (the modality switch when ``generated``, default = ``target``),
        one ``<|audio|>`` per frame of ``codes`` (N, K), ``<|audio_end|>``."""
        if codes.dim() != 2 or codes.shape[0] == 0:
            raise ValueError(f"audio codes must be (frames, codebooks) with at least one frame, got {tuple(codes.shape)}")
        generated = target if generated is None else generated
        start = self.ids.audio_gen_start if generated else self.ids.audio_start
        n = codes.shape[0]
        self.tokens([start] + [self.ids.audio] * n + [self.ids.audio_end], target)
        self.codes.append(codes.long())
        self.targets.extend([target] * n)
        return self

    def image(self, inputs: VisionInputs) -> SequenceBuilder:
        return self._vision(inputs, self.ids.image_start, self.ids.image, self.ids.image_end, self.images)

    def video(self, inputs: VisionInputs) -> SequenceBuilder:
        return self._vision(inputs, self.ids.video_start, self.ids.video, self.ids.video_end, self.videos)

    def _vision(self, inputs: VisionInputs, start: int, pad: int, end: int, store: list) -> SequenceBuilder:
        (n,) = inputs.num_tokens(self.merge_size)
        self.tokens([start] + [pad] * n + [end], target=False)
        store.append(inputs)
        return self

    def build(self) -> OmniExample:
        k = self.codes[0].shape[1] if self.codes else 0
        return OmniExample(
            input_ids=torch.tensor(self.input_ids, dtype=torch.long),
            labels=torch.tensor(self.labels, dtype=torch.long),
            audio_codes=torch.cat(self.codes) if self.codes else torch.zeros(0, k, dtype=torch.long),
            audio_target=torch.tensor(self.targets, dtype=torch.bool),
            images=VisionInputs.concat(self.images),
            videos=VisionInputs.concat(self.videos),
        )


def _think_flag(message: Message) -> bool | None:
    """True for /think, False for /no_think (the last one in the text wins), None if neither."""
    best, pos = None, -1
    for seg in message.segments():
        if isinstance(seg, Text):
            for flag, value in (("/no_think", False), ("/think", True)):
                i = seg.text.rfind(flag)
                if i > pos:
                    best, pos = value, i
    return best


def encode_conversation(
    messages: Sequence[Message],
    tokenizer: PreTrainedTokenizerBase,
    ids: TokenIds,
    *,
    add_generation_prompt: bool = False,
    think_block: bool = False,
    enable_thinking: bool | None = None,
    merge_size: int = 2,
) -> OmniExample:
    """Render a conversation into token ids, labels, audio frames and images.

    Args:
        messages: the turns.
        add_generation_prompt: end with ``<|im_start|>assistant\\n`` (and the empty think block in
            no-think mode) for generation.
        think_block: apply Qwen3's think-block convention (see module docstring).
        enable_thinking: the initial think mode (Qwen3's default is on); /think and /no_think override it.
        merge_size: vision merge size (placeholders per image = t*h*w / merge_size**2).
    """
    b = SequenceBuilder(tokenizer, ids, merge_size)
    nl = tokenizer("\n", add_special_tokens=False)["input_ids"]
    thinking = True if enable_thinking is None else enable_thinking
    for m in messages:
        if m.role not in ("system", "user", "assistant"):
            raise ValueError(f"message role must be system, user or assistant, got {m.role!r}")
        target = (m.role == "assistant") if m.train is None else m.train
        b.tokens([ids.im_start], False).text(f"{m.role}\n", False)
        if m.role != "assistant":
            flag = _think_flag(m)
            thinking = thinking if flag is None else flag
        elif think_block and not thinking:
            b.text(EMPTY_THINK, target)
        for seg in m.segments():
            if isinstance(seg, Text):
                b.text(seg.text, target)
            elif isinstance(seg, Audio):
                b.audio(seg.codes, target, generated=m.role == "assistant")
            elif isinstance(seg, Image):
                b.image(seg.inputs)
            elif isinstance(seg, Video):
                b.video(seg.inputs)
            else:
                raise TypeError(f"unknown segment type {type(seg).__name__}")
        b.tokens([ids.im_end], target).tokens(nl, False)
    if add_generation_prompt:
        b.tokens([ids.im_start], False).text("assistant\n", False)
        if think_block and not thinking:
            b.text(EMPTY_THINK, False)
    return b.build()

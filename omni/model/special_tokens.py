"""Special tokens of the omni model, added to the backbone's tokenizer (and its embedding resized).

==========================  ===========================================================
token                       meaning
==========================  ===========================================================
``<|audio_start|>``         an input audio segment (the user's speech) begins
``<|audio_gen_start|>``     modality switch: the model stops writing text and speaks
``<|audio|>``               one audio frame (8 codes); its embedding is the audio embedding
``<|audio_end|>``           the audio segment ends (the model predicts it to stop speaking)
``<|image_start|>``         image placeholders follow
``<|image|>``               one merged 2x2 patch of an image; replaced by vision features
``<|image_end|>``           end of the image
``<|video_start|>``         video placeholders follow
``<|video|>``               one merged 2x2x2 patch of a video; replaced by vision features
``<|video_end|>``           end of the video
``<|im_start|>``            ChatML turn start (already in Qwen and omni BPE tokenizers)
``<|im_end|>``              ChatML turn end; stops generation
==========================  ===========================================================

How an audio segment stops: at every position inside a segment the *text*
head predicts the next token, which is either ``<|audio|>`` (one more frame:
the audio head then produces its 8 codes from the same hidden state) or
``<|audio_end|>`` (the segment is over). So the text cross-entropy also
trains the stop decision, and generation needs no extra end code.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class SpecialTokens:
    """The token strings (defaults above)."""

    audio_start: str = "<|audio_start|>"
    audio_gen_start: str = "<|audio_gen_start|>"
    audio: str = "<|audio|>"
    audio_end: str = "<|audio_end|>"
    image_start: str = "<|image_start|>"
    image: str = "<|image|>"
    image_end: str = "<|image_end|>"
    video_start: str = "<|video_start|>"
    video: str = "<|video|>"
    video_end: str = "<|video_end|>"
    im_start: str = "<|im_start|>"
    im_end: str = "<|im_end|>"

    def all(self) -> list[str]:
        return [getattr(self, f.name) for f in fields(self)]


@dataclass(frozen=True)
class TokenIds:
    """Ids of the special tokens in one tokenizer, plus padding and the stop tokens."""

    audio_start: int
    audio_gen_start: int
    audio: int
    audio_end: int
    image_start: int
    image: int
    image_end: int
    video_start: int
    video: int
    video_end: int
    im_start: int
    im_end: int
    pad: int
    eos: tuple[int, ...]

    @property
    def audio_starts(self) -> tuple[int, int]:
        """Tokens after which the model is in audio mode (input audio start, modality switch)."""
        return (self.audio_start, self.audio_gen_start)


def add_special_tokens(tokenizer: PreTrainedTokenizerBase, tokens: SpecialTokens = SpecialTokens()) -> TokenIds:
    """Add the omni special tokens that ``tokenizer`` lacks (in place) and return their ids.

    Also sets a pad token (the end-of-text token) when the tokenizer has none. The caller resizes the
    LLM embedding to ``len(tokenizer)`` when that grew past the embedding's size.
    """
    vocab = tokenizer.get_vocab()
    new = [t for t in tokens.all() if t not in vocab]
    if new:
        tokenizer.add_special_tokens({"extra_special_tokens": new}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokens.im_end
    return token_ids(tokenizer, tokens)


def token_ids(tokenizer: PreTrainedTokenizerBase, tokens: SpecialTokens = SpecialTokens()) -> TokenIds:
    """Resolve the ids of ``tokens`` in ``tokenizer``.

    Raises:
        ValueError: a token is missing (call :func:`add_special_tokens` first).
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens.all() if t not in vocab]
    if missing:
        raise ValueError(f"tokenizer lacks the omni special tokens {missing}; call add_special_tokens() first")
    ids = {f.name: vocab[getattr(tokens, f.name)] for f in fields(tokens)}
    eos = [ids["im_end"]]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[-1]
    return TokenIds(**ids, pad=pad, eos=tuple(eos))

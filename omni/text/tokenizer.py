"""Byte-level BPE text tokenizers for tiny recipes, trained with Hugging Face ``tokenizers``.

A pretrained backbone brings its own tokenizer (loaded from its local
directory). Tiny recipes have none and cannot download one, so they train a
byte-level BPE on the corpus text: starting from the 256 byte symbols, BPE
repeatedly merges the most frequent adjacent pair until the vocabulary size
is reached; byte-level fallback means no input is ever unknown. The result is
saved and loaded as a ``transformers.PreTrainedTokenizerFast``.

Usage::

    tok = train_bpe_tokenizer(texts, vocab_size=1024)
    tok.save_pretrained("runs/tokenizer")
    tok = load_tokenizer("runs/tokenizer")
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from omni.data.manifest import ManifestRow, load_manifest

#: End of text (also padding) and Qwen-style chat markers; model-specific tokens are added later.
BASE_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 1024,
    min_frequency: int = 2,
    special_tokens: Iterable[str] = BASE_SPECIAL_TOKENS,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer.

    Args:
        texts: training sentences.
        vocab_size: largest size including the 256 byte symbols and the special tokens (training stops
            earlier when no pair is left to merge, e.g. once every word of a small domain is one token).
        min_frequency: pairs seen fewer times are never merged.
        special_tokens: never split; the first is end-of-text, also used for padding.

    Returns:
        A fast tokenizer with ``eos_token`` = ``pad_token`` = the first special token.
    """
    special = list(dict.fromkeys(special_tokens))
    if not special:
        raise ValueError("special_tokens needs at least an end-of-text token")
    if vocab_size < 256 + len(special):
        raise ValueError(f"vocab_size must be >= {256 + len(special)} (bytes + special tokens), got {vocab_size}")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=special[0], pad_token=special[0], unk_token=None,
        clean_up_tokenization_spaces=False,
    )


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a local directory only; a missing directory is a clear error.

    Raises:
        FileNotFoundError: ``path`` is not a directory holding tokenizer files.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: tokenizer directory not found (tokenizers are never downloaded)")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def row_texts(row: ManifestRow) -> Iterator[str]:
    """Every piece of text in a manifest row (transcripts, turns, segments, answers)."""
    for value in (row.text, row.translation):
        if value:
            yield value
    for name in ("conversation", "segments", "prompt"):
        for item in getattr(row, name) or []:
            if item.text:
                yield item.text
    for name in ("chosen", "rejected", "completion"):
        turn = getattr(row, name)
        if turn is not None and turn.text:
            yield turn.text


def manifest_texts(paths: Iterable[str | os.PathLike]) -> list[str]:
    """All text of the given manifests, in order, duplicates kept (frequencies matter to BPE)."""
    return [text for path in paths for row in load_manifest(path) for text in row_texts(row)]

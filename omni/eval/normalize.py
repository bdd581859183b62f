"""Text normalisation before scoring: Whisper's English normaliser, a basic one for other languages.

* English (``en``): :class:`whisper_normalizer.english.EnglishTextNormalizer`, the normaliser of the
  Whisper paper: lower case, punctuation removed, spelled-out numbers to digits ("ten" -> "10"),
  British to American spelling, contractions expanded ("it's" -> "it is"), titles ("Mr." -> "mister"),
  filler words ("uh", "um") dropped.
* Any other language: :func:`basic_normalize`: Unicode NFKC, casefold, every punctuation (P*) and
  symbol (S*) character replaced by a space, whitespace collapsed. Letters, digits and combining marks
  are kept, so scripts with vowel signs (Devanagari, Thai) keep them.
* Languages written without spaces (Chinese, Japanese, Korean by convention, Thai, Cantonese) are
  scored by characters (CER): :func:`scoring_units` tells which; :mod:`omni.eval.metrics` removes the
  spaces before splitting into characters.

``normalizer="none"`` scores raw text (only whitespace collapsed), e.g. to show what normalisation hides.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from typing import Literal

#: Languages scored by characters (CER) instead of words.
CHARACTER_LANGUAGES = frozenset({"zh", "ja", "ko", "th", "yue", "lo", "my", "km"})

NORMALIZERS = ("auto", "whisper", "basic", "none")

_SPACES = re.compile(r"\s+")


def basic_normalize(text: str) -> str:
    """Casefold, punctuation and symbols to spaces (by Unicode category), collapse spaces.

    >>> basic_normalize("  ¿Qué TAL?  «Bien», gracias. ")
    'qué tal bien gracias'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    return _SPACES.sub(" ", text).strip()


def raw_normalize(text: str) -> str:
    """Only collapse whitespace (scoring without normalisation)."""
    return _SPACES.sub(" ", text).strip()


@functools.lru_cache(maxsize=1)
def _english() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def _is_punctuation(token: str) -> bool:
    return all(unicodedata.category(c)[0] in "PS" for c in token)


def english_normalize(text: str) -> str:
    """Whisper's English normaliser, whitespace collapsed, stray punctuation tokens dropped.

    Whisper's normaliser keeps "." and "%" next to digits (decimals, percentages) and so leaves a lone
    "." from an ellipsis as a word of its own; such punctuation-only tokens are removed.

    >>> english_normalize("Set a timer for ten minutes, Mr. Smith...")
    'set a timer for 10 minutes mister smith'
    """
    return " ".join(t for t in _english()(text).split() if not _is_punctuation(t))


def base_language(language: str | None) -> str | None:
    """``en-US`` / ``en_US`` / ``EN`` -> ``en``; None stays None."""
    if not language:
        return None
    return re.split(r"[-_]", language.strip())[0].lower() or None


def normalizer_for(language: str | None, kind: str = "auto") -> Callable[[str], str]:
    """The normalising function for ``language`` under the setting ``kind`` (one of :data:`NORMALIZERS`).

    ``auto``: Whisper's English normaliser for English (and for rows without a language), basic otherwise.
    """
    if kind not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {', '.join(NORMALIZERS)}, got '{kind}'")
    if kind == "none":
        return raw_normalize
    if kind == "basic":
        return basic_normalize
    if kind == "whisper":
        return english_normalize
    return english_normalize if base_language(language) in (None, "en") else basic_normalize


def normalize(text: str, language: str | None = None, kind: str = "auto") -> str:
    """Normalise ``text`` for scoring (see module docstring)."""
    return normalizer_for(language, kind)(text)


def scoring_units(language: str | None) -> Literal["word", "char"]:
    """``char`` for languages written without spaces between words (CER is their headline metric)."""
    return "char" if base_language(language) in CHARACTER_LANGUAGES else "word"

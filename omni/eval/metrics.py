"""Word and character error counts (jiwer), summed over utterances and groups.

Error rates are always computed from summed counts, never by averaging per-utterance rates::

    WER = (S + D + I) / N,    N = S + D + H  (reference words)

with S substitutions, D deletions, I insertions and H hits from jiwer's minimum-edit alignment
(``jiwer.process_words``; ``jiwer.process_characters`` for CER). Summing the counts of every
utterance gives exactly jiwer's corpus-level figures for the same pairs. For languages written without
spaces (:func:`omni.eval.normalize.scoring_units` = ``char``) the spaces are removed before the
character split, so CER counts characters of the text only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import jiwer

from omni.eval.normalize import normalizer_for, scoring_units


@dataclass
class ErrorCounts:
    """Alignment counts of one or many (reference, hypothesis) pairs.

    Attributes:
        hits, substitutions, deletions, insertions: jiwer's counts.
    """

    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def reference_length(self) -> int:
        """N = H + S + D: units in the references."""
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        """S + D + I."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float | None:
        """(S + D + I) / N; None when the references are empty (no rate exists)."""
        n = self.reference_length
        return self.errors / n if n else None

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(self.hits + other.hits, self.substitutions + other.substitutions,
                           self.deletions + other.deletions, self.insertions + other.insertions)

    def to_dict(self) -> dict:
        """Stable JSON form: the four counts, N and the rate."""
        return {"hits": self.hits, "substitutions": self.substitutions, "deletions": self.deletions,
                "insertions": self.insertions, "reference_length": self.reference_length, "rate": self.rate}

    @classmethod
    def from_dict(cls, d: dict) -> ErrorCounts:
        return cls(int(d["hits"]), int(d["substitutions"]), int(d["deletions"]), int(d["insertions"]))

    @classmethod
    def total(cls, counts: Iterable[ErrorCounts]) -> ErrorCounts:
        out = cls()
        for c in counts:
            out = out + c
        return out


def word_counts(reference: str, hypothesis: str) -> ErrorCounts:
    """Word-level counts of one pair of (already normalised) texts."""
    o = jiwer.process_words(reference, hypothesis)
    return ErrorCounts(o.hits, o.substitutions, o.deletions, o.insertions)


def char_counts(reference: str, hypothesis: str, drop_spaces: bool = False) -> ErrorCounts:
    """Character-level counts; ``drop_spaces`` for languages written without spaces."""
    if drop_spaces:
        reference, hypothesis = "".join(reference.split()), "".join(hypothesis.split())
    o = jiwer.process_characters(reference, hypothesis)
    return ErrorCounts(o.hits, o.substitutions, o.deletions, o.insertions)


@dataclass
class PairScore:
    """One scored utterance.

    Attributes:
        reference, hypothesis: the normalised texts that were compared.
        words: word-level counts (WER).
        chars: character-level counts (CER).
        unit: the headline unit of the language ("word" or "char").
    """

    reference: str
    hypothesis: str
    words: ErrorCounts
    chars: ErrorCounts
    unit: str

    @property
    def counts(self) -> ErrorCounts:
        """The counts of the headline unit."""
        return self.chars if self.unit == "char" else self.words


def score_pair(reference: str, hypothesis: str, language: str | None = None, normalizer: str = "auto") -> PairScore:
    """Normalise both texts for ``language`` and count word and character errors."""
    norm = normalizer_for(language, normalizer)
    ref, hyp = norm(reference), norm(hypothesis)
    unit = scoring_units(language)
    return PairScore(ref, hyp, word_counts(ref, hyp), char_counts(ref, hyp, drop_spaces=unit == "char"), unit)

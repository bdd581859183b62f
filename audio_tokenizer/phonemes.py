"""Phonetic supervision of the codes: espeak-ng phonemes of each transcript, spelled by CTC from the codes.

At 12.5 Hz a transcript's BPE tokens barely fit the frames (:mod:`audio_tokenizer.ctc`), and a token is a
whole word: the codes of an unseen sentence must then spell words the head memorised. Phonemes are the
units speech is made of and are shared by every word; at about 12 per second they need a finer clock than
the codes. So the phoneme head upsamples the quantized frames 4x (to the encoder's 50 Hz) with a transposed
convolution, then spells the transcript's phonemes with CTC::

    quantized (B, T, dim_q) --ConvTranspose1d(stride 4)--> (B, 4T, H) --gelu, conv3, gelu--> --linear--> (B, 4T, P + 1)

The phonemes come from espeak-ng in-process (:func:`omni.data.synth.engines.phonemize`, the corpus' own
engine), for every transcript, once when the data set is built: "What is it?" -> ``w V t I z I t``
(stress marks and pauses dropped). The inventory is the set of phonemes of the training transcripts (about
50 for English), sorted; the blank is class P. The head is an auxiliary of training (like the BPE CTC head
it sits beside); its loss is ``phoneme_ctc_weight`` per target phoneme, per utterance.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_STRESS = "',"
_PAUSES = {"_", "_:", "_!", ";", ""}


def phoneme_units(phonemes: str) -> list[str]:
    """espeak-ng's ``|``-separated phoneme names of a text -> its phonemes, stress marks and pauses dropped.

    Example: ``"w|,V|t I|z I|t"`` -> ``["w", "V", "t", "I", "z", "I", "t"]``.
    """
    units = []
    for word in phonemes.split():
        for unit in word.split("|"):
            unit = unit.strip(_STRESS)
            if unit not in _PAUSES:
                units.append(unit)
    return units


class PhonemeVocab:
    """The phoneme inventory of a set of transcripts; ids in sorted order.

    Args:
        symbols: the phonemes (any order; duplicates removed).
    """

    def __init__(self, symbols: Sequence[str]):
        self.symbols = sorted(set(symbols))
        self.index = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    @classmethod
    def from_texts(cls, texts: Sequence[str], accent: str = "en-us") -> tuple[PhonemeVocab, list[list[str]]]:
        """The inventory of ``texts`` and each text's phonemes (espeak-ng, one call for all)."""
        from omni.data.synth.engines import phonemize

        units = [phoneme_units(p) for p in phonemize(list(texts), accent)]
        return cls([u for seq in units for u in seq]), units

    def encode(self, units: Sequence[str]) -> list[int]:
        """Phonemes -> ids; a phoneme outside the inventory is skipped (an unseen symbol of a dev text)."""
        return [self.index[u] for u in units if u in self.index]


class PhonemeCTCHead(nn.Module):
    """quantized (B, T, D) -> phoneme log-probabilities (B, T * upsample, P + 1); class P is the blank."""

    def __init__(self, dim: int, num_phonemes: int, hidden: int = 256, upsample: int = 4):
        super().__init__()
        self.upsample_factor = upsample
        self.up = nn.ConvTranspose1d(dim, hidden, kernel_size=upsample, stride=upsample)
        self.conv = nn.Conv1d(hidden, hidden, kernel_size=3, padding=1)
        self.out = nn.Linear(hidden, num_phonemes + 1)
        self.blank = num_phonemes

    def forward(self, quantized: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """lengths (B,): valid frames; padding frames (and their upsampled frames) are zeroed so they never leak
        into valid ones."""
        h = F.gelu(self.up(quantized.transpose(1, 2)))  # (B, H, T * up); each output frame reads one input frame
        if lengths is not None:
            valid = torch.arange(h.shape[-1], device=h.device)[None, :] < self.output_lengths(lengths)[:, None]
            h = h * valid[:, None, :]  # (B, H, T * up)
        h = F.gelu(self.conv(h)).transpose(1, 2)  # (B, T * up, H)
        return self.out(h).log_softmax(-1)  # (B, T * up, P + 1)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output frames for ``lengths`` valid input frames."""
        return lengths * self.upsample_factor

"""Configuration of the synthetic speech corpus (``kind: corpus``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.config import check, option


@dataclass
class CorpusConfig:
    """What ``omni data synth`` renders: sizes, voices, splits, audio formats."""

    seed: int = option(0, help="Seed for every random choice; the same seed gives the same corpus, file for file.")
    utterances: int = option(
        4000,
        help="Number of spoken prompts to render (user-side speech). Replies and preference answers come on top "
        "(about one reply per distinct prompt).",
    )
    split_fractions: tuple[float, float, float] = option(
        (0.8, 0.1, 0.1), help="Train/dev/test shares of the distinct prompt sentences (split by sentence)."
    )
    eval_renders: int = option(
        2, help="Seen voices rendering each dev/test sentence (train sentences are rendered once)."
    )
    voices: list[str] = option(
        default_factory=list,
        help="Voice ids for prompts, e.g. 'espeak:en-us+m3', 'flite:slt'; empty = every catalog voice available on "
        "this machine except the held-out ones. Flite voices are dropped (with a note) when flite is missing.",
    )
    held_out_voices: list[str] = option(
        default_factory=lambda: ["espeak:en-us+f4", "espeak:en-gb-scotland+f1", "espeak:en-029+m2", "flite:awb"],
        help="Voices never used in train/dev; they render test sentences only (asr_test_unseen.jsonl).",
    )
    tts_voices: list[str] = option(
        default_factory=lambda: ["flite:rms"],
        help="Voices that speak the assistant's replies (TTS targets, spoken answers, preference answers).",
    )
    fallback_tts_voice: str = option(
        "espeak:en-us+m1", help="Reply voice used when none of tts_voices is available (e.g. flite not installed)."
    )
    rate_range: tuple[float, float] = option(
        (0.9, 1.15), help="Speaking-rate factor drawn uniformly per prompt utterance (1.0 = engine default)."
    )
    pitch_range: tuple[float, float] = option(
        (0.9, 1.1), help="Pitch factor drawn uniformly per prompt utterance (1.0 = voice default)."
    )
    sample_rates: list[int] = option(
        default_factory=lambda: [16000, 24000],
        help="Rates the audio is written at: 16 kHz feeds the audio tokenizer and ASR, 24 kHz the speech decoder.",
    )
    input_rate: int = option(16000, help="Rate of the files user-side (prompt) audio rows point to.")
    output_rate: int = option(24000, help="Rate of the files TTS / reply audio rows point to.")
    audio_format: Literal["flac", "wav"] = option("flac", help="Container for the audio files (16-bit PCM).")
    preference_fraction: float = option(
        0.25, help="Share of distinct prompts that also get a preference pair (chosen = right, rejected = wrong reply)."
    )
    noisy_sft_fraction: float = option(
        0.0, help="Share of the facts asked in train whose train text conversations also appear with the wrong reply "
                  "(a noisy SFT corpus: the SFT model then samples rejected-style answers, which DPO should lower); "
                  "0 keeps the text data clean. Dev / test text and every speech manifest stay clean."
    )
    doc_sentences: tuple[int, int] = option(
        (3, 6), help="Min and max sentences per interleaved text/speech document."
    )
    chat_turns: int = option(2, help="User turns per multi-turn spoken-chat conversation.")

    def __post_init__(self) -> None:
        check(self.utterances >= 10, "utterances", f"must be >= 10, got {self.utterances}")
        check(len(self.split_fractions) == 3 and all(f > 0 for f in self.split_fractions), "split_fractions",
              "needs three positive shares")
        check(abs(sum(self.split_fractions) - 1.0) < 1e-6, "split_fractions",
              f"must sum to 1, got {sum(self.split_fractions)}")
        check(self.eval_renders >= 1, "eval_renders", "must be >= 1")
        check(bool(self.tts_voices), "tts_voices", "needs at least one voice")
        check(not set(self.voices) & set(self.held_out_voices), "held_out_voices",
              "a held-out voice cannot also be a training voice")
        for name in ("rate_range", "pitch_range"):
            lo, hi = getattr(self, name)
            check(0.5 <= lo <= hi <= 2.0, name, f"needs 0.5 <= low <= high <= 2.0, got ({lo}, {hi})")
        check(all(8000 <= r <= 48000 for r in self.sample_rates), "sample_rates", "each rate must be 8000..48000")
        check(self.input_rate in self.sample_rates, "input_rate", "must be one of sample_rates")
        check(self.output_rate in self.sample_rates, "output_rate", "must be one of sample_rates")
        check(0.0 <= self.preference_fraction <= 1.0, "preference_fraction", "must be in [0, 1]")
        check(0.0 <= self.noisy_sft_fraction <= 1.0, "noisy_sft_fraction", "must be in [0, 1]")
        lo, hi = self.doc_sentences
        check(2 <= lo <= hi, "doc_sentences", f"needs 2 <= min <= max, got ({lo}, {hi})")
        check(self.chat_turns >= 2, "chat_turns", "must be >= 2")

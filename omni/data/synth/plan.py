"""Planning the synthetic corpus: which sentence is spoken by which voice, in which split.

Planning is pure and deterministic (a function of the config and of the voices
available on the machine); rendering (:mod:`omni.data.synth.render`) then just
executes the jobs, in any order, on any number of processes.

- The whole domain is split train/dev/test *by prompt sentence*
  (:func:`omni.data.synth.text.split_by_prompt`), then each split's share of
  prompts is drawn from its part; every fact asked in dev/test is also asked
  (in another phrasing) in train.
- Train sentences are spoken once by a random training voice; dev and test
  sentences by ``eval_renders`` distinct training voices, plus once by a reply
  (TTS) voice at neutral rate and pitch (the reference audio of TTS dev/test
  sentences, which no training reply contains); each test sentence also by
  one held-out voice (the unseen-speaker test set).
- Every exchange's reply is spoken by a reply (TTS) voice; replies shared by
  several prompts are rendered once. A ``preference_fraction`` of exchanges
  also gets its wrong reply rendered, for preference pairs.
- A ``noisy_sft_fraction`` of the facts asked in train is marked noisy: the
  train text data (:mod:`omni.data.synth.corpus`) also holds their exchanges
  with the wrong reply. Drawn last, so the rest of the plan does not change.
- Each utterance belongs to exactly one split: prompts to their sentence's
  split, replies to the first split (train, dev, test) that uses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from omni.data.synth.config import CorpusConfig
from omni.data.synth.engines import Voice, available_voices, flite_available
from omni.data.synth.text import Exchange, all_exchanges, sample_exchanges, split_by_prompt

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Utterance:
    """One sentence spoken by one voice: a rendering job and, later, a manifest entry.

    Attributes:
        utt_id: file stem, ``p``/``r``/``w`` + number (prompt, reply, wrong reply).
        text: what is said.
        voice: who says it.
        rate: speaking-rate factor.
        pitch: pitch factor.
        split: ``train``, ``dev``, ``test`` or ``test_unseen`` (held-out voice).
        kind: ``prompt``, ``reply`` or ``wrong``.
    """

    utt_id: str
    text: str
    voice: Voice
    rate: float
    pitch: float
    split: str
    kind: str


@dataclass
class CorpusPlan:
    """Everything to render and how it connects.

    Attributes:
        exchanges: split name -> exchanges whose prompt sentence is in that split.
        prompts: exchange prompt text -> its prompt utterances (several voices).
        reply_of: reply text -> its reply utterance.
        wrong_of: wrong-reply text -> its utterance (only for preference exchanges).
        preference: split -> exchanges that get a preference pair.
        noisy_facts: fact ids whose train exchanges also appear with the wrong reply in the text data.
        voices / held_out / tts_voices: the voices in use.
        notes: messages for the user (e.g. voices dropped because flite is missing).
    """

    exchanges: dict[str, list[Exchange]]
    prompts: dict[str, list[Utterance]] = field(default_factory=dict)
    reply_of: dict[str, Utterance] = field(default_factory=dict)
    wrong_of: dict[str, Utterance] = field(default_factory=dict)
    preference: dict[str, list[Exchange]] = field(default_factory=dict)
    noisy_facts: set[str] = field(default_factory=set)
    voices: list[Voice] = field(default_factory=list)
    held_out: list[Voice] = field(default_factory=list)
    tts_voices: list[Voice] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def utterances(self) -> list[Utterance]:
        """Every utterance to render, in a fixed order."""
        out = [u for us in self.prompts.values() for u in us]
        return out + list(self.reply_of.values()) + list(self.wrong_of.values())


def _pick_voices(ids: list[str], catalog: dict[str, Voice], notes: list[str], what: str) -> list[Voice]:
    """Voices for ``ids``; unavailable flite voices are dropped with a note, unknown ids are errors."""
    picked = []
    for vid in ids:
        if vid in catalog:
            picked.append(catalog[vid])
        elif vid.startswith("flite:") and not flite_available():
            notes.append(f"{what}: skipping {vid} (flite is not installed; 'apt-get install flite' adds its voices)")
        else:
            known = ", ".join(sorted(catalog))
            raise ValueError(f"{what}: unknown voice '{vid}'; available: {known}")
    return picked


def choose_voices(cfg: CorpusConfig, notes: list[str]) -> tuple[list[Voice], list[Voice], list[Voice]]:
    """(training voices, held-out voices, reply voices) for this machine."""
    catalog = {v.id: v for v in available_voices()}
    held_out = _pick_voices(cfg.held_out_voices, catalog, notes, "held_out_voices")
    if cfg.voices:
        voices = _pick_voices(cfg.voices, catalog, notes, "voices")
    else:
        voices = [v for v in catalog.values() if v.id not in {h.id for h in held_out}]
    if not voices:
        raise ValueError("no training voices left after removing the held-out ones")
    tts = _pick_voices(cfg.tts_voices, catalog, notes, "tts_voices")
    if not tts:
        tts = _pick_voices([cfg.fallback_tts_voice], catalog, notes, "fallback_tts_voice")
        notes.append(f"replies are spoken by the fallback voice {cfg.fallback_tts_voice}")
    return voices, held_out, tts


def distinct_prompts_needed(cfg: CorpusConfig, has_held_out: bool) -> int:
    """How many distinct prompt sentences give about ``cfg.utterances`` prompt renders."""
    f_train, f_dev, f_test = cfg.split_fractions
    per_sentence = f_train + (f_dev + f_test) * cfg.eval_renders + (f_test if has_held_out else 0.0)
    return max(10, math.ceil(cfg.utterances / per_sentence))


def sample_splits(cfg: CorpusConfig, n: int) -> dict[str, list[Exchange]]:
    """Split the whole domain by prompt sentence, then draw each split's share of ``n`` prompts.

    Every fact asked in dev/test is also asked in train (in another phrasing):
    when the draw misses it, one train phrasing is added, so every held-out
    question is answerable from training data.
    """
    pools = split_by_prompt(all_exchanges(), fractions=cfg.split_fractions, seed=cfg.seed)
    n_dev = round(n * cfg.split_fractions[1])
    n_test = round(n * cfg.split_fractions[2])
    sizes = {"train": n - n_dev - n_test, "dev": n_dev, "test": n_test}
    out = {}
    for i, split in enumerate(SPLITS):
        drawn = sample_exchanges(min(sizes[split], len(pools[split])), seed=cfg.seed * 3 + i, exchanges=pools[split])
        out[split] = list({ex.prompt: ex for ex in reversed(drawn)}.values())[::-1]  # first of a repeated prompt
    in_train = {ex.fact_id for ex in out["train"]}
    first_train_phrasing = {}
    for ex in pools["train"]:
        first_train_phrasing.setdefault(ex.fact_id, ex)
    for ex in out["dev"] + out["test"]:
        if ex.fact_id not in in_train and ex.fact_id in first_train_phrasing:
            out["train"].append(first_train_phrasing[ex.fact_id])
            in_train.add(ex.fact_id)
    return out


def plan_corpus(cfg: CorpusConfig) -> CorpusPlan:
    """Decide every utterance of the corpus (see the module docstring)."""
    notes: list[str] = []
    voices, held_out, tts = choose_voices(cfg, notes)
    exchanges = sample_splits(cfg, distinct_prompts_needed(cfg, bool(held_out)))
    plan = CorpusPlan(exchanges, voices=voices, held_out=held_out, tts_voices=tts, notes=notes)
    rng = np.random.default_rng(cfg.seed)
    counter = {"p": 0, "r": 0, "w": 0}

    def new_id(prefix: str) -> str:
        counter[prefix] += 1
        return f"{prefix}{counter[prefix]:06d}"

    def prompt_utt(text: str, voice: Voice, split: str) -> Utterance:
        rate = float(rng.uniform(*cfg.rate_range))
        pitch = float(rng.uniform(*cfg.pitch_range)) if voice.supports_pitch else 1.0
        return Utterance(new_id("p"), text, voice, round(rate, 3), round(pitch, 3), split, "prompt")

    tts_ids = {v.id for v in tts}
    for split in SPLITS:
        n_voices = 1 if split == "train" else min(cfg.eval_renders, len(voices))
        for ex in plan.exchanges[split]:
            chosen = rng.choice(len(voices), size=n_voices, replace=False)
            utts = [prompt_utt(ex.prompt, voices[i], split) for i in sorted(chosen)]
            if split != "train" and not any(voices[i].id in tts_ids for i in chosen):
                # a reference rendering in a reply voice: TTS dev/test sentences unseen in training
                voice = tts[int(rng.integers(len(tts)))]
                utts.append(Utterance(new_id("p"), ex.prompt, voice, 1.0, 1.0, split, "prompt"))
            if split == "test" and held_out:
                utts.append(prompt_utt(ex.prompt, held_out[int(rng.integers(len(held_out)))], "test_unseen"))
            plan.prompts[ex.prompt] = utts
    for split in SPLITS:
        for ex in plan.exchanges[split]:
            if ex.reply not in plan.reply_of:
                voice = tts[int(rng.integers(len(tts)))]
                plan.reply_of[ex.reply] = Utterance(new_id("r"), ex.reply, voice, 1.0, 1.0, split, "reply")
        n_pref = round(cfg.preference_fraction * len(plan.exchanges[split]))
        picked = sorted(rng.choice(len(plan.exchanges[split]), size=n_pref, replace=False)) if n_pref else []
        plan.preference[split] = [plan.exchanges[split][i] for i in picked]
        for ex in plan.preference[split]:
            if ex.wrong_reply not in plan.wrong_of:
                voice = plan.reply_of[ex.reply].voice  # same voice as the right answer: only content differs
                plan.wrong_of[ex.wrong_reply] = Utterance(new_id("w"), ex.wrong_reply, voice, 1.0, 1.0, split, "wrong")
    if cfg.noisy_sft_fraction:
        facts = sorted({ex.fact_id for ex in plan.exchanges["train"]})
        n_noisy = round(cfg.noisy_sft_fraction * len(facts))
        plan.noisy_facts = {facts[i] for i in rng.choice(len(facts), size=n_noisy, replace=False)}
    return plan

"""Preference pairs from the SFT model's own answers (``omni data make-pairs``) and answer-rate evaluation.

For every prompt row (a ``spoken_qa`` / ``text`` conversation or a ``preference`` row of the synthetic
corpus, whose ``meta.answer_key`` names what a right answer contains), N candidates are sampled from the
model (temperature sampling, a fixed seed) and scored:

* **correctness**: the answer key occurs in the text, and every other number word of the text comes from the
  prompt or the reference reply (:func:`omni.data.synth.domain.answer_matches` with :func:`answer_context`);
* **speech round trip**: when a candidate is spoken and a ``synthesize`` function turns its codes into a
  waveform (:func:`bundle_synthesizer`: the checkpoint bundle's flow decoder + vocoder), an
  :mod:`omni.eval` recogniser (PocketSphinx by default: offline, trained by no one here) transcribes it and
  the WER against the candidate's own text (jiwer) says whether speech and text agree;
* **length**: a small penalty per word beyond ``max_words``.

``score = correct - wer_weight x WER - length_weight x max(0, words - max_words)``; the best candidate
becomes ``chosen`` and the worst ``rejected`` (ties go to the answer sampled most often, :func:`pick_pair`)
when their scores differ by at least ``min_gap`` (prompts whose candidates all tie are dropped). Any
:class:`omni.eval.recognizers.Recognizer` can judge (whisper, espnet from a local directory, or the omni model
itself).

A spoken chosen / rejected answer keeps its speech: in memory the response carries ``codes`` (a (N, K) tensor)
and ``audio`` (the rendered :class:`~omni.audio.io.Audio`); :func:`write_rows` stores the codes in one
safetensors shard beside the manifest (``<stem>.codes.safetensors``) and the waveforms under ``<stem>_audio/``,
so that the written pairs train speech DPO (``speech_out: true``) as they are.

:func:`answer_rates` measures, on the same sampled answers, the share that holds the right key and the
share that holds the wrong answer of the pair ("chosen-style rate"), to compare an SFT and a DPO model.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from omni.align.data import PairEncoder, prompt_length
from omni.audio.io import Audio
from omni.data.manifest import ManifestRow, Turn
from omni.data.synth.domain import answer_matches, normalize
from omni.eval.recognizers.base import Recognizer
from omni.model.batch import OmniExample

EXAMPLES_PER_KIND = 12  # answers of each kind (right / wrong / neither) kept as examples by answer_rates


def bundle_synthesizer(bundle_dir: str, voice: str | None = None) -> Callable[[torch.Tensor], Audio]:
    """Codes (N, K) -> :class:`~omni.audio.io.Audio` with the bundle's speech decoder (voice: its first one)."""
    from omni.bundle import load_bundle

    decoder = load_bundle(bundle_dir).speech_decoder
    voice = voice or (decoder.flow.cfg.speakers[0] if decoder.flow.cfg.speakers else None)

    def synthesize(frames: torch.Tensor) -> Audio:
        with torch.no_grad():
            wav = decoder.synthesize(frames, speaker=voice)
        return Audio(wav.numpy().astype(np.float32), decoder.sample_rate)

    return synthesize


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER after the corpus normalisation (lower case, letters and apostrophes); 0 for two empty texts."""
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))


@dataclass
class ScoreWeights:
    """How a candidate's score is made."""

    wer_weight: float = 1.0
    length_weight: float = 0.05
    max_words: int = 20
    min_gap: float = 0.5


@dataclass
class Candidate:
    """One sampled answer and its score parts (``wer`` None when the answer has no speech or no synthesiser;
    ``audio`` the rendered speech the judge heard)."""

    text: str
    frames: torch.Tensor | None
    correct: bool
    wer: float | None
    words: int
    score: float
    audio: Audio | None = None


def score_candidate(text: str, answer_key: str | None, frames: torch.Tensor | None, weights: ScoreWeights,
                    synthesize: Callable[[torch.Tensor], Audio] | None = None,
                    recognizer: Recognizer | None = None, context: str | None = None) -> Candidate:
    """Score one answer (see the module docstring); ``context``: :func:`answer_context` of its prompt row."""
    correct = bool(answer_key) and answer_matches(text, answer_key, context)
    wer = audio = None
    if frames is not None and frames.shape[0] and synthesize is not None and recognizer is not None:
        audio = synthesize(frames)
        wer = word_error_rate(text, recognizer.transcribe([audio])[0])
    words = len(normalize(text).split())
    score = float(correct) - weights.wer_weight * (wer or 0.0) - weights.length_weight * max(0, words - weights.max_words)
    return Candidate(text, frames, correct, wer, words, score, audio)


def response_turn(candidate: Candidate) -> dict:
    """The assistant turn of a pair: its text, and its speech (``codes`` (N, K) tensor, ``audio``) when it was
    spoken and rendered; :func:`write_rows` turns the speech into file references."""
    turn: dict = {"role": "assistant", "text": candidate.text}
    if candidate.audio is not None and candidate.frames is not None:
        turn.update(codes=candidate.frames, audio=candidate.audio)
    return turn


def generation_prompt(example: OmniExample) -> OmniExample:
    """The prompt part of an encoded (prompt + response) example, ending with ``<|im_start|>assistant\\n``."""
    p = prompt_length(example)
    frames = int((~example.audio_target).sum()) if example.audio_codes.numel() else 0
    return OmniExample(example.input_ids[:p], example.labels[:p].clone().fill_(-100), example.audio_codes[:frames],
                       example.audio_target[:frames], example.images, example.videos)


def prompt_rows(rows: Sequence[ManifestRow]) -> list[ManifestRow]:
    """Rows with a ``prompt``: preference rows as they are, conversations cut before their last assistant turn."""
    out = []
    for row in rows:
        if row.prompt:
            out.append(row)
            continue
        conv = row.conversation or []
        last = max((i for i, t in enumerate(conv) if t.role == "assistant"), default=None)
        if last is None or last == 0:
            continue
        out.append(ManifestRow(id=row.id, task="preference", prompt=conv[:last], chosen=conv[last],
                               rejected=conv[last], language=row.language, region=row.region, meta=row.meta,
                               image=row.image, video=row.video))  # row-level media join the first user turn
    return out


def answer_context(row: ManifestRow) -> str | None:
    """The text a right answer to a prompt row may take its number words from besides the key: the prompt's turns
    and the reference (chosen) reply (:func:`omni.data.synth.domain.answer_matches`); None for a row with neither,
    which is then scored on the key alone."""
    turns = [*(row.prompt or []), *([row.chosen] if row.chosen else [])]
    return " ".join(t.text for t in turns if t.text) or None


def encode_prompts(model: Any, rows: Sequence[ManifestRow], manifest: str, media: Any, speech_in: bool,
                   speech_out: bool) -> list[OmniExample]:
    """Generation prompts of ``rows`` (prompt turns + the assistant header) with the training template."""
    from omni.align.data import PreferenceDataConfig

    enc = PairEncoder(model.tokenizer, model.token_ids, PreferenceDataConfig(train=[manifest], speech_in=speech_in,
                                                                            speech_out=speech_out),
                      merge_size=model.cfg.vision.spatial_merge_size, think_block=model.cfg.think_block)
    dummy = Turn(role="assistant", text="x")
    return [generation_prompt(enc.response(r, dummy, manifest, i + 1, media, "response")) for i, r in enumerate(rows)]


@torch.no_grad()
def sample_answers(model: Any, prompts: Sequence[OmniExample], n: int, temperature: float, seed: int,
                   max_new_tokens: int = 48, speech: bool = False, batch_size: int = 16) -> list[list[tuple[str, torch.Tensor]]]:
    """``n`` sampled answers per prompt: (text, audio frames (N, K)) each; deterministic for a seed."""
    from omni.model.generation import GenerationConfig
    from omni.model.sampling import SamplingConfig

    model.eval()
    sampling = SamplingConfig(do_sample=True, temperature=temperature)
    out: list[list[tuple[str, torch.Tensor]]] = [[] for _ in prompts]
    for k in range(n):
        for start in range(0, len(prompts), batch_size):
            cfg = GenerationConfig(max_new_tokens=max_new_tokens, text=sampling, audio=sampling, allow_audio=speech,
                                   seed=seed * 1_000_003 + k * 10_007 + start)
            res = model.generate(list(prompts[start:start + batch_size]), cfg)
            for j, (text, frames) in enumerate(zip(res.text, res.frames)):
                out[start + j].append((text.strip(), frames))
    return out


def wrong_key(chosen: str, rejected: str) -> str | None:
    """The words of ``rejected`` that ``chosen`` lacks (the wrong answer), e.g. "green" for blue / green."""
    have = set(normalize(chosen).split())
    extra = [w for w in normalize(rejected).split() if w not in have]
    return " ".join(extra) or None


@dataclass
class AnswerRates:
    """Share of sampled answers holding the right key, the wrong key, and neither."""

    right: float
    wrong: float
    neither: float
    answers: int
    examples: list[dict] = field(default_factory=list)


def answer_rates(model: Any, rows: Sequence[ManifestRow], manifest: str, media: Any, n: int = 4,
                 temperature: float = 1.0, seed: int = 0, speech_in: bool = False) -> AnswerRates:
    """Chosen-style rate of ``model`` on preference rows: sample ``n`` text answers per prompt and count those
    containing ``meta.answer_key`` (right) or the rejected answer's extra words (wrong); ``examples`` keeps the
    first :data:`EXAMPLES_PER_KIND` answers of each kind."""
    prompts = encode_prompts(model, rows, manifest, media, speech_in, speech_out=False)
    answers = sample_answers(model, prompts, n, temperature, seed)
    right = wrong = total = 0
    examples: list[dict] = []
    seen = dict.fromkeys(("right", "wrong", "neither"), 0)
    for row, cands in zip(rows, answers):
        key = (row.meta or {}).get("answer_key")
        bad = wrong_key(row.chosen.text or "", row.rejected.text or "") if row.rejected else None
        context = answer_context(row)
        for text, _ in cands:
            r = bool(key) and answer_matches(text, key, context)
            w = (not r) and bad is not None and answer_matches(text, bad)
            right += r
            wrong += w
            total += 1
            kind = "right" if r else "wrong" if w else "neither"
            if seen[kind] < EXAMPLES_PER_KIND:
                seen[kind] += 1
                examples.append({"id": row.id, "answer": text, "right": r, "wrong": w})
    total = max(total, 1)
    return AnswerRates(right / total, wrong / total, 1 - (right + wrong) / total, total, examples)


def pick_pair(scored: Sequence[Candidate]) -> tuple[Candidate, Candidate]:
    """Best and worst of one prompt's candidates. Ties in score go to the answer sampled most often (after the
    corpus normalisation): the chosen side is then the model's usual right answer rather than a rare right-but-
    garbled one, and the rejected side its most likely mistake (self-consistency); first sampled wins the rest."""
    counts = Counter(normalize(c.text) for c in scored)
    best = max(scored, key=lambda c: (c.score, counts[normalize(c.text)]))
    worst = min(scored, key=lambda c: (c.score, -counts[normalize(c.text)]))
    return best, worst


def make_pairs(model: Any, rows: Sequence[ManifestRow], manifest: str, media: Any, n: int, temperature: float,
               seed: int, weights: ScoreWeights, speech: bool = False, speech_in: bool = True,
               synthesize: Callable[[torch.Tensor], Audio] | None = None,
               recognizer: Recognizer | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """Preference rows (JSON-ready dicts) built from the model's best and worst of ``n`` sampled answers per
    prompt; a spoken, rendered chosen / rejected answer keeps its codes and audio (:func:`response_turn`)."""
    rows = prompt_rows(rows)
    prompts = encode_prompts(model, rows, manifest, media, speech_in, speech_out=speech)
    answers = sample_answers(model, prompts, n, temperature, seed, speech=speech)
    out, dropped = [], 0
    for row, cands in zip(rows, answers):
        key = (row.meta or {}).get("answer_key")
        context = answer_context(row)
        scored = [score_candidate(t, key, f if speech else None, weights, synthesize, recognizer, context)
                  for t, f in cands]
        scored = [c for c in scored if c.text]
        if len(scored) < 2:
            dropped += 1
            continue
        best, worst = pick_pair(scored)
        if best.score - worst.score < weights.min_gap:
            dropped += 1
            continue
        prompt = [{k: v for k, v in vars(t).items() if v is not None and k != "codes"} for t in row.prompt]
        meta = dict(row.meta or {}, chosen_score=best.score, rejected_score=worst.score, chosen_wer=best.wer,
                    rejected_wer=worst.wer, candidates=len(scored))
        out.append({"id": f"pair-{row.id}", "task": "preference", "prompt": prompt,
                    "chosen": response_turn(best), "rejected": response_turn(worst), "meta": meta})
    log(f"make-pairs: {len(out)} pairs from {len(rows)} prompts ({dropped} without a clear best / worst)")
    return out


def write_rows(rows: list[dict], path: str) -> None:
    """JSONL, atomically. Responses that carry speech (``codes`` tensor and ``audio``, see :func:`response_turn`)
    are stored first: codes in ``<stem>.codes.safetensors`` (key ``<row id>:<chosen|rejected>``), audio as
    ``<stem>_audio/<row id>.<side>.wav``, both referenced relative to the manifest's directory."""
    import os
    from pathlib import Path

    from omni.audio.io import save_audio
    from omni.data.codes import write_codes_shard

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    stem = p.name.split(".")[0]
    shard, audio_dir = f"{stem}.codes.safetensors", f"{stem}_audio"
    codes: dict[str, torch.Tensor] = {}
    out = []
    for row in rows:
        row = dict(row)
        for side in ("chosen", "rejected", "completion"):
            turn = row.get(side)
            if isinstance(turn, dict) and isinstance(turn.get("codes"), torch.Tensor):
                key = f"{row['id']}:{side}"
                wav = f"{audio_dir}/{row['id']}.{side}.wav"
                save_audio(p.parent / wav, turn["audio"].samples, turn["audio"].sample_rate)
                codes[key] = turn["codes"]
                row[side] = {**turn, "audio": wav, "codes": {"path": shard, "key": key}}
        out.append(row)
    if codes:
        write_codes_shard(p.parent / shard, codes, metadata={"source": "omni data make-pairs"})
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
    os.replace(tmp, p)



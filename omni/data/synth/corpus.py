"""Building the synthetic speech corpus: plan, render, write manifests.

``build_corpus(cfg, out_dir)`` writes::

    out_dir/
      corpus.json                    config, voices, counts, hours (what was built)
      audio/16k/*.flac audio/24k/*.flac
      asr_{train,dev,test}.jsonl     speech -> text (prompts in many voices, replies in the reply voice)
      asr_test_unseen.jsonl          test sentences spoken by held-out voices
      tts_{split}.jsonl              text -> speech in the reply (TTS) voices, 24 kHz
      spoken_qa_{split}.jsonl        spoken question -> text + spoken answer
      spoken_chat_{split}.jsonl      multi-turn spoken conversations (one user voice each)
      interleaved_{split}.jsonl      documents of sentences, each with text and speech
      text_{split}.jsonl             text chat (prompt -> reply) and plain fact statements (train); with
                                     ``noisy_sft_fraction``, train chat also gives wrong replies
      preference_{split}.jsonl       prompt (text + speech) -> chosen (right) / rejected (wrong) reply

Rows carry ``meta`` with the exchange's ``category``, ``fact_id`` and
``answer_key`` wherever a reply is involved, so answers can be scored.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from omni.config import to_data
from omni.data.manifest import ManifestRow, Segment, Turn, write_manifest
from omni.data.synth.config import CorpusConfig
from omni.data.synth.plan import SPLITS, CorpusPlan, Utterance, plan_corpus
from omni.data.synth.render import audio_path, render_utterances
from omni.data.synth.text import Exchange, statements

Durations = dict[str, dict[int, float]]


@dataclass
class CorpusSummary:
    """What :func:`build_corpus` produced."""

    out_dir: Path
    manifests: dict[str, int]
    rendered: int
    hours: float
    seconds: float
    notes: list[str]


class _Rows:
    """Turns planned utterances into manifest rows (paths, durations, tags)."""

    def __init__(self, cfg: CorpusConfig, durations: Durations):
        self.cfg = cfg
        self.durations = durations

    def _media(self, utt: Utterance, rate: int) -> tuple[str, float]:
        return audio_path(utt.utt_id, rate, self.cfg.audio_format), round(self.durations[utt.utt_id][rate], 4)

    def user_turn(self, utt: Utterance) -> Turn:
        path, dur = self._media(utt, self.cfg.input_rate)
        return Turn("user", text=utt.text, audio=path, duration=dur)

    def reply_turn(self, utt: Utterance) -> Turn:
        path, dur = self._media(utt, self.cfg.output_rate)
        return Turn("assistant", text=utt.text, audio=path, duration=dur)

    def speech_row(self, task: str, utt: Utterance, rate: int) -> ManifestRow:
        path, dur = self._media(utt, rate)
        return ManifestRow(id=f"{task}-{utt.utt_id}", task=task, audio=path, duration=dur, text=utt.text,
                           language=utt.voice.language, region=utt.voice.region, speaker=utt.voice.id)


def _meta(ex: Exchange) -> dict:
    return {"category": ex.category, "fact_id": ex.fact_id, "answer_key": ex.answer_key}


def _asr_rows(plan: CorpusPlan, rows: _Rows, split: str) -> list[ManifestRow]:
    rate = rows.cfg.input_rate
    out = [rows.speech_row("asr", u, rate) for us in plan.prompts.values() for u in us if u.split == split]
    if split != "test_unseen":
        out += [rows.speech_row("asr", u, rate) for u in plan.reply_of.values() if u.split == split]
    return out


def _tts_rows(plan: CorpusPlan, rows: _Rows, split: str) -> list[ManifestRow]:
    """Train: replies and prompts in a reply voice. Dev/test: only sentences no training row speaks."""
    tts_ids = {v.id for v in plan.tts_voices}
    utts = [u for us in plan.prompts.values() for u in us if u.split == split and u.voice.id in tts_ids]
    if split == "train":
        utts = [u for u in plan.reply_of.values() if u.split == split] + utts
    return [rows.speech_row("tts", u, rows.cfg.output_rate) for u in utts]


def _qa_rows(plan: CorpusPlan, rows: _Rows, split: str) -> list[ManifestRow]:
    out = []
    for ex in plan.exchanges[split]:
        reply = plan.reply_of[ex.reply]
        for u in plan.prompts[ex.prompt]:
            if u.split == split:
                out.append(ManifestRow(id=f"spoken_qa-{u.utt_id}", task="spoken_qa", language="en",
                                       region=u.voice.region, speaker=u.voice.id, meta=_meta(ex),
                                       conversation=[rows.user_turn(u), rows.reply_turn(reply)]))
    return out


def _by_voice(plan: CorpusPlan, split: str) -> dict[str, list[tuple[Exchange, Utterance]]]:
    groups: dict[str, list[tuple[Exchange, Utterance]]] = defaultdict(list)
    for ex in plan.exchanges[split]:
        for u in plan.prompts[ex.prompt]:
            if u.split == split:
                groups[u.voice.id].append((ex, u))
    return groups


def _chat_rows(plan: CorpusPlan, rows: _Rows, split: str) -> list[ManifestRow]:
    out, k = [], rows.cfg.chat_turns
    for voice_id, items in sorted(_by_voice(plan, split).items()):
        for start in range(0, len(items) - k + 1, k):
            turns = []
            for ex, u in items[start:start + k]:
                turns += [rows.user_turn(u), rows.reply_turn(plan.reply_of[ex.reply])]
            first = items[start][1]
            out.append(ManifestRow(id=f"spoken_chat-{first.utt_id}", task="spoken_chat", language="en",
                                   region=first.voice.region, speaker=voice_id, conversation=turns,
                                   meta={"fact_ids": [ex.fact_id for ex, _ in items[start:start + k]],
                                         "answer_keys": [ex.answer_key for ex, _ in items[start:start + k]]}))
    return out


def _interleaved_rows(plan: CorpusPlan, rows: _Rows, split: str) -> list[ManifestRow]:
    import numpy as np

    rng = np.random.default_rng([rows.cfg.seed, SPLITS.index(split)])
    lo, hi = rows.cfg.doc_sentences
    out = []
    for voice_id, items in sorted(_by_voice(plan, split).items()):
        start = 0
        while len(items) - start >= lo:
            n = min(int(rng.integers(lo, hi + 1)), len(items) - start)
            segs = []
            for _, u in items[start:start + n]:
                turn = rows.user_turn(u)
                segs.append(Segment(text=u.text, audio=turn.audio, duration=turn.duration))
            first = items[start][1]
            out.append(ManifestRow(id=f"interleaved-{first.utt_id}", task="interleaved", language="en",
                                   region=first.voice.region, speaker=voice_id, segments=segs))
            start += n
    return out


def _text_rows(plan: CorpusPlan, split: str) -> list[ManifestRow]:
    out = [ManifestRow(id=f"text-{split}-{i:06d}", task="text", language="en", meta=_meta(ex),
                       conversation=[Turn("user", ex.prompt), Turn("assistant", ex.reply)])
           for i, ex in enumerate(plan.exchanges[split])]
    if split == "train":
        out += [ManifestRow(id=f"text-fact-{i:06d}", task="text", language="en", text=s)
                for i, s in enumerate(statements())]
        noisy = [ex for ex in plan.exchanges[split] if ex.fact_id in plan.noisy_facts]
        out += [ManifestRow(id=f"text-{split}-wrong-{i:06d}", task="text", language="en",
                            meta={**_meta(ex), "wrong_reply": True},
                            conversation=[Turn("user", ex.prompt), Turn("assistant", ex.wrong_reply)])
                for i, ex in enumerate(noisy)]
    return out


def _preference_rows(plan: CorpusPlan, rows: _Rows, split: str) -> list[ManifestRow]:
    out = []
    for ex in plan.preference[split]:
        u = next(u for u in plan.prompts[ex.prompt] if u.split == split)
        out.append(ManifestRow(
            id=f"preference-{u.utt_id}", task="preference", language="en", region=u.voice.region,
            speaker=u.voice.id, meta=_meta(ex), prompt=[rows.user_turn(u)],
            chosen=rows.reply_turn(plan.reply_of[ex.reply]), rejected=rows.reply_turn(plan.wrong_of[ex.wrong_reply])))
    return out


def write_all_manifests(plan: CorpusPlan, cfg: CorpusConfig, durations: Durations, out_dir: Path) -> dict[str, int]:
    """Write every manifest; returns file name -> row count."""
    rows = _Rows(cfg, durations)
    tables: dict[str, list[ManifestRow]] = {}
    for split in SPLITS:
        tables[f"asr_{split}"] = _asr_rows(plan, rows, split)
        tables[f"tts_{split}"] = _tts_rows(plan, rows, split)
        tables[f"spoken_qa_{split}"] = _qa_rows(plan, rows, split)
        tables[f"spoken_chat_{split}"] = _chat_rows(plan, rows, split)
        tables[f"interleaved_{split}"] = _interleaved_rows(plan, rows, split)
        tables[f"text_{split}"] = _text_rows(plan, split)
        tables[f"preference_{split}"] = _preference_rows(plan, rows, split)
    if plan.held_out:
        tables["asr_test_unseen"] = _asr_rows(plan, rows, "test_unseen")
    return {f"{name}.jsonl": write_manifest(out_dir / f"{name}.jsonl", table) for name, table in tables.items()}


def _check_existing(out_dir: Path, cfg: CorpusConfig, overwrite: bool) -> None:
    """Refuse to mix two corpora in one directory; ``overwrite`` clears the old one."""
    meta = out_dir / "corpus.json"
    if not meta.exists():
        return
    old = json.loads(meta.read_text(encoding="utf-8")).get("config")
    if isinstance(old, dict):  # a field added since that corpus was built had its default value there
        old = {**{k: v for k, v in to_data(CorpusConfig()).items() if k not in old}, **old}
    if old == to_data(cfg):
        return  # same corpus: resume, keeping files already rendered
    if not overwrite:
        diff = sorted(k for k in set(old or {}) | set(to_data(cfg)) if (old or {}).get(k) != to_data(cfg).get(k))
        raise ValueError(f"{out_dir} holds a corpus built with a different config (differs in: {', '.join(diff)}); "
                         "pass --overwrite to replace it, or choose another --out")
    shutil.rmtree(out_dir / "audio", ignore_errors=True)
    for f in out_dir.glob("*.jsonl"):
        f.unlink()
    meta.unlink()


def build_corpus(
    cfg: CorpusConfig, out_dir: str | os.PathLike, workers: int = 0, progress: bool = True, overwrite: bool = False
) -> CorpusSummary:
    """Plan, render and write the whole corpus; rerunning with the same config resumes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_existing(out_dir, cfg, overwrite)
    started = time.time()
    marker = {"config": to_data(cfg), "complete": False}  # written first, so a resumed run checks the config
    (out_dir / "corpus.json").write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    plan = plan_corpus(cfg)
    utterances = plan.utterances
    durations = render_utterances(utterances, out_dir, tuple(cfg.sample_rates), cfg.audio_format, workers, progress)
    counts = write_all_manifests(plan, cfg, durations, out_dir)
    seconds = sum(d[cfg.input_rate] for d in durations.values())
    info = {
        "config": to_data(cfg),
        "complete": True,
        "voices": [v.id for v in plan.voices],
        "held_out_voices": [v.id for v in plan.held_out],
        "tts_voices": [v.id for v in plan.tts_voices],
        "regions": {v.id: v.region for v in plan.voices + plan.held_out + plan.tts_voices},
        "utterances": len(utterances),
        "exchanges": {s: len(plan.exchanges[s]) for s in SPLITS},
        "hours": seconds / 3600,
        "manifests": counts,
        "notes": plan.notes,
        "build_seconds": round(time.time() - started, 1),
    }
    (out_dir / "corpus.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return CorpusSummary(out_dir, counts, len(utterances), seconds / 3600, time.time() - started, plan.notes)

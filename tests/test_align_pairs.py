"""Preference-pair builder: candidate scores, best-vs-worst selection, prompts, the offline recogniser."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omni.align import pairs as P
from omni.align.pairs import (
    ScoreWeights,
    generation_prompt,
    pick_pair,
    score_candidate,
    word_error_rate,
    wrong_key,
)
from omni.audio.io import Audio
from omni.data.manifest import load_manifest
from omni.data.media import CachedMedia
from omni.eval.recognizers.sphinx import PocketSphinxRecognizer
from omni.model import OmniModel
from omni.model.batch import IGNORE
from tests.helpers.pref_data import tiny_aligned_model, write_preference_data
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)


def test_scores_by_hand():
    w = ScoreWeights(wer_weight=1.0, length_weight=0.1, max_words=4)
    good = score_candidate("The sky is blue.", "blue", None, w)
    assert (good.correct, good.wer, good.words, good.score) == (True, None, 4, 1.0)
    long_wrong = score_candidate("The sky is green and very very nice.", "blue", None, w)
    assert long_wrong.correct is False and long_wrong.score == pytest.approx(-0.4)  # 8 words, 4 over the limit
    spoken = score_candidate("The sky is blue.", "blue", torch.zeros(5, 8, dtype=torch.long), w,
                             synthesize=lambda codes: Audio(np.zeros(1600, dtype=np.float32), 16000),
                             recognizer=type("R", (), {"transcribe": lambda self, audios: ["the sky is"]})())
    assert spoken.wer == pytest.approx(0.25) and spoken.score == pytest.approx(0.75)  # one deletion in four words
    assert word_error_rate("Two plus three is five.", "two plus three is five") == 0.0
    assert wrong_key("The sky is blue.", "The sky is green.") == "green"
    context = "What is two plus three? Two plus three is five."
    assert score_candidate("Five plus two is seven.", "five", None, w, context=context).correct is False
    assert score_candidate("Two plus three is five.", "five", None, w, context=context).correct is True


def test_pick_pair_breaks_score_ties_by_how_often_an_answer_was_sampled():
    w = ScoreWeights()
    texts = ["Ths sky is bluue blue.",  # right but garbled, sampled once, first
             "The sky is red.", "The sky is green.", "The sky is blue.", "the sky is blue", "The sky is green!"]
    scored = [score_candidate(t, "blue", None, w) for t in texts]
    best, worst = pick_pair(scored)
    assert best.text == "The sky is blue."  # the usual right answer (2 of 6 after normalising), not the first
    assert worst.text == "The sky is green."  # the model's most frequent mistake, not "red" (once, first)
    # without ties the score alone decides, whatever the counts
    best, worst = pick_pair([score_candidate(t, "blue", None, w) for t in ["Blue.", "Green.", "Green."]])
    assert (best.text, worst.text) == ("Blue.", "Green.")


def test_make_pairs_keeps_best_and_worst_and_drops_ties(tmp_path, monkeypatch):
    manifest = write_preference_data(tmp_path / "data", speech=False)
    model = OmniModel.from_pretrained(tiny_aligned_model(tmp_path / "model")).eval()
    rows = load_manifest(manifest)[:3]
    canned = [[("The sky is green.", None), ("The sky is blue.", None), ("Blue.", None)],
              [("Two plus three is five.", None), ("It is five.", None)],  # both right: a tie, dropped
              [("Yellow, of course.", None), ("A banana is purple.", None), ("", None)]]
    seen = {}

    def fake_sample(m, prompts, n, temperature, seed, max_new_tokens=48, speech=False, batch_size=16):
        seen["prompts"] = prompts
        return canned

    monkeypatch.setattr(P, "sample_answers", fake_sample)
    out = P.make_pairs(model, rows, str(manifest), CachedMedia(list(model.cfg.codebook_sizes), None), 3, 1.0, 0,
                       ScoreWeights(), speech_in=False, log=lambda s: None)
    assert [r["id"] for r in out] == ["pair-pair-0", "pair-pair-2"]
    assert out[0]["chosen"]["text"] == "The sky is blue." and out[0]["rejected"]["text"] == "The sky is green."
    assert out[1]["chosen"]["text"] == "Yellow, of course." and out[1]["rejected"]["text"] == "A banana is purple."
    assert out[0]["prompt"] == [{"role": "user", "text": "What color is the sky?"}]
    assert out[0]["meta"]["answer_key"] == "blue" and out[0]["meta"]["candidates"] == 3
    # the generation prompt is the training prompt up to the assistant header, with no targets
    p = seen["prompts"][0]
    assert (p.labels == IGNORE).all()
    assert model.tokenizer.decode(p.input_ids).endswith("<|im_start|>assistant\n")
    path = tmp_path / "pairs.jsonl"
    P.write_rows(out, str(path))
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["pair-pair-0", "pair-pair-2"]
    assert len(load_manifest(path)) == 2  # valid preference rows


def test_generation_prompt_cuts_spoken_prompt_before_the_response(tmp_path):
    manifest = write_preference_data(tmp_path / "data", speech=True)
    model = OmniModel.from_pretrained(tiny_aligned_model(tmp_path / "model")).eval()
    from omni.align.data import PairEncoder, PreferenceDataConfig
    from omni.data.index import RawRow

    enc = PairEncoder(model.tokenizer, model.token_ids, PreferenceDataConfig(train=[str(manifest)]))
    item = enc.pair(RawRow(str(manifest), 1, manifest.read_text().splitlines()[0]),
                    CachedMedia(list(model.cfg.codebook_sizes), None))
    prompt = generation_prompt(item.chosen)
    n = len(prompt)
    assert torch.equal(prompt.input_ids, item.chosen.input_ids[:n]) and (item.chosen.labels[n:] != IGNORE).any()
    frames = int((prompt.input_ids == model.token_ids.audio).sum())
    assert frames == prompt.audio_codes.shape[0] > 0 and not prompt.audio_target.any()


def test_pocketsphinx_round_trip_prefers_the_true_transcript(tmp_path_factory):
    """On a few synthetic-corpus clips, the WER of the recognised text against the clip's own transcript is lower
    than against another clip's transcript."""
    from omni.audio.io import load_audio
    from tests.helpers.speech_data import mini_corpus

    corpus = mini_corpus(tmp_path_factory)
    rows = [json.loads(x) for x in (corpus / "asr_dev.jsonl").read_text().splitlines()][:4]
    rec = PocketSphinxRecognizer()
    own, other = [], []
    for i, row in enumerate(rows):
        audio = load_audio(corpus / row["audio"], 22050)  # any rate: resampled to 16 kHz inside
        hyp = rec.transcribe([audio])[0]
        own.append(word_error_rate(row["text"], hyp))
        other.append(word_error_rate(rows[(i + 1) % len(rows)]["text"], hyp))
    assert np.mean(own) < np.mean(other), (own, other)


def test_spoken_candidates_are_scored_by_the_round_trip(tmp_path, monkeypatch):
    """--speech: each spoken candidate is rendered by the bundle's speech decoder and judged by PocketSphinx;
    the WER enters the score (chosen / rejected WERs are recorded), and a candidate whose speech the judge
    cannot match to its text loses to an equally right one that is not spoken."""
    from omni.bundle import tiny_bundle

    bundle = tiny_bundle(tmp_path / "bundle")
    manifest = write_preference_data(tmp_path / "data", speech=False)
    model = OmniModel.from_pretrained(tiny_aligned_model(tmp_path / "model")).eval()
    rows = load_manifest(manifest)[:1]
    sizes = list(model.cfg.codebook_sizes)
    frames = torch.stack([torch.randint(0, k, (30,)) for k in sizes], dim=1)  # (30, 8): noise-like speech
    canned = [[("The sky is blue.", frames), ("The sky is blue.", frames[:0]), ("The sky is green.", frames[:0])]]
    monkeypatch.setattr(P, "sample_answers", lambda *a, **k: canned)
    synth = P.bundle_synthesizer(str(bundle))
    heard = synth(frames)
    assert heard.sample_rate == 24000 and heard.samples.shape[0] > 0 and np.isfinite(heard.samples).all()
    out = P.make_pairs(model, rows, str(manifest), CachedMedia(sizes, None), 3, 1.0, 0,
                       ScoreWeights(min_gap=0.5), speech=True, speech_in=False, synthesize=synth,
                       recognizer=PocketSphinxRecognizer(), log=lambda s: None)
    assert len(out) == 1
    meta = out[0]["meta"]
    # the spoken candidate got a real WER from the judge, which enters its score; best and worst follow the scores
    scored = [score_candidate(t, "blue", f, ScoreWeights(), synth, PocketSphinxRecognizer()) for t, f in canned[0]]
    spoken = scored[0]
    assert spoken.wer is not None and spoken.wer > 0 and spoken.score == pytest.approx(1.0 - spoken.wer)
    assert scored[1].wer is None and scored[1].score == 1.0 and scored[2].score == 0.0
    best = max(range(3), key=lambda i: scored[i].score)
    worst = min(range(3), key=lambda i: scored[i].score)
    assert (meta["chosen_score"], meta["rejected_score"]) == (scored[best].score, scored[worst].score)
    assert (meta["chosen_wer"], meta["rejected_wer"]) == (scored[best].wer, scored[worst].wer)
    assert out[0]["rejected"]["text"] == canned[0][worst][0]


def test_spoken_chosen_and_rejected_are_saved_and_train_speech_dpo(tmp_path):
    """A spoken, rendered chosen / rejected answer is written with its codes (one safetensors shard beside the
    manifest) and its audio; the written pairs load as speech-out preference items whose assistant frames are
    exactly the sampled codes."""
    from omni.align.data import PairEncoder, PreferenceDataConfig, PreferenceDataset
    from omni.audio.io import load_audio
    from omni.data.media import ShapeMedia

    model = OmniModel.from_pretrained(tiny_aligned_model(tmp_path / "model")).eval()
    sizes = list(model.cfg.codebook_sizes)
    gen = torch.Generator().manual_seed(0)
    frames = {side: torch.stack([torch.randint(0, k, (n,), generator=gen) for k in sizes], dim=1)
              for side, n in (("chosen", 7), ("rejected", 5))}
    wave = Audio(np.linspace(-0.5, 0.5, 2400, dtype=np.float32), 24000)
    chosen = P.Candidate("The sky is blue.", frames["chosen"], True, 0.0, 4, 1.0, wave)
    rejected = P.Candidate("The sky is green.", frames["rejected"], False, 0.5, 4, -0.5, wave)
    text_only = P.Candidate("Blue.", None, True, None, 1, 1.0)
    assert P.response_turn(text_only) == {"role": "assistant", "text": "Blue."}
    row = {"id": "pair-x", "task": "preference", "prompt": [{"role": "user", "text": "What color is the sky?"}],
           "chosen": P.response_turn(chosen), "rejected": P.response_turn(rejected), "meta": {}}
    path = tmp_path / "out" / "pairs.jsonl"
    P.write_rows([row], str(path))
    written = json.loads(path.read_text())
    assert written["chosen"]["codes"] == {"path": "pairs.codes.safetensors", "key": "pair-x:chosen"}
    assert written["rejected"]["audio"] == "pairs_audio/pair-x.rejected.wav"
    heard = load_audio(path.parent / written["chosen"]["audio"], 24000)
    assert np.abs(heard.samples - wave.samples).max() < 1e-3  # PCM_16
    enc = PairEncoder(model.tokenizer, model.token_ids, PreferenceDataConfig(train=[str(path)], speech_in=False,
                                                                            speech_out=True), merge_size=2)
    data = PreferenceDataset([str(path)], enc, CachedMedia(sizes, None), ShapeMedia(sizes, None), "pairs")
    item = data[0]
    for side in ("chosen", "rejected"):
        ex = getattr(item, side)
        assert torch.equal(ex.audio_codes.reshape(-1, len(sizes))[-frames[side].shape[0]:], frames[side]), side


def test_image_questions_keep_their_image_in_the_generation_prompt(tmp_path_factory):
    """An image_qa row's image is row-level: the prompt cut before the answer (QA evaluation, make-pairs) still
    shows it to the model, exactly as training did (the first full tiny run answered image questions blind)."""
    from omni.align.pairs import encode_prompts, prompt_rows
    from tests.helpers.stage_data import stage_data

    data = stage_data(tmp_path_factory)
    model = OmniModel.from_pretrained(data / "model").eval()
    manifest = data / "image_qa.jsonl"
    rows = prompt_rows(load_manifest(manifest))
    assert rows and all(r.image is not None and r.image.startswith("images/") for r in rows)
    media = CachedMedia(list(model.cfg.codebook_sizes), model.cfg.vision)
    prompts = encode_prompts(model, rows[:2], str(manifest), media, speech_in=False, speech_out=False)
    for p in prompts:
        assert p.images is not None and p.images.grid_thw.shape[0] == 1  # one image
        placeholders = int((p.input_ids == model.token_ids.image).sum())
        assert placeholders == p.images.num_tokens(2)[0] > 0 and (p.labels == IGNORE).all()


def test_answer_rates_count_right_wrong_and_neither_and_keep_examples_of_each(tmp_path, monkeypatch):
    manifest = write_preference_data(tmp_path / "data", speech=False)
    model = OmniModel.from_pretrained(tiny_aligned_model(tmp_path / "model")).eval()
    rows = load_manifest(manifest)[:2]  # the sky (blue / green) and two plus three (five / seven)
    canned = [[("The sky is blue.", None), ("The sky is green.", None), ("Blue sky.", None), ("Sky.", None)],
              [("Two plus three is five.", None), ("It is seven.", None), ("No idea.", None), ("Five.", None)]]
    monkeypatch.setattr(P, "sample_answers", lambda *a, **k: canned)
    monkeypatch.setattr(P, "EXAMPLES_PER_KIND", 1)
    rates = P.answer_rates(model, rows, str(manifest), CachedMedia(list(model.cfg.codebook_sizes), None), n=4)
    assert rates.answers == 8
    assert (rates.right, rates.wrong, rates.neither) == pytest.approx((4 / 8, 2 / 8, 2 / 8))
    kinds = [("right" if e["right"] else "wrong" if e["wrong"] else "neither", e["answer"]) for e in rates.examples]
    assert kinds == [("right", "The sky is blue."), ("wrong", "The sky is green."), ("neither", "Sky.")]

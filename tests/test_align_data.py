"""Preference rows -> examples -> one batch; response log-probs of text and speech responses."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from omni.align.config import DPOConfig
from omni.align.data import (
    PairEncoder,
    PreferenceCollate,
    PreferenceDataConfig,
    PreferenceDataset,
    splice,
)
from omni.align.logps import response_logprobs
from omni.config import load_config
from omni.data.formatters import DataError
from omni.data.index import RawRow
from omni.data.media import CachedMedia, ShapeMedia
from omni.model import OmniModel
from omni.model.batch import IGNORE, collate
from tests.helpers.pref_data import tiny_aligned_model, write_preference_data
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("align_data")
    manifest = write_preference_data(base / "data", speech=True)
    model = OmniModel.from_pretrained(tiny_aligned_model(base / "model")).eval()
    return manifest, model


def dataset(manifest, model, mode="pairs", **cfg):
    dcfg = PreferenceDataConfig(train=[str(manifest)], **cfg)
    enc = PairEncoder(model.tokenizer, model.token_ids, dcfg, merge_size=2)
    sizes = list(model.cfg.codebook_sizes)
    return PreferenceDataset([str(manifest)], enc, CachedMedia(sizes, None), ShapeMedia(sizes, None), mode)


def test_batch_layout_chosen_then_rejected_prompt_masked(setup):
    manifest, model = setup
    ds = dataset(manifest, model)
    items = [ds[0], ds[1]]
    batch = PreferenceCollate(model.token_ids.pad, model.token_ids.audio)(items)
    ids = batch.model.input_ids
    assert ids.shape[0] == 4 and batch.ids == ["pair-0", "pair-1"]
    for row, ex in enumerate([items[0].chosen, items[1].chosen, items[0].rejected, items[1].rejected]):
        n = len(ex)
        assert torch.equal(ids[row, :n], ex.input_ids) and torch.equal(batch.model.labels[row, :n], ex.labels)
        assert (batch.model.labels[row, n:] == IGNORE).all()
    # chosen and rejected share the prompt; everything before the response is masked
    ch, rj = items[0].chosen, items[0].rejected
    start = int((ch.labels != IGNORE).nonzero()[0, 0])
    assert torch.equal(ch.input_ids[:start], rj.input_ids[:start])
    assert (ch.labels[:start] == IGNORE).all()
    assert "The sky is blue." in model.tokenizer.decode(ch.input_ids[start:])
    assert "The sky is green." in model.tokenizer.decode(rj.input_ids[start:])
    # prompt speech frames are inputs, response frames targets with all 8 codebooks
    a = model.token_ids.audio
    prompt_frames = int((ch.input_ids[:start] == a).sum())
    assert prompt_frames > 0 and not ch.audio_target[:prompt_frames].any() and ch.audio_target[prompt_frames:].all()
    assert ch.audio_codes.shape[-1] == 8


def test_speech_in_false_reads_the_text_and_speech_out_false_drops_reply_audio(setup):
    manifest, model = setup
    item = dataset(manifest, model, speech_in=False, speech_out=False)[0]
    assert item.chosen.audio_codes.shape[0] == 0 and item.rejected.audio_codes.shape[0] == 0
    assert "What color is the sky?" in model.tokenizer.decode(item.chosen.input_ids)


def _independent_logps(model, ex):
    """Response log-prob of one example computed independently: log_softmax of the text logits at every
    response target + for each response frame the log_softmax of each of its 8 code logits."""
    b = collate([ex], model.token_ids.pad)
    out = model(b, return_loss=False)
    lp = out.text_logits[0, :-1].float().log_softmax(-1)  # (T-1, V)
    tgt = b.labels[0, 1:]
    m = tgt != IGNORE
    text = lp[m].gather(-1, tgt[m, None]).sum()
    codes = b.audio_codes[b.audio_target]
    audio = sum(out.audio_logits[k].float().log_softmax(-1).gather(-1, codes[:, k:k + 1]).sum() for k in range(8))
    return float(text), float(audio), int(m.sum()), int(codes.shape[0])


def test_speech_response_logps_sum_text_tokens_and_eight_codebooks(setup):
    manifest, model = setup
    ds = dataset(manifest, model)
    items = [ds[i] for i in range(3)]
    batch = PreferenceCollate(model.token_ids.pad, model.token_ids.audio)(items)
    with torch.no_grad():
        res = response_logprobs(model(batch.model, return_loss=False), batch.model)
        rows = [it.chosen for it in items] + [it.rejected for it in items]
        for r, ex in enumerate(rows):  # padded 2B batch == each row alone, computed by hand
            text, audio, tokens, frames = _independent_logps(model, ex)
            assert float(res.text[r]) == pytest.approx(text, abs=1e-4)
            assert float(res.audio[r]) == pytest.approx(audio, abs=1e-4)
            assert int(res.num_tokens[r]) == tokens and int(res.num_frames[r]) == frames > 0
            assert float(res.sum[r]) == pytest.approx(text + audio, abs=1e-4)
            assert float(res.average[r]) == pytest.approx((text + audio) / tokens, abs=1e-5)


def test_kto_mismatched_pairs_equal_encoding_the_swapped_row(setup):
    manifest, model = setup
    ds = dataset(manifest, model, mode="unpaired")
    assert len(ds) == 12  # each pair = a desirable and an undesirable completion
    items = [ds[0], ds[3]]  # pair-0 chosen, pair-1 rejected
    assert [it.desirable for it in items] == [True, False]
    batch = PreferenceCollate(model.token_ids.pad, model.token_ids.audio)(items)
    assert batch.desirable.tolist() == [True, False] and batch.model.input_ids.shape[0] == 4
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    swapped = {**rows[1], "chosen": rows[0]["chosen"]}  # prompt of pair-1, completion of pair-0
    enc = ds.encoder
    want = enc.pair(RawRow(str(manifest), 2, json.dumps(swapped)), ds.media).chosen
    got = splice(items[1].example, items[0].example, model.token_ids.audio)
    for f in ("input_ids", "labels", "audio_codes", "audio_target"):
        assert torch.equal(getattr(got, f), getattr(want, f)), f
    n = len(want)
    assert torch.equal(batch.model.input_ids[3, :n], want.input_ids)  # KL row of item 1 = prompt 1 + completion 0


def test_bad_rows_are_named_and_counted(setup, tmp_path):
    manifest, model = setup
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    bad = dict(rows[0], id="no-codes")
    bad["chosen"] = {"role": "assistant", "text": "x", "audio": "a.flac"}  # audio without cached codes
    lines = [json.dumps(r) for r in rows] + [json.dumps(bad), json.dumps({"id": "wrong", "task": "asr"})]
    path = manifest.parent / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="2 of 8 rows"):
        dataset(path, model)
    ds = dataset(path, model, max_bad_fraction=0.5)
    assert len(ds) == 6 and ds.report.bad == 2
    assert any("no-codes" in p and "chosen" in p and "omni data tokenize" in p for p in ds.report.problems)
    with pytest.raises(DataError, match="no usable rows"):
        dataset(manifest, model, max_seq_len=16)


def test_config_checks_name_the_field(tmp_path):
    base = ["name=x", "init_from=m", "loop.output_dir=o", "data.train=[a.jsonl]"]
    with pytest.raises(Exception, match="reference.mode.*reference-free"):
        load_config("configs/stages/dpo.yaml", DPOConfig, overrides=[*base, "loss.type=simpo"])
    with pytest.raises(Exception, match="reference.mode.*lora"):
        load_config("configs/stages/dpo.yaml", DPOConfig, overrides=[*base, "reference.mode=adapters"])
    with pytest.raises(Exception, match="cannot be cached"):
        load_config("configs/stages/dpo.yaml", DPOConfig, overrides=[*base, "loss.type=kto", "reference.mode=cached"])
    with pytest.raises(Exception, match="beta"):
        load_config("configs/stages/dpo.yaml", DPOConfig, overrides=[*base, "loss.beta=0"])
    cfg = load_config("configs/stages/dpo.yaml", DPOConfig, overrides=base)
    assert dataclasses.asdict(cfg)["loss"]["type"] == "dpo"

"""Task formatters: prompts masked, targets where they belong, all 8 codebooks, tags, INTLV / ITTS, images, videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from omni.data.codes import CodesReader
from omni.data.formatters import (
    DataError,
    FormatConfig,
    RowContext,
    encode_sample,
    format_rows,
    spoken_sentences,
    tags,
)
from omni.data.manifest import load_manifest, parse_row
from omni.data.media import CachedMedia, ShapeMedia, image_shape
from omni.model import OmniModel
from omni.model.batch import IGNORE
from omni.model.vision_inputs import VisionProcessor, load_image
from tests.helpers.stage_data import stage_data
from tests.helpers.threads import one_torch_thread  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return stage_data(tmp_path_factory)


@pytest.fixture(scope="module")
def model(data):
    return OmniModel.from_pretrained(data / "model")


def encode(model, rows, task, manifest, cfg=FormatConfig(), line=1, seed=0, media=None):
    media = media or CachedMedia(model.cfg.codebook_sizes, model.cfg.vision)
    sample = format_rows(rows, task, RowContext(str(manifest), line, seed, media, cfg))
    return sample, encode_sample(sample, model.tokenizer, model.token_ids)


def text_of(model, ids) -> str:
    return model.tokenizer.decode(ids, skip_special_tokens=False)


def target_text(model, ex) -> str:
    return text_of(model, ex.labels[ex.labels != IGNORE])


def test_tags_are_whisper_style_with_dolphins_two_level_language():
    assert tags("transcribe", "zh", "CN") == "<|zh|><|CN|><|transcribe|>"
    assert tags("transcribe", "ru", "BY") == "<|ru|><|BY|><|transcribe|>"
    assert tags("translate", "de", None, "en") == "<|de|><|translate|><|en|>"
    assert tags("tts", None, None) == "<|tts|>"


def test_asr_masks_the_prompt_and_hears_the_cached_codes(data, model):
    manifest = data / "asr_train.codes.jsonl"
    row = load_manifest(manifest)[0]
    sample, ex = encode(model, [row], "asr", manifest)
    codes = CodesReader(manifest).load(row.codes)
    assert codes.shape[1] == 8 and torch.equal(ex.audio_codes, codes) and not ex.audio_target.any()
    prompt = text_of(model, ex.input_ids)
    assert f"<|{row.language}|><|{row.region}|><|transcribe|>" in prompt
    assert target_text(model, ex) == row.text + "<|im_end|>"  # only the transcript and the turn end are targets
    first_target = int((ex.labels != IGNORE).nonzero()[0])
    assert (ex.input_ids[:first_target] == model.token_ids.audio).sum() == codes.shape[0]  # the audio is prompt
    # plain-language prompts instead of tags
    _, plain = encode(model, [row], "asr", manifest, FormatConfig(tags=False))
    assert "Transcribe the speech." in text_of(model, plain.input_ids) and "<|transcribe|>" not in text_of(model, plain.input_ids)


def test_tts_targets_every_frame_with_all_8_codebooks(data, model):
    manifest = data / "tts_train.codes.jsonl"
    row = load_manifest(manifest)[0]
    _, ex = encode(model, [row], "tts", manifest)
    codes = CodesReader(manifest).load(row.codes)
    assert torch.equal(ex.audio_codes, codes) and ex.audio_target.all() and ex.audio_codes.shape[1] == 8
    ids, labels = ex.input_ids, ex.labels
    switch = int((ids == model.token_ids.audio_gen_start).nonzero()[0])
    assert labels[switch] == model.token_ids.audio_gen_start  # the modality switch is a target
    frames = (labels == model.token_ids.audio).sum()
    assert frames == codes.shape[0]  # each frame's "continue" decision is a target
    assert labels[(ids == model.token_ids.audio_end)][0] == model.token_ids.audio_end  # and the stop
    assert row.text in text_of(model, ids[:switch]) and (labels[:switch] == IGNORE).all()


def test_concatenated_clips_join_codes_and_transcripts(data, model):
    manifest = data / "asr_train.codes.jsonl"
    rows = load_manifest(manifest)[:3]
    _, ex = encode(model, rows, "asr", manifest)
    reader = CodesReader(manifest)
    assert torch.equal(ex.audio_codes, torch.cat([reader.load(r.codes) for r in rows]))
    assert target_text(model, ex) == " ".join(r.text for r in rows) + "<|im_end|>"


def test_spoken_chat_hears_the_user_and_answers_in_text_and_speech(data, model):
    manifest = data / "spoken_chat_train.codes.jsonl"
    row = load_manifest(manifest)[0]
    _, ex = encode(model, [row], None, manifest)  # the row's own task -> spoken_chat
    turns = row.conversation
    reader = CodesReader(manifest)
    codes = [reader.load(t.codes) for t in turns]
    assert torch.equal(ex.audio_codes, torch.cat(codes))
    expected_targets = torch.cat([torch.full((len(c),), t.role == "assistant") for t, c in zip(turns, codes)])
    assert torch.equal(ex.audio_target, expected_targets)
    everything = text_of(model, ex.input_ids)
    for t in turns:
        assert (t.text in everything) == (t.role == "assistant")  # what the user said is only heard
    # audio QA: the same row answered in text only
    _, qa = encode(model, [row], "audio_qa", manifest)
    assert not qa.audio_target.any() and len(qa.audio_codes) == sum(len(c) for t, c in zip(turns, codes) if t.role == "user")
    assert target_text(model, qa) == "".join(t.text + "<|im_end|>" for t in turns if t.role == "assistant")


def test_s2tt_translates_into_the_target_language(data, model):
    manifest = data / "asr_train.codes.jsonl"
    obj = json.loads(manifest.read_text().splitlines()[0])
    obj.update(task="s2tt", translation="Spiel etwas Jazz.", target_language="de")
    row = parse_row(json.dumps(obj), 1)
    _, ex = encode(model, [row], None, manifest)
    assert "<|translate|><|de|>" in text_of(model, ex.input_ids)
    assert target_text(model, ex) == "Spiel etwas Jazz.<|im_end|>"


def test_interleaved_speaks_about_a_quarter_of_the_sentences_deterministically(data, model):
    picks = [spoken_sentences(8, 0.25, seed=3, line=k) for k in range(200)]
    assert all(sum(p) == 2 for p in picks)
    assert picks == [spoken_sentences(8, 0.25, seed=3, line=k) for k in range(200)]
    assert picks != [spoken_sentences(8, 0.25, seed=4, line=k) for k in range(200)]
    assert np.mean(picks, axis=0).min() > 0.1  # every position gets spoken sometimes
    assert sum(spoken_sentences(3, 0.25, 0, 5)) == 1 and sum(spoken_sentences(1, 0.25, 0, 5)) == 0

    manifest = data / "interleaved_train.codes.jsonl"
    row = load_manifest(manifest)[0]
    _, ex = encode(model, [row], "interleaved", manifest, line=7, seed=1)
    spoken = spoken_sentences(len(row.segments), 0.25, 1, 7)
    reader = CodesReader(manifest)
    assert torch.equal(ex.audio_codes, torch.cat([reader.load(s.codes) for s, sp in zip(row.segments, spoken) if sp]))
    assert ex.audio_target.all() and (ex.labels[1:] != IGNORE).all() and ex.labels[0] == IGNORE  # a document
    text = text_of(model, ex.input_ids)
    for seg, sp in zip(row.segments, spoken):
        assert (seg.text in text) != sp  # a spoken sentence is replaced by its speech
    _, again = encode(model, [row], "interleaved", manifest, line=7, seed=1)
    assert torch.equal(again.input_ids, ex.input_ids)


def test_interleaved_tts_follows_each_sentence_with_its_speech(data, model):
    manifest = data / "interleaved_train.codes.jsonl"
    row = load_manifest(manifest)[0]
    _, ex = encode(model, [row], "interleaved_tts", manifest)
    ids, tid = ex.input_ids.tolist(), model.token_ids
    starts = [k for k, t in enumerate(ids) if t == tid.audio_gen_start]
    assert len(starts) == len(row.segments)
    prev = 0
    for seg, start in zip(row.segments, starts):
        assert text_of(model, ids[prev:start]).strip().endswith(seg.text)
        prev = ids.index(tid.audio_end, start) + 1
    assert ex.audio_target.all() and ex.audio_codes.shape == (sum(CodesReader(manifest).shape(s.codes)[0]
                                                                  for s in row.segments), 8)


def test_images_index_shapes_equal_the_processor(data, model):
    manifest = data / "image_caption.jsonl"
    shapes = ShapeMedia(model.cfg.codebook_sizes, model.cfg.vision)
    for row in load_manifest(manifest):
        sample, ex = encode(model, [row], None, manifest)
        _, measured = encode(model, [row], None, manifest, media=shapes)
        assert torch.equal(ex.input_ids, measured.input_ids)  # the index knows the exact length
        real = VisionProcessor(model.cfg.vision).images([load_image(data / row.image)])
        assert torch.equal(ex.images.grid_thw, real.grid_thw) and torch.equal(ex.images.pixel_values, real.pixel_values)
        assert int((ex.input_ids == model.token_ids.image).sum()) == real.num_tokens()[0]
        assert target_text(model, ex) == row.text + "<|im_end|>" and sample.task == "image_caption"
    h, w = 333, 517
    assert image_shape(h, w, model.cfg.vision).grid_thw.tolist() == \
        VisionProcessor(model.cfg.vision).images([np.zeros((h, w, 3), dtype=np.uint8)]).grid_thw.tolist()
    qa = load_manifest(data / "image_qa.jsonl")[0]
    _, ex = encode(model, [qa], None, data / "image_qa.jsonl")
    assert ex.images is not None and target_text(model, ex) == qa.conversation[1].text + "<|im_end|>"


def test_video_qa_shapes_equal_the_loader(tmp_path, model):
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(tmp_path / "clip.mp4"), (64, 48), fps=4, macro_block_size=16)
    writer.send(None)
    for k in range(12):
        writer.send(np.full((48, 64, 3), 20 * k, dtype=np.uint8).tobytes())
    writer.close()
    row = parse_row(json.dumps({"id": "v", "task": "video_qa", "video": "clip.mp4", "conversation": [
        {"role": "user", "text": "What happens?"}, {"role": "assistant", "text": "It gets brighter."}]}), 1)
    manifest = tmp_path / "v.jsonl"
    _, ex = encode(model, [row], None, manifest)
    _, measured = encode(model, [row], None, manifest, media=ShapeMedia(model.cfg.codebook_sizes, model.cfg.vision))
    assert ex.videos is not None and torch.equal(ex.input_ids, measured.input_ids)
    assert int((ex.input_ids == model.token_ids.video).sum()) == ex.videos.num_tokens()[0] > 0


def test_text_rows_are_documents_or_chats(data, model):
    rows = load_manifest(data / "text_train.jsonl")
    doc = next(r for r in rows if r.text is not None)
    chat = next(r for r in rows if r.conversation is not None)
    sample, ex = encode(model, [doc], None, data / "text_train.jsonl")
    eos = model.tokenizer.eos_token_id
    assert sample.document and ex.input_ids[0] == eos and ex.input_ids[-1] == eos
    assert target_text(model, ex) == doc.text + model.tokenizer.eos_token
    sample, ex = encode(model, [chat], None, data / "text_train.jsonl")
    assert not sample.document and target_text(model, ex) == chat.conversation[1].text + "<|im_end|>"


def test_bad_rows_raise_data_errors_naming_the_row(data, model, tmp_path):
    manifest = data / "asr_train.codes.jsonl"
    obj = json.loads(manifest.read_text().splitlines()[0])
    no_codes = parse_row(json.dumps({k: v for k, v in obj.items() if k != "codes"}), 1)
    with pytest.raises(DataError, match=f"row '{obj['id']}'.*no cached codes.*omni data tokenize"):
        encode(model, [no_codes], "asr", manifest)
    missing_key = parse_row(json.dumps({**obj, "codes": {**obj["codes"], "key": "nope"}}), 1)
    with pytest.raises(DataError, match="cannot read codes.*nope"):
        encode(model, [missing_key], "asr", manifest)
    small = CachedMedia([4] * 8, None)  # codes cached with a bigger codebook than the model has
    with pytest.raises(DataError, match="outside the codebooks"):
        encode(model, [load_manifest(manifest)[0]], "asr", manifest, media=small)
    with pytest.raises(DataError, match="no vision branch"):
        encode(model, load_manifest(data / "image_caption.jsonl")[:1], None, data / "image_caption.jsonl", media=small)
    pref = load_manifest(Path(str(data).replace("stage_data", "mini_corpus")) / "preference_train.jsonl")[0]
    with pytest.raises(DataError, match="preference rows are for DPO"):
        encode(model, [pref], None, manifest)
    with pytest.raises(DataError, match="missing translation"):
        encode(model, [load_manifest(manifest)[0]], "s2tt", manifest)

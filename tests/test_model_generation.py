"""Generation: KV cache == no cache, streaming == non-streaming, batch == one by one, transformers parity, beams."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from omni.model import (
    Audio,
    AudioFrame,
    AudioSegmentEnd,
    Finished,
    GenerationConfig,
    Message,
    OmniExample,
    SamplingConfig,
    TextPiece,
    collate,
)
from omni.model.beam import beam_text
from omni.model.generation import banned_in_text
from omni.model.tiny import tiny_model
from tests.helpers.threads import one_torch_thread  # noqa: F401


def _append(ex: OmniExample, token_ids: list[int], codes: torch.Tensor | None = None) -> OmniExample:
    """The example followed by ``token_ids`` (and frames, when the tokens hold <|audio|>)."""
    extra = torch.tensor(token_ids)
    codes = ex.audio_codes if codes is None else torch.cat([ex.audio_codes.reshape(-1, codes.shape[1]), codes])
    return OmniExample(torch.cat([ex.input_ids, extra]), torch.cat([ex.labels, torch.full_like(extra, -100)]),
                       codes, torch.zeros(codes.shape[0], dtype=torch.bool))


@pytest.fixture(scope="module")
def model():
    """A random tiny model nudged to switch to speech now and then and to end its segments after a few frames."""
    m = tiny_model("qwen2", vision=False)
    t = m.token_ids
    prompt = m.encode([Message("user", "Hello there")], add_generation_prompt=True)
    common = Counter(m.generate(prompt, max_new_tokens=40).tokens[0].tolist()).most_common(1)[0][0]
    w = m.backbone.lm_head.weight
    with torch.no_grad():
        w[t.audio_gen_start] = 1.5 * w[common]  # says the switch where it would say its favourite token
        w[t.audio_end] = w[t.audio] + 0.3 * torch.randn(w.shape[1], generator=torch.Generator().manual_seed(3))
    return m


@pytest.fixture(scope="module")
def prompts(model):
    t = model.token_ids
    g = torch.Generator().manual_seed(1)
    user_audio = torch.stack([torch.randint(0, v, (5,), generator=g) for v in model.cfg.codebook_sizes], -1)
    text = model.encode([Message("user", "Hello there")], add_generation_prompt=True)
    spoken = model.encode([Message("system", "Answer in speech."), Message("user", [Audio(user_audio)])],
                          add_generation_prompt=True)
    forced = _append(model.encode([Message("user", "Say: two plus three is five.")], add_generation_prompt=True),
                     [t.audio_gen_start])  # the reply starts in speech
    mid = _append(text, [t.audio_gen_start, t.audio, t.audio], user_audio[:2])  # resumes an open segment
    return [text, spoken, forced, mid]


def _frames_and_text(out, row=0):
    return out.tokens[row], out.frames[row], out.text[row]


def test_kv_cache_equals_no_cache(model, prompts):
    total_frames = 0
    for prompt in prompts:
        cached = model.generate(prompt, max_new_tokens=48, max_audio_frames=6, return_logits=True)
        plain = model.generate(prompt, max_new_tokens=48, max_audio_frames=6, use_cache=False, return_logits=True)
        assert torch.equal(cached.tokens, plain.tokens)
        torch.testing.assert_close(cached.logits, plain.logits, atol=1e-4, rtol=1e-4)  # not only the argmax
        assert torch.equal(cached.frames[0], plain.frames[0])
        assert cached.text == plain.text
        total_frames += cached.frames[0].shape[0]
    assert total_frames >= 6  # the comparison covers audio frames, not only text
    first = model.generate(prompts[0], max_new_tokens=48)
    assert len(first.segments[0]) >= 1 and first.text[0]  # the model itself switches to speech and back


def test_streaming_yields_what_generate_returns(model, prompts):
    for prompt in prompts:
        out = model.generate(prompt, max_new_tokens=48, max_audio_frames=6)
        events = list(model.stream(prompt, max_new_tokens=48, max_audio_frames=6))
        text = "".join(e.text for e in events if isinstance(e, TextPiece))
        frames = [e.codes for e in events if isinstance(e, AudioFrame)]
        assert text == out.text[0]
        assert torch.equal(torch.stack(frames) if frames else out.frames[0], out.frames[0])
        ends = [e for e in events if isinstance(e, AudioSegmentEnd)]
        assert len(ends) == len(out.segments[0])
        for seg_index, seg in enumerate(out.segments[0]):
            seg_frames = [e.codes for e in events if isinstance(e, AudioFrame) and e.segment == seg_index]
            assert torch.equal(torch.stack(seg_frames), seg)
        assert isinstance(events[-1], Finished) and events[-1].reason == out.finish_reason[0]


def test_stream_interleaves_text_and_frames_in_order(model, prompts):
    events = list(model.stream(prompts[0], max_new_tokens=48, max_audio_frames=6))
    kinds = [type(e).__name__ for e in events]
    first_frame = kinds.index("AudioFrame")
    assert "TextPiece" in kinds[:first_frame]  # text came out before the speech started
    assert "AudioSegmentEnd" in kinds[first_frame:]


def test_batch_with_left_padding_equals_one_by_one(model, prompts):
    lengths = {len(p) for p in prompts}
    assert len(lengths) == len(prompts)  # mixed prompt lengths
    cfg = GenerationConfig(max_new_tokens=40, max_audio_frames=5, return_logits=True)
    batch = model.generate(prompts, cfg)
    for row, prompt in enumerate(prompts):
        alone = model.generate(prompt, cfg)
        n = alone.tokens.shape[1]
        assert torch.equal(batch.tokens[row, :n], alone.tokens[0])
        torch.testing.assert_close(batch.logits[row, :n], alone.logits[0], atol=1e-4, rtol=1e-4)
        assert (batch.tokens[row, n:] == model.token_ids.pad).all()
        assert torch.equal(batch.frames[row], alone.frames[0])
        assert batch.text[row] == alone.text[0] and batch.finish_reason[row] == alone.finish_reason[0]
    # the batched stream tags each event with its row and agrees too
    events = list(model.stream(prompts, cfg))
    for row in range(len(prompts)):
        text = "".join(e.text for e in events if isinstance(e, TextPiece) and e.row == row)
        assert text == batch.text[row]


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_text_only_greedy_equals_transformers_generate(model, prompts, penalty):
    t = model.token_ids
    prompt = prompts[0]
    ours = model.generate(prompt, max_new_tokens=30, allow_audio=False, return_logits=True,
                          text=SamplingConfig(repetition_penalty=penalty))
    banned = [t.audio, t.audio_end, t.audio_start, t.audio_gen_start, t.image_start, t.image, t.image_end,
              t.video_start, t.video, t.video_end]
    with torch.no_grad():
        ref = model.backbone.generate(
            input_ids=prompt.input_ids.unsqueeze(0), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=30, do_sample=False, suppress_tokens=banned, repetition_penalty=penalty,
            eos_token_id=list(t.eos), pad_token_id=t.pad, output_logits=True, return_dict_in_generate=True,
        )
    new = ref.sequences[0, len(prompt):]
    assert torch.equal(ours.tokens[0, :len(new)], new)
    torch.testing.assert_close(ours.logits[0, :len(new)], torch.cat(ref.logits), atol=1e-4, rtol=1e-4)
    assert not (ours.tokens == t.audio).any()


def test_sampling_is_seeded_and_top_k_1_is_greedy(model, prompts):
    sample = SamplingConfig(do_sample=True, temperature=1.5, top_p=0.9)
    cfg = GenerationConfig(max_new_tokens=30, max_audio_frames=4, text=sample, audio=sample, seed=7)
    a, b = model.generate(prompts[2], cfg), model.generate(prompts[2], cfg)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.frames[0], b.frames[0])
    c = model.generate(prompts[2], cfg, seed=8)
    assert not (torch.equal(a.tokens, c.tokens) and torch.equal(a.frames[0], c.frames[0]))
    greedy = model.generate(prompts[2], max_new_tokens=30, max_audio_frames=4)
    top1 = SamplingConfig(do_sample=True, top_k=1)
    sampled = model.generate(prompts[2], max_new_tokens=30, max_audio_frames=4, text=top1, audio=top1, seed=3)
    assert torch.equal(greedy.tokens, sampled.tokens) and torch.equal(greedy.frames[0], sampled.frames[0])


def test_audio_segment_length_limit_and_stop_tokens(model, prompts):
    t = model.token_ids
    out = model.generate(prompts[2], max_new_tokens=30, max_audio_frames=2)
    assert out.segments[0] and all(seg.shape[0] <= 2 for seg in out.segments[0])
    first_end = int((out.tokens[0] == t.audio_end).nonzero()[0])
    assert first_end <= 2
    # a stop token ends the row: nothing but padding after it
    free = model.generate(prompts[0], max_new_tokens=30)
    stop = int(free.tokens[0, 3])
    stopped = model.generate(prompts[0], max_new_tokens=30, stop_token_ids=[stop])
    assert stopped.finish_reason == ["stop"] and stopped.tokens.shape[1] <= 4
    assert stopped.tokens[0, -1] == stop and free.finish_reason == ["length"]
    ignoring = model.generate(prompts[0], max_new_tokens=30, stop_token_ids=[stop], ignore_eos=True)
    assert torch.equal(ignoring.tokens, free.tokens)
    # segments are kept open up to min_audio_frames
    exact = model.generate(prompts[2], max_new_tokens=30, min_audio_frames=4, max_audio_frames=4)
    assert exact.segments[0] and all(seg.shape[0] == 4 for seg in exact.segments[0])


def test_audio_repetition_penalty_avoids_repeated_codes(model, prompts):
    # min_audio_frames == max_audio_frames: every segment runs 8 frames, whatever codes the penalty picks
    cfg = GenerationConfig(max_new_tokens=20, min_audio_frames=8, max_audio_frames=8)
    plain = model.generate(prompts[1], cfg).segments[0]
    penal = model.generate(prompts[1], cfg, audio=SamplingConfig(repetition_penalty=1e4)).segments[0]
    windowed = model.generate(prompts[1], cfg, audio=SamplingConfig(repetition_penalty=1e4,
                                                                     repetition_window=1)).segments[0]
    assert plain[0].shape[0] == penal[0].shape[0] == 8
    assert len(set(plain[0][:, 0].tolist())) < 8  # level-0 codes repeat without the penalty
    assert len(set(penal[0][:, 0].tolist())) == 8  # and never with it
    assert len(penal) == 2 and set(penal[1][:, 0].tolist()) & set(penal[0][:, 0].tolist())  # per segment only
    w0 = windowed[0][:, 0]
    assert (w0[1:] != w0[:-1]).all()  # a window of 1 frame: only the previous frame's code is penalised


def test_prompt_must_be_left_padded(model, prompts):
    right = collate(prompts[:2], model.token_ids.pad, padding_side="right")
    with pytest.raises(ValueError, match="left-padded"):
        model.generate(right)


def test_one_beam_is_the_decoding_loops_greedy_text(model, prompts):
    # the spoken prompt puts audio frames in the embeddings; batched with a text prompt it is left-padded
    pair = prompts[:2]
    loop = model.generate(pair, max_new_tokens=25, allow_audio=False).text
    assert beam_text(model, pair, num_beams=1, max_new_tokens=25) == loop
    assert [beam_text(model, p, num_beams=1, max_new_tokens=25)[0] for p in pair] == loop


def test_beam_search_equals_transformers_on_token_ids(model, prompts):
    t = model.token_ids
    prompt = prompts[0]  # text only: transformers can take its ids
    with torch.no_grad():
        ref = model.backbone.generate(
            input_ids=prompt.input_ids.unsqueeze(0), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=20, num_beams=4, do_sample=False, early_stopping=True, length_penalty=1.0,
            suppress_tokens=banned_in_text(model, allow_audio=False), eos_token_id=list(t.eos), pad_token_id=t.pad,
        )[0, len(prompt):].tolist()
    cut = next((i for i, tok in enumerate(ref) if tok in set(t.eos)), len(ref))
    expected = model.tokenizer.decode(ref[:cut], skip_special_tokens=True)
    greedy = model.generate(prompt, max_new_tokens=20, allow_audio=False).text[0]
    beams = beam_text(model, prompt, num_beams=4, max_new_tokens=20)
    assert beams == [expected]
    assert beams != [greedy]  # the random model's best beam is not its greedy path: the search did something
    with pytest.raises(ValueError, match="num_beams"):
        beam_text(model, prompt, num_beams=0, max_new_tokens=5)

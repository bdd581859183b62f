"""SpeechChat engine: reply structure, streaming == whole synthesis, history, steps to first audio, concurrency, limits."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from omni.audio.io import AudioError
from omni.bundle import load_bundle
from omni.model import Audio, Message, Text
from serve.config import ServeConfig
from serve.errors import EngineBusy, InputError, UnknownVoice
from serve.pipeline import AudioDelta, ReplyDone, SpeechChat, TextDelta, UserTurn
from serve.speech_policy import SpeechSwitch
from tests.helpers.threads import one_torch_thread  # noqa: F401
from tests.serve.conftest import check_audio, speech_like

CFG = ServeConfig(default_max_tokens=40, max_tokens=64, concurrency=8)


@pytest.fixture(scope="module")
def bundle(tiny_bundle_dir):
    return load_bundle(tiny_bundle_dir)


@pytest.fixture(scope="module")
def engine(bundle):
    return SpeechChat(bundle, CFG)


def _turn(seed: int, text: str = "") -> UserTurn:
    return UserTurn(text=text, audio=speech_like(1.5, seed=seed), sample_rate=16000)


def test_speech_reply_streams_text_and_audio(engine):
    session = engine.new_session()
    events = list(engine.chat(session, _turn(0)))
    kinds = [type(e) for e in events]
    assert TextDelta in kinds and AudioDelta in kinds and kinds[-1] is ReplyDone and kinds.count(ReplyDone) == 1
    reply = events[-1].reply
    assert reply.text == "".join(e.text for e in events if isinstance(e, TextDelta))
    streamed = np.concatenate([e.samples for e in events if isinstance(e, AudioDelta)])
    assert np.array_equal(streamed, reply.audio)
    check_audio(reply.audio, reply.sample_rate)
    frames = sum(s.shape[0] for s in reply.segments)
    assert len(reply.audio) == frames * engine.decoder.samples_per_token  # 1920 samples per 80 ms frame
    # the assistant turn keeps text and speech codes in the order they were generated
    parts = reply.message.segments()
    assert "".join(p.text for p in parts if isinstance(p, Text)) == reply.text
    assert [p.codes.shape for p in parts if isinstance(p, Audio)] == [s.shape for s in reply.segments]
    m = reply.metrics
    assert m.ttft_s is not None and m.ttfa_s is not None and m.ttfa_s <= m.total_s
    assert m.rtf == pytest.approx(m.total_s / m.audio_s)
    assert m.llm_steps_first_audio <= 16 and m.audio_frames == frames


def test_first_audio_within_16_llm_steps_for_many_prompts(engine):
    for seed in range(6):
        settings = engine.settings(seed=seed, system_prompt="" if seed % 2 else "Be brief.")
        reply = engine.respond(engine.with_system(settings, [engine.user_message(_turn(seed, f"question {seed}"))]),
                               settings)
        assert reply.segments, f"prompt {seed}: no speech"
        assert reply.metrics.llm_steps_first_audio <= 16, (seed, reply.metrics)


def test_streamed_audio_equals_whole_segment_synthesis(bundle, engine):
    whole = SpeechChat(bundle, replace(CFG, stream_audio=False))
    messages = engine.with_system(engine.settings(), [engine.user_message(_turn(3))])
    a, b = engine.respond(messages, engine.settings()), whole.respond(messages, whole.settings())
    assert a.text == b.text and all(torch.equal(x, y) for x, y in zip(a.segments, b.segments))
    assert a.audio.shape == b.audio.shape
    # chunked + cross-faded == whole synthesis, up to the windows' bounded context (the decoder's own streaming
    # tolerance, tests/test_decoder_streaming.py): under 0.01% of the signal here
    rel = float(np.linalg.norm(a.audio - b.audio) / np.linalg.norm(b.audio))
    assert rel < 0.01, rel
    # and the unstreamed reply is exactly what the speech decoder makes of each segment's codes
    voice = engine.voices.resolve(None)
    direct = np.concatenate([engine.decoder.synthesize(s, speaker=voice).numpy() for s in a.segments])
    np.testing.assert_allclose(b.audio, direct, atol=1e-5)


def test_plan_run_serially_gives_the_streamed_reply(engine):
    """model.generate on the engine's plan (no threads) makes the same tokens and speech as the streamed reply."""
    settings = engine.settings()
    messages = engine.with_system(settings, [engine.user_message(_turn(6, "hello"))])
    streamed = engine.respond(messages, settings)
    plan = engine.plan(messages, settings)
    with torch.inference_mode():
        out = engine.model.generate(plan.prompt, plan.gen, logits_processor=plan.policy)
    assert out.text[0] == streamed.text and out.finish_reason[0] == streamed.finish_reason
    assert [s.shape for s in out.segments[0]] == [s.shape for s in streamed.segments]
    assert all(torch.equal(a, b) for a, b in zip(out.segments[0], streamed.segments))
    assert plan.policy.calls == streamed.metrics.llm_steps


def test_text_mode_and_speech_first(engine):
    text_only = engine.respond([engine.user_message(_turn(1))], engine.settings(reply_mode="text"))
    assert text_only.text and text_only.audio.size == 0 and not text_only.segments
    assert text_only.metrics.ttfa_s is None and text_only.metrics.rtf is None
    events = list(engine.speak("Hello there."))
    reply = events[-1].reply
    assert isinstance(reply.message.segments()[0], Audio)  # the reply starts in speech
    check_audio(reply.audio, reply.sample_rate)
    # first chunk = first_chunk_tokens (6) + lookahead (2) frames, generated from the first step on
    dec = engine.decoder.cfg
    assert reply.metrics.llm_steps_first_audio == dec.first_chunk_tokens + dec.lookahead_tokens


def test_history_is_kept_and_fed_back(engine):
    session = engine.new_session(system_prompt="Be brief.")
    first = list(engine.chat(session, _turn(4, "first")))[-1].reply
    assert len(session.history) == 2 and session.history[1] is first.message
    second = list(engine.chat(session, _turn(5, "second")))[-1].reply
    assert [m.role for m in session.history] == ["user", "assistant", "user", "assistant"]
    expected = engine.model.encode([Message("system", "Be brief."), *session.history[:3]], add_generation_prompt=True)
    assert second.metrics.prompt_tokens == len(expected)  # the second prompt holds the whole first turn
    session.clear()
    assert session.history == []


def test_context_limit_drops_oldest_turns_and_refuses_one_long_turn(bundle):
    small = SpeechChat(bundle, replace(CFG, max_context_tokens=60, default_max_tokens=8))
    session = small.new_session(system_prompt="", reply_mode="text")
    for i in range(4):
        reply = list(small.chat(session, UserTurn(text=f"turn {i} " * 3)))[-1].reply
        assert reply.metrics.prompt_tokens <= 60
    assert len(session.history) == 8  # the session keeps everything; only the prompt is cut
    with pytest.raises(InputError, match="too long: .* > max_context_tokens"):
        list(small.chat(session, UserTurn(audio=speech_like(5.0), sample_rate=16000)))


def test_bad_inputs_are_clear_errors(engine):
    with pytest.raises(InputError, match="empty message"):
        engine.user_message(UserTurn())
    with pytest.raises(UnknownVoice, match="unknown voice 'nobody'; available voices: flite:rms"):
        engine.new_session(voice="nobody")
    with pytest.raises(AudioError, match="too long: 61.0 s > limit 60 s"):
        engine.user_message(UserTurn(audio=np.full(61 * 16000, 0.1, np.float32), sample_rate=16000))
    with pytest.raises(AudioError, match="silent"):
        engine.user_message(UserTurn(audio=np.zeros(16000, np.float32), sample_rate=16000))
    with pytest.raises(AudioError, match="0-length"):
        engine.user_message(UserTurn(audio=np.zeros(0, np.float32), sample_rate=16000))
    with pytest.raises(InputError, match="max_tokens must be in"):
        engine.settings(max_tokens=1000)


def test_image_turn(engine):
    from PIL import Image

    img = Image.fromarray((np.random.default_rng(0).random((56, 84, 3)) * 255).astype(np.uint8))
    message = engine.user_message(UserTurn(text="What is this?", images=[img]))
    reply = engine.respond([message], engine.settings(reply_mode="text", max_tokens=8))
    assert reply.metrics.prompt_tokens > 56 * 84 // (14 * 14 * 4)  # the image's placeholders are in the prompt


def test_concurrent_sessions_keep_their_own_history(engine):
    """8 sessions at once give exactly what each gives alone (greedy decoding: any mixing would change it)."""

    def conversation(i: int):
        session = engine.new_session(system_prompt=f"You are assistant number {i}.", max_tokens=24)
        replies = [list(engine.chat(session, _turn(10 + i, f"hello {i}")))[-1].reply,
                   list(engine.chat(session, UserTurn(text=f"and again, {i}")))[-1].reply]
        return session, replies

    alone = [conversation(i) for i in range(8)]
    results: dict[int, tuple] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(i: int):
        try:
            start.wait()
            results[i] = conversation(i)
        except BaseException as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(results) == list(range(8))
    for i in range(8):
        (s_ref, ref), (s_got, got) = alone[i], results[i]
        assert len(s_got.history) == 4 and s_got.history[2].segments()[0].text == f"and again, {i}"
        assert torch.equal(s_got.history[0].segments()[0].codes, s_ref.history[0].segments()[0].codes)
        for a, b in zip(ref, got):
            assert a.text == b.text and len(a.segments) == len(b.segments)
            assert all(torch.equal(x, y) for x, y in zip(a.segments, b.segments))
            np.testing.assert_allclose(a.audio, b.audio, atol=1e-5)
    assert engine.active == 0


def test_cancel_frees_the_slot_and_busy_is_an_error(bundle):
    one = SpeechChat(bundle, replace(CFG, concurrency=1, queue_size=0, default_max_tokens=64))
    session = one.new_session()
    events = one.chat(session, _turn(7))
    next(events)  # generating: the only slot is taken
    with pytest.raises(EngineBusy, match="server busy"):
        next(one.reply([one.user_message(_turn(8))], one.settings()))
    events.close()  # the client went away: the reply stops and the slot frees
    deadline = time.time() + 30
    while one.active and time.time() < deadline:
        time.sleep(0.05)
    assert one.active == 0 and session.history == []  # a cancelled turn is not kept
    assert list(one.chat(session, _turn(9)))[-1].reply.audio.size > 0


def test_speech_switch_policy_by_hand():
    """Forced switch after a sentence end / the token budget; the stop probability moves to the switch."""
    from omni.model.special_tokens import TokenIds

    ids = TokenIds(audio_start=10, audio_gen_start=11, audio=12, audio_end=13, image_start=14, image=15,
                   image_end=16, video_start=17, video=18, video_end=19, im_start=1, im_end=2, pad=0, eos=(2,))
    ends = torch.zeros(20, dtype=torch.bool)
    ends[5] = True  # token 5 is "."
    p = SpeechSwitch(ids, ends, "sentence", first_tokens=3, later_tokens=4, prompt_len=2, prompt_last=7)
    logits = torch.log(torch.tensor([[0.1, 0.0, 0.3, *[0.6 / 17] * 17]]))  # p(stop)=0.3, p(switch)=0.6/17
    out = p(torch.tensor([[1, 7]]), logits)  # nothing said yet: unchanged
    assert torch.equal(out, logits)
    out = p(torch.tensor([[1, 7, 4]]), logits)  # one text token: stop -> switch
    assert out[0, 2] == float("-inf")
    assert torch.exp(out[0, 11]).item() == pytest.approx(0.3 + 0.6 / 17)
    out = p(torch.tensor([[1, 7, 4, 5]]), logits)  # "." ends a sentence: switch forced
    assert out[0].argmax().item() == 11 and torch.isinf(out[0]).sum() == 19
    p(torch.tensor([[1, 7, 4, 5, 11]]), logits)  # in speech: no steering
    assert torch.equal(p(torch.tensor([[1, 7, 4, 5, 11, 12]]), logits), logits)
    p(torch.tensor([[1, 7, 4, 5, 11, 12, 13]]), logits)
    for n in range(1, 4):  # later segments: forced after 4 tokens
        out = p(torch.tensor([[1, 7, 4, 5, 11, 12, 13, *[4] * n]]), logits)
        assert out[0, 4] > float("-inf")
    out = p(torch.tensor([[1, 7, 4, 5, 11, 12, 13, 4, 4, 4, 4]]), logits)
    assert out[0].argmax().item() == 11 and torch.isinf(out[0]).sum() == 19
    assert p.calls == 10  # one call per step (the 10 calls above)

"""The generation loop's logits_processor hook: what it sees, that it steers both modes, and that a no-op changes nothing."""

from __future__ import annotations

import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    SuppressTokensLogitsProcessor,
)

from omni.model import AudioFrame, Message, SamplingConfig, TextPiece
from omni.model.tiny import tiny_model
from tests.helpers.threads import one_torch_thread  # noqa: F401


def _model_and_prompt():
    m = tiny_model("qwen2", vision=False)
    return m, m.encode([Message("user", "Hello there")], add_generation_prompt=True)


def test_identity_processor_changes_nothing_and_sees_the_sequence():
    m, prompt = _model_and_prompt()
    seen = []

    def spy(ids, logits):
        seen.append(ids.clone())
        return logits

    plain = m.generate(prompt, max_new_tokens=12, ignore_eos=True)
    hooked = m.generate(prompt, max_new_tokens=12, ignore_eos=True, logits_processor=spy)
    assert torch.equal(plain.tokens, hooked.tokens)
    assert len(seen) == 12  # once per step, before the choice
    n = prompt.input_ids.shape[0]
    assert torch.equal(seen[0][0], prompt.input_ids)  # first call: the prompt alone
    assert torch.equal(seen[-1][0, n:], plain.tokens[0, :11])  # then prompt + every token chosen so far


def test_processor_forces_speech_then_stops_it():
    """Force the modality switch at step 0, keep the segment open 3 frames, then force <|audio_end|>."""
    m, prompt = _model_and_prompt()
    t = m.token_ids

    def steer(ids, logits):
        step = ids.shape[1] - prompt.input_ids.shape[0]
        out = torch.full_like(logits, float("-inf"))
        if step == 0:
            out[:, t.audio_gen_start] = 0.0
        elif step <= 3:
            out[:, t.audio] = 0.0
        elif step == 4:
            out[:, t.audio_end] = 0.0
        else:
            return logits
        return out

    out = m.generate(prompt, max_new_tokens=10, logits_processor=steer)
    assert out.tokens[0, :5].tolist() == [t.audio_gen_start, t.audio, t.audio, t.audio, t.audio_end]
    assert [s.shape for s in out.segments[0][:1]] == [(3, 8)]
    events = list(m.stream(prompt, max_new_tokens=10, logits_processor=steer))
    assert [type(e).__name__ for e in events[:3]] == ["AudioFrame"] * 3
    assert torch.equal(torch.stack([e.codes for e in events if isinstance(e, AudioFrame)]), out.frames[0])


def test_a_processor_forcing_one_token_works_when_sampling():
    """Sampled generation under a processor that leaves one token finite (the serving speech switch does): neither
    mode's choice ever samples from a row of nothing but -inf."""
    m, prompt = _model_and_prompt()
    t = m.token_ids

    def force_switch(ids, logits):
        out = torch.full_like(logits, float("-inf"))
        out[:, t.audio_gen_start] = 0.0
        return out if ids.shape[1] == prompt.input_ids.shape[0] else logits

    out = m.generate(prompt, max_new_tokens=8, logits_processor=force_switch, seed=0,
                     text=SamplingConfig(do_sample=True))
    assert out.tokens[0, 0] == t.audio_gen_start and (out.tokens[0, 1:] == t.audio).any()


def test_transformers_logits_processor_works_as_is():
    """A transformers LogitsProcessorList plugs in unchanged: the suppressed tokens never appear."""
    m, prompt = _model_and_prompt()
    plain = m.generate(prompt, max_new_tokens=16, ignore_eos=True, allow_audio=False)
    banned = sorted(set(plain.tokens[0].tolist()))[:3]
    proc = LogitsProcessorList([SuppressTokensLogitsProcessor(banned, device="cpu")])
    out = m.generate(prompt, max_new_tokens=16, ignore_eos=True, allow_audio=False, logits_processor=proc)
    assert not set(out.tokens[0].tolist()) & set(banned)
    text = "".join(e.text for e in m.stream(prompt, max_new_tokens=16, ignore_eos=True, allow_audio=False,
                                          logits_processor=proc) if isinstance(e, TextPiece))
    assert text == out.text[0]

"""Static KV caches (and their compiled steps) decode exactly what the dynamic caches decode."""

from __future__ import annotations

import pytest
import torch

from omni.model import AudioFrame, TextPiece, collate
from omni.model.generation import GenerationConfig, decode_plan
from omni.model.static_decode import POOL, StaticLLM, length_bucket, static_depth
from omni.model.tiny import tiny_model
from tests.helpers.threads import one_torch_thread  # noqa: F401
from tests.test_model_generation import model, prompts  # noqa: F401 (fixtures)

COMMON = dict(max_new_tokens=40, max_audio_frames=6, return_logits=True)


def _same(a, b):
    assert torch.equal(a.tokens, b.tokens)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-4, rtol=1e-4)  # not only the argmax
    for fa, fb in zip(a.frames, b.frames, strict=True):
        assert torch.equal(fa, fb)
    assert a.text == b.text and a.finish_reason == b.finish_reason


def test_static_cache_equals_dynamic_one_by_one(model, prompts):  # noqa: F811
    frames = 0
    for prompt in prompts:
        dynamic = model.generate(prompt, cache_implementation="dynamic", **COMMON)
        static = model.generate(prompt, cache_implementation="static", compile="off", **COMMON)
        _same(dynamic, static)
        frames += static.frames[0].shape[0]
    assert frames >= 6  # audio frames (the depth transformer's static path) are compared, not only text


def test_static_cache_equals_dynamic_left_padded_batch(model, prompts):  # noqa: F811
    batch = collate(list(prompts), model.token_ids.pad, padding_side="left")
    assert not bool(batch.attention_mask.all())  # rows of different lengths: padding is masked in the buffer
    _same(model.generate(batch, cache_implementation="dynamic", **COMMON),
          model.generate(batch, cache_implementation="static", compile="off", **COMMON))


def test_compiled_steps_are_whole_graphs_with_the_same_result(model, prompts):  # noqa: F811
    """``trace`` runs each step through dynamo with fullgraph=True (a graph break is an error), as CUDA graphs need."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    prompt = prompts[2]  # the reply starts in speech: LLM steps and depth levels both run
    traced = model.generate(prompt, cache_implementation="static", compile="trace", **COMMON)
    _same(model.generate(prompt, cache_implementation="dynamic", **COMMON), traced)
    assert traced.frames[0].shape[0] >= 1 and traced.tokens.shape[1] >= 10
    # one graph for every LLM step and one for every depth level: nothing retraced per step or per level
    assert counters["stats"]["unique_graphs"] == 2
    torch._dynamo.reset()


def test_decoders_are_kept_reset_between_calls_and_never_shared(model, prompts):  # noqa: F811
    first = model.generate(prompts[0], cache_implementation="static", compile="off", **COMMON)
    n = prompts[0].input_ids.shape[0] + COMMON["max_new_tokens"]
    key = (1, length_bucket(n), "off", model.device, model.dtype, False)
    kept = [d for k, d in POOL.kept(model.backbone) if k == key]
    assert len(kept) == 1 and isinstance(kept[0], StaticLLM) and kept[0].max_len == length_bucket(n)
    again = model.generate(prompts[0], cache_implementation="static", compile="off", **COMMON)
    assert [d for k, d in POOL.kept(model.backbone) if k == key] == kept  # the same buffers (what a graph replays)
    _same(first, again)  # nothing of the first call leaks into the second
    # two generations at once (a server's slots): each gets its own cache and decodes what it would alone
    short = dict(max_new_tokens=24, max_audio_frames=6)
    streams = [model.stream(p, cache_implementation="static", compile="off", **short) for p in prompts[:2]]
    events = [[next(s)] for s in streams]  # both started: each holds a cache now
    assert len([d for k, d in POOL.kept(model.backbone) if k == key]) == 2
    for got, s in zip(events, streams, strict=True):
        got.extend(s)
    for got, prompt in zip(events, prompts[:2], strict=True):
        alone = model.generate(prompt, cache_implementation="dynamic", **short)
        assert "".join(e.text for e in got if isinstance(e, TextPiece)) == alone.text[0]
        frames = [e.codes for e in got if isinstance(e, AudioFrame)]
        assert torch.equal(torch.stack(frames) if frames else alone.frames[0], alone.frames[0])
    with static_depth(model.audio_head, 1, "off") as d1, static_depth(model.audio_head, 1, "off") as d2:
        assert d1 is not d2
    # caches made under inference_mode (the server's threads) are inference tensors: kept apart from the others
    with torch.inference_mode():
        served = model.generate(prompts[0], cache_implementation="static", compile="off", **COMMON)
    _same(served, model.generate(prompts[0], cache_implementation="static", compile="off", **COMMON))


def test_static_cache_rejects_overflow(model, prompts):  # noqa: F811
    llm = StaticLLM(model.backbone, 1, 8)
    emb = torch.zeros(1, 8, model.backbone.config.hidden_size)
    with pytest.raises(ValueError, match="does not fit"):
        llm.prefill(emb, torch.ones(1, 8, dtype=torch.long), torch.arange(8)[None])
    llm.prefill(emb[:, :7], torch.ones(1, 7, dtype=torch.long), torch.arange(7)[None])
    llm.step(emb[:, :1], torch.tensor([[7]]))
    with pytest.raises(ValueError, match="full"):
        llm.step(emb[:, :1], torch.tensor([[8]]))


def test_length_bucket_and_plan():
    assert [length_bucket(n) for n in (1, 256, 257, 600, 1025)] == [256, 256, 512, 1024, 2048]
    auto, static = GenerationConfig(), GenerationConfig(cache_implementation="static")
    assert decode_plan(auto, cuda=False, compiles_whole=True) == (False, "off")  # the CPU: dynamic
    assert decode_plan(auto, cuda=True, compiles_whole=True) == (True, "reduce-overhead")  # CUDA graphs
    assert decode_plan(auto, cuda=True, compiles_whole=False) == (True, "off")  # static, not compiled
    assert decode_plan(static, cuda=False, compiles_whole=True) == (True, "off")
    assert decode_plan(GenerationConfig(cache_implementation="static", compile="trace"), False, True) == (True, "trace")
    assert decode_plan(GenerationConfig(cache_implementation="dynamic"), True, True) == (False, "off")
    assert decode_plan(GenerationConfig(use_cache=False), True, True) == (False, "off")
    assert getattr(tiny_model("qwen2", vision=False).backbone, "_can_compile_fullgraph", False)

"""Streaming synthesis: chunk planning, cross-faded stages, and streamed vs whole-utterance audio."""

from __future__ import annotations

import pytest
import torch

from decoders.estimator import EstimatorConfig
from decoders.flow import FlowDecoder, FlowDecoderConfig
from decoders.speech_decoder import SpeechDecoder, SpeechDecoderConfig, read_codes_file
from decoders.streaming import ChunkedStage, chunk_plan, chunk_size, crossfade, fade_in
from decoders.vocoder import GeneratorConfig, HiFiGANVocoder, VocoderConfig
from omni.config import FieldError
from tests.helpers.speech_data import one_thread  # noqa: F401 (fixture: tiny models run on one thread)


def test_chunk_plan():
    # first chunk 3 tokens, then 5; each waits for 2 tokens of look-ahead
    assert list(chunk_plan(20, 0, 3, 5, 2, final=False)) == [3, 8, 13, 18]
    assert list(chunk_plan(19, 0, 3, 5, 2, final=False)) == [3, 8, 13]
    assert list(chunk_plan(20, 13, 3, 5, 2, final=True)) == [18, 20]
    assert list(chunk_plan(4, 0, 3, 5, 2, final=False)) == []
    assert list(chunk_plan(4, 0, 3, 5, 2, final=True)) == [4]


def test_growing_chunk_schedule():
    assert [chunk_size(i, 6, 12, 2.0, 96) for i in range(7)] == [6, 12, 24, 48, 96, 96, 96]
    assert [chunk_size(i, 6, 12) for i in range(4)] == [6, 12, 12, 12]  # growth 1: fixed chunks
    assert [chunk_size(i, 3, 4, 1.5) for i in range(5)] == [3, 4, 6, 9, 14]  # 13.5 rounds to even
    assert chunk_size(10_000, 6, 12, 2.0, 96) == 96  # no overflow far down a long stream
    # ends 6, 18, 42, 90 with look-ahead 2; the stream's end flushes the rest as one chunk
    assert list(chunk_plan(100, 0, 6, 12, 2, final=False, growth=2.0, max_chunk=96)) == [6, 18, 42, 90]
    assert list(chunk_plan(125, 90, 6, 12, 2, final=True, growth=2.0, max_chunk=96)) == [125]
    assert list(chunk_plan(300, 90, 6, 12, 2, final=False, growth=2.0, max_chunk=48)) == [138, 186, 234, 282]
    # the index (chunks decoded so far) is counted along the schedule when not given
    assert (list(chunk_plan(100, 18, 6, 12, 2, final=False, growth=2.0))
            == list(chunk_plan(100, 18, 6, 12, 2, final=False, growth=2.0, index=2)) == [42, 90])


def test_growing_chunks_redecode_less_context_and_still_match_whole_synthesis():
    """Windows the flow decoder is asked for: growth 2 decodes fewer tokens than fixed chunks, same audio."""
    codes = torch.randint(0, 16, (70, 8))
    decoded, audio = {}, {}
    for growth in (1.0, 2.0):
        dec = tiny_decoder(chunk_growth=growth, max_chunk_tokens=24)
        windows: list[tuple[int, int]] = []
        generate, r = dec.flow.generate, dec.flow.cfg.frames_per_token

        def spy(tokens, _gen=generate, _log=windows, _r=r, **kw):  # records (first token, tokens) of each window
            _log.append((kw["start_frame"] // _r, tokens.shape[0]))
            return _gen(tokens, **kw)

        dec.flow.generate = spy
        audio[growth] = torch.cat([c.samples for c in dec.stream(codes[i:i + 1] for i in range(70))])
        decoded[growth] = sum(n for _, n in windows)
        if growth == 2.0:  # chunks 6, 12, 24, 24 (capped), then the rest; windows = 8 left + chunk + 2 ahead
            assert windows == [(0, 8), (0, 20), (10, 34), (34, 34), (58, 12)]
        dec.flow.generate = generate
        whole = dec.synthesize(codes)
        mel_w = dec.front_end(whole)[0]
        rel = float((dec.front_end(audio[growth])[0] - mel_w).abs().mean() / mel_w.abs().mean())
        assert audio[growth].shape == whole.shape and rel < 0.01, (growth, rel)
    # fixed 12-token chunks: windows 8, 20, then 4 x 22, then the last 12: 128 tokens for 70
    assert decoded == {1.0: 128, 2.0: 108}


def test_codes_queued_up_are_decoded_in_one_window_after_the_first_chunk():
    """A producer ahead of the decoder (70 codes at once): the first chunk alone (early audio), then one window
    for every chunk that is ready, instead of one window (NFE estimator calls each) per chunk."""
    codes = torch.randint(0, 16, (70, 8))
    dec = tiny_decoder(chunk_growth=2.0, max_chunk_tokens=24)
    windows: list[tuple[int, int]] = []
    generate, r = dec.flow.generate, dec.flow.cfg.frames_per_token

    def spy(tokens, **kw):
        windows.append((kw["start_frame"] // r, tokens.shape[0]))
        return generate(tokens, **kw)

    dec.flow.generate = spy
    chunks = list(dec.stream([codes[:10], codes[10:]]))  # the first chunk's 6 + 2 look-ahead, then the rest queued
    # first chunk (0, 8); then the chunks ending 18, 42 and 66 are ready at once: one window from 0 (the first
    # chunk's end less 8 of left context) to 66 + 2 look-ahead, where one by one they took (0, 20), (10, 34),
    # (34, 34); the end of the stream flushes the rest
    assert windows == [(0, 8), (0, 68), (58, 12)]
    dec.flow.generate = generate
    whole = dec.synthesize(codes)
    streamed = torch.cat([c.samples for c in chunks])
    mel_w = dec.front_end(whole)[0]
    assert streamed.shape == whole.shape
    assert float((dec.front_end(streamed)[0] - mel_w).abs().mean() / mel_w.abs().mean()) < 0.01


def test_chunk_growth_config_checks():
    with pytest.raises(FieldError, match="chunk_growth"):
        SpeechDecoderConfig(chunk_growth=0.5)
    with pytest.raises(FieldError, match="max_chunk_tokens"):
        SpeechDecoderConfig(chunk_tokens=12, max_chunk_tokens=8)


def test_fades_sum_to_one_and_crossfade_of_equal_spans_is_identity():
    w = fade_in(7)
    assert torch.all(w[1:] > w[:-1]) and torch.allclose(w + w.flip(0), torch.ones(7))
    x = torch.randn(3, 7)
    torch.testing.assert_close(crossfade(x, x), x)


@pytest.mark.parametrize("hold,right", [(0, 0), (2, 0), (2, 3)])
def test_chunked_stage_of_a_local_function_reproduces_the_whole(hold, right):
    """A stage whose output at each position depends on nearby inputs only gives the whole result, chunk by chunk."""
    x = torch.randn(40)

    def compute(lo: int, hi: int) -> torch.Tensor:  # out[i] = x[i] + 0.5 x[i - 1] within the window, 3 outputs each
        seg = x[lo:hi]
        prev = torch.cat([x[lo - 1:lo] if lo > 0 else torch.zeros(1), seg[:-1]])
        return (seg + 0.5 * prev).repeat_interleave(3)

    whole = compute(0, 40)
    stage = ChunkedStage(compute, 3, left=2, right=right, hold=hold)
    parts = [stage.step(min(40, end + right), end, final=False) for end in (5, 6, 13, 30)]
    parts.append(stage.step(40, 40, final=True))
    torch.testing.assert_close(torch.cat([p for p in parts if p is not None]), whole)
    with pytest.raises(ValueError, match="cross-fade"):
        ChunkedStage(compute, 1, left=1, right=0, hold=2)


def tiny_decoder(**kw) -> SpeechDecoder:
    torch.manual_seed(0)
    flow = FlowDecoder(FlowDecoderConfig(codebook_sizes=[16] * 8, token_dim=32, encoder_layers=1, encoder_heads=4,
                                         encoder_window=4, speaker_dim=8, speakers=["a"],
                                         estimator=EstimatorConfig(channels=32, n_mid_blocks=1, num_heads=4,
                                                                   attention_window=8)))
    voc = HiFiGANVocoder(VocoderConfig(generator=GeneratorConfig(channels=32, resblock_kernel_sizes=[3, 5],
                                                                 resblock_dilations=[[1, 3], [1, 3]])))
    return SpeechDecoder(flow, voc, SpeechDecoderConfig(n_steps=3, **kw))


@pytest.mark.parametrize("arrival", [1, 5])
def test_streamed_chunks_match_whole_utterance_synthesis(arrival):
    dec = tiny_decoder()
    codes = torch.randint(0, 16, (45, 8))
    whole = dec.synthesize(codes, speaker="a")
    assert whole.shape == (45 * dec.samples_per_token,)
    chunks = list(dec.stream((codes[i:i + arrival] for i in range(0, 45, arrival)), speaker="a"))
    assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True] and len(chunks) >= 4
    assert [c.start for c in chunks] == [sum(len(p.samples) for p in chunks[:i]) for i in range(len(chunks))]
    streamed = torch.cat([c.samples for c in chunks])
    assert streamed.shape == whole.shape
    mel_w, mel_s = dec.front_end(whole)[0], dec.front_end(streamed)[0]
    rel = float((mel_s - mel_w).abs().mean() / mel_w.abs().mean())
    assert rel < 0.01, rel
    # a decoder that ignores the context settings (no left context, no cross-fade) is visibly worse
    crude = tiny_decoder(left_context_tokens=0, crossfade_tokens=0, lookahead_tokens=0, vocoder_context_frames=0,
                         vocoder_lookahead_frames=0, vocoder_crossfade_frames=0)
    rough = torch.cat([c.samples for c in crude.stream(codes[i:i + 5] for i in range(0, 45, 5))])
    assert float((dec.front_end(rough)[0] - mel_w).abs().mean() / mel_w.abs().mean()) > 3 * rel


def test_bad_codes_give_clear_errors():
    dec = tiny_decoder()
    with pytest.raises(ValueError, match="out of range"):
        dec.synthesize(torch.full((4, 8), 16))
    with pytest.raises(ValueError, match="expected 8 codebooks"):
        dec.synthesize(torch.zeros(4, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="empty code sequence"):
        dec.synthesize(torch.zeros(0, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="code chunk 1: .*out of range"):
        list(dec.stream([torch.zeros(3, 8, dtype=torch.long), torch.full((2, 8), -1)]))
    with pytest.raises(ValueError, match="stream ended before any code"):
        list(dec.stream([]))
    with pytest.raises(ValueError, match="unknown speaker 'zz'"):
        dec.synthesize(torch.zeros(3, 8, dtype=torch.long), speaker="zz")


def test_config_checks_and_missing_model_directories(tmp_path):
    with pytest.raises(FieldError, match="left_context_tokens"):
        SpeechDecoderConfig(crossfade_tokens=3, left_context_tokens=2)
    with pytest.raises(FileNotFoundError, match="flow_dir: .*missing.*not found"):
        SpeechDecoder.from_config(SpeechDecoderConfig(flow_dir=str(tmp_path / "missing"), vocoder_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="vocoder_dir is not set"):
        dec = tiny_decoder()
        dec.flow.save_pretrained(tmp_path / "flow")
        SpeechDecoder.from_config(SpeechDecoderConfig(flow_dir=str(tmp_path / "flow")))


def test_read_codes_file_formats_and_errors(tmp_path):
    import json

    import numpy as np
    from safetensors.torch import save_file

    codes = torch.randint(0, 16, (5, 8))
    np.save(tmp_path / "c.npy", codes.numpy())
    (tmp_path / "c.json").write_text(json.dumps(codes.tolist()))
    save_file({"a": codes.int(), "b": codes.int()}, str(tmp_path / "c.safetensors"))
    assert torch.equal(read_codes_file(tmp_path / "c.npy"), codes)
    assert torch.equal(read_codes_file(tmp_path / "c.json"), codes)
    assert torch.equal(read_codes_file(tmp_path / "c.safetensors", "b").long(), codes)
    with pytest.raises(ValueError, match="holds 2 entries; choose one with --key"):
        read_codes_file(tmp_path / "c.safetensors")
    with pytest.raises(FileNotFoundError, match="codes file not found"):
        read_codes_file(tmp_path / "nope.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="bad.npy: cannot read codes"):
        read_codes_file(tmp_path / "bad.npy")

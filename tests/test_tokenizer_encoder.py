"""Variable-length Whisper encoder: equal to transformers' forward, padding-exact, loads local checkpoints only."""

from __future__ import annotations

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from audio_tokenizer.encoder import EncoderConfig, WhisperAudioEncoder, load_whisper_encoder
from tests.helpers.speech_data import one_thread  # noqa: F401 (fixture: run on one thread)

SMALL = dict(d_model=32, layers=2, heads=4, ffn_dim=64)


def whisper_config(**kw) -> WhisperConfig:
    base = dict(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
                encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80, vocab_size=64, pad_token_id=0,
                bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, max_source_positions=1500)
    return WhisperConfig(**{**base, **kw})


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_full_30_second_input_equals_hf_forward(attn):
    torch.manual_seed(0)
    enc = WhisperAudioEncoder(EncoderConfig(**SMALL, attn_implementation=attn), 80).eval()
    mel = torch.randn(2, 80, 3000)
    out, lengths = enc(mel)
    ref = enc.whisper(mel).last_hidden_state  # transformers' own forward (demands exactly 3000 frames)
    assert out.shape == (2, 1500, 32) and lengths.tolist() == [1500, 1500]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_stem_prefix_equals_hf_on_a_prefix_without_layers():
    """Without attention layers every output frame is local: the prefix of HF's 30 s output is ours on the prefix
    (except the last frame, whose convolution reads the next mel frame in HF's input)."""
    torch.manual_seed(0)
    enc = WhisperAudioEncoder(EncoderConfig(d_model=32, layers=1, heads=4, ffn_dim=64), 80).eval()
    enc.whisper.layers = torch.nn.ModuleList()
    mel = torch.randn(1, 80, 3000)
    ref = enc.whisper(mel).last_hidden_state
    for frames in (301, 640):
        out, lengths = enc(mel[..., :frames])
        n = int(lengths[0])
        assert n == (frames + 1) // 2
        torch.testing.assert_close(out[:, : n - 1], ref[:, : n - 1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padded_batch_equals_each_clip_alone(attn):
    torch.manual_seed(0)
    enc = WhisperAudioEncoder(EncoderConfig(**SMALL, attn_implementation=attn), 80).eval()
    lengths = torch.tensor([301, 200, 57])
    mel = torch.randn(3, 80, 301)
    batch_out, batch_lengths = enc(mel, lengths)
    assert batch_lengths.tolist() == [151, 100, 29]
    for i, n in enumerate(lengths.tolist()):
        alone, _ = enc(mel[i:i + 1, :, :n])
        torch.testing.assert_close(batch_out[i, : alone.shape[1]], alone[0], atol=1e-5, rtol=1e-5)


def test_loads_full_whisper_checkpoints_and_bare_encoders(tmp_path):
    torch.manual_seed(0)
    full = WhisperForConditionalGeneration(whisper_config())
    full.save_pretrained(tmp_path / "whisper-full")
    expected = full.model.encoder.state_dict()
    enc = WhisperAudioEncoder(EncoderConfig(pretrained_path=str(tmp_path / "whisper-full")), 80)
    for k, v in enc.whisper.state_dict().items():
        assert torch.equal(v, expected[k]), k
    full.model.encoder.save_pretrained(tmp_path / "encoder-only")
    again = load_whisper_encoder(tmp_path / "encoder-only")
    assert all(torch.equal(v, expected[k]) for k, v in again.state_dict().items())
    mel = torch.randn(1, 80, 3000)
    torch.testing.assert_close(enc.eval()(mel)[0], full.model.encoder.eval()(mel).last_hidden_state)


def test_missing_or_wrong_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="whisper-large-v3.*never downloaded"):
        WhisperAudioEncoder(EncoderConfig(pretrained_path=str(tmp_path / "whisper-large-v3")), 128)
    WhisperEncoder(whisper_config()).save_pretrained(tmp_path / "w80")
    with pytest.raises(ValueError, match="n_mels is 128 but the Whisper encoder.*expects 80"):
        WhisperAudioEncoder(EncoderConfig(pretrained_path=str(tmp_path / "w80")), 128)
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)).save_pretrained(
        tmp_path / "bert")
    with pytest.raises(ValueError, match="not a Whisper checkpoint"):
        load_whisper_encoder(tmp_path / "bert")


def test_too_long_input_and_freezing():
    enc = WhisperAudioEncoder(EncoderConfig(**SMALL, freeze=True), 80)
    assert not any(p.requires_grad for p in enc.parameters())
    with pytest.raises(ValueError, match="at most 3000 mel frames"):
        enc(torch.zeros(1, 80, 3002))

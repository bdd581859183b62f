"""Shared test data for the audio tokenizer: a mini synthetic corpus, tiny models and a tiny frozen LM.

The corpus and the LM are built once per pytest session under the session's base temp directory
(``build_corpus`` resumes a finished build instantly), so every test module can ask for them cheaply.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audio_tokenizer.conv import ConvStackConfig
from audio_tokenizer.decoder import DecoderConfig
from audio_tokenizer.encoder import EncoderConfig
from audio_tokenizer.frontend import FrontendConfig
from audio_tokenizer.model import AudioTokenizer, AudioTokenizerConfig
from audio_tokenizer.quantizer import QuantizerConfig


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared machine OpenMP threads waiting on each
    other slow small ops 5-10x; tokenizer test modules import this fixture to run on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mini_corpus(tmp_path_factory) -> Path:
    """A 24-prompt synthetic corpus (16 kHz ASR, spoken QA, chat, interleaved; about 6 s to build once)."""
    from omni.data.synth.config import CorpusConfig
    from omni.data.synth.corpus import build_corpus

    out = tmp_path_factory.getbasetemp() / "mini_corpus"
    build_corpus(CorpusConfig(seed=1, utterances=24, held_out_voices=["espeak:en-029+m2"], eval_renders=1), out,
                 workers=1, progress=False)
    return out


def tiny_config(codebook_sizes=(16,) * 8, n_mels: int = 80, **quantizer) -> AudioTokenizerConfig:
    """A small tokenizer architecture (about 0.1 M parameters) with the full structure."""
    return AudioTokenizerConfig(
        frontend=FrontendConfig(n_mels=n_mels),
        encoder=EncoderConfig(d_model=32, layers=2, heads=4, ffn_dim=64),
        downsampler=ConvStackConfig(dim=32),
        quantizer=QuantizerConfig(codebook_sizes=list(codebook_sizes), dim=16, **quantizer),
        decoder=DecoderConfig(upsampler=ConvStackConfig(dim=32), d_model=32, layers=1, heads=4, ffn_dim=64,
                              postnet_layers=2, postnet_dim=16),
    )


def initialised_tokenizer(cfg: AudioTokenizerConfig | None = None, seed: int = 0, clips: list | None = None) -> AudioTokenizer:
    """A tiny tokenizer whose codebooks were k-means initialised by one training forward pass."""
    torch.manual_seed(seed)
    tok = AudioTokenizer(cfg or tiny_config())
    g = torch.Generator().manual_seed(seed)
    if clips is None:
        wav = 0.1 * torch.randn(8, 24000, generator=g)
        lengths = torch.tensor([24000, 20000, 18000, 16000, 12000, 9000, 6000, 4000])
    else:
        from audio_tokenizer.model import pad_batch

        wav, lengths = pad_batch(clips)
    tok.train()
    with torch.no_grad():
        tok(wav, lengths)
    return tok.eval()


def tiny_lm(tmp_path_factory) -> Path:
    """A tiny Qwen2 + BPE tokenizer that knows a few sentences (100 plain AdamW steps), saved with save_pretrained."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from omni.text.tokenizer import train_bpe_tokenizer

    out = tmp_path_factory.getbasetemp() / "tiny_lm"
    if (out / "config.json").is_file():
        return out
    sentences = ["turn on the kitchen lights", "what is two plus three", "set a timer for five minutes"]
    tok = train_bpe_tokenizer(sentences * 20, vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = Qwen2ForCausalLM(config)
    eos = tok.eos_token_id
    seqs = [[eos] + tok(s, add_special_tokens=False)["input_ids"] + [eos] for s in sentences]
    width = max(len(x) for x in seqs)
    ids = torch.tensor([x + [eos] * (width - len(x)) for x in seqs])
    labels = torch.tensor([x + [-100] * (width - len(x)) for x in seqs])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out

"""The audio embedding initialised from the audio tokenizer's RVQ codebooks (stage option ``audio_embed_from``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omni.config import ConfigError, load_config
from omni.model.audio_embed import AudioEmbedding, AudioEmbeddingConfig
from omni.training.stage import StageConfig, load_stage_model
from tests.helpers.speech_data import initialised_tokenizer, tiny_config, tiny_lm

ROOT = Path(__file__).resolve().parent.parent
SIZES = (16, 12, 8, 8, 8, 8, 8, 8)


@pytest.fixture(scope="module")
def tokenizer():
    return initialised_tokenizer(tiny_config(codebook_sizes=SIZES), seed=3)


def random_codes(n: int = 50, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, s, (n,), generator=g) for s in SIZES], dim=-1)  # (n, K)


def centred(tokenizer, codes: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The audio embedding's start by hand: the quantized vector less the sum of each level's mean codebook row,
    and the scale that gives level 0's centred rows mean norm 1."""
    books = tokenizer.quantizer.codebook_vectors()
    shared = sum(b.mean(dim=0) for b in books)  # (dim,)
    scale = 1.0 / float((books[0] - books[0].mean(dim=0)).norm(dim=-1).mean())
    return scale, tokenizer.quantizer.decode_codes(codes[None])[0] - shared


def test_codebook_vectors_sum_to_the_quantized_vector(tokenizer):
    books = tokenizer.quantizer.codebook_vectors()
    assert [tuple(b.shape) for b in books] == [(s, 16) for s in SIZES]
    codes = random_codes()
    summed = sum(books[k][codes[:, k]] for k in range(len(SIZES)))
    torch.testing.assert_close(summed, tokenizer.quantizer.decode_codes(codes[None])[0])


def test_loaded_tables_give_the_centred_scaled_quantized_vector_and_keep_the_projection(tokenizer):
    torch.manual_seed(0)
    emb = AudioEmbedding(AudioEmbeddingConfig(embed_dim=16), list(SIZES), out_dim=24)
    proj = emb.proj.weight.detach().clone()
    scale = emb.load_codebooks(tokenizer.quantizer.codebook_vectors())
    codes = random_codes(seed=1)
    want_scale, quantized = centred(tokenizer, codes)  # (n, 16)
    assert scale == pytest.approx(want_scale, rel=1e-5)
    torch.testing.assert_close(emb(codes), emb.proj(scale * quantized))
    assert torch.equal(emb.proj.weight, proj)
    assert float(emb.tables[0].weight.detach().norm(dim=-1).mean()) == pytest.approx(1.0, rel=1e-5)


def test_wider_tables_hold_the_quantized_vector_rotated_losslessly(tokenizer):
    emb = AudioEmbedding(AudioEmbeddingConfig(embed_dim=40), list(SIZES), out_dim=24)
    scale = emb.load_codebooks(tokenizer.quantizer.codebook_vectors())
    codes = random_codes(seed=4)
    summed = sum(emb.tables[k](codes[:, k]) for k in range(len(SIZES))).detach()  # (n, 40)
    quantized = scale * centred(tokenizer, codes)[1]  # (n, 16)
    torch.testing.assert_close(summed.norm(dim=-1), quantized.norm(dim=-1))  # an isometry
    torch.testing.assert_close(summed @ summed.T, quantized @ quantized.T, atol=1e-4, rtol=1e-4)


def test_no_vector_is_shared_by_every_frame(tokenizer):
    """A fresh embedding's projection has no bias, and the loaded tables are centred: averaged over every code
    of every level the frame vector is zero (what every frame shares, the LLM cannot tell frames apart by)."""
    emb = AudioEmbedding(AudioEmbeddingConfig(embed_dim=16), list(SIZES), out_dim=24)
    assert not emb.proj.bias.detach().any()
    emb.load_codebooks(tokenizer.quantizer.codebook_vectors())
    for table in emb.tables:
        torch.testing.assert_close(table.weight.detach().mean(dim=0), torch.zeros(16), atol=1e-6, rtol=0)
    assert float(tokenizer.quantizer.codebook_vectors()[0].mean(dim=0).norm()) > 1e-3  # the raw ones are not


def test_a_mismatched_embedding_is_refused(tokenizer):
    books = tokenizer.quantizer.codebook_vectors()
    narrow = AudioEmbedding(AudioEmbeddingConfig(embed_dim=8), list(SIZES), out_dim=24)
    with pytest.raises(ValueError, match="must be at least the tokenizer"):
        narrow.load_codebooks(books)
    other = AudioEmbedding(AudioEmbeddingConfig(embed_dim=16), [16] * 8, out_dim=24)
    with pytest.raises(ValueError, match="codebook_sizes"):
        other.load_codebooks(books)


def stage(tmp_path: Path, lm: Path, **extra: str) -> StageConfig:
    overrides = ["model=configs/model/tiny.yaml", "init_from=null", f"loop.output_dir={tmp_path / 'run'}",
                 f"model_overrides=[backbone.path={lm}, tokenizer={lm}, 'codebook_sizes={list(SIZES)}', "
                 "audio_embed.embed_dim=16, vision.enabled=false]",
                 *[f"{k}={v}" for k, v in extra.items()]]
    return load_config(ROOT / "configs" / "stages" / "tiny" / "audio_pretrain_1.yaml", StageConfig, overrides=overrides)


def test_a_stage_that_builds_its_model_starts_from_the_codebooks(tokenizer, tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(ROOT)
    tokenizer.save_pretrained(tmp_path / "tok")
    lm = tiny_lm(tmp_path_factory)
    fresh = load_stage_model(stage(tmp_path, lm))
    model = load_stage_model(stage(tmp_path, lm, audio_embed_from=str(tmp_path / "tok")))
    codes = random_codes(seed=2)
    scale, quantized = centred(tokenizer, codes)
    torch.testing.assert_close(model.audio_embed(codes), model.audio_embed.proj(scale * quantized))
    assert not torch.allclose(fresh.audio_embed(codes), model.audio_embed(codes))


def test_audio_embed_from_needs_a_stage_that_builds_its_model(tmp_path):
    with pytest.raises(ConfigError, match="audio_embed_from"):
        load_config(ROOT / "configs" / "stages" / "tiny" / "audio_pretrain_2.yaml", StageConfig,
                    overrides=[f"audio_embed_from={tmp_path}"])


def test_the_flow_decoders_token_tables_start_as_the_codebooks(tokenizer):
    from decoders.flow import FlowDecoderConfig, TokenEncoder

    enc = TokenEncoder(FlowDecoderConfig(codebook_sizes=list(SIZES), token_dim=32, encoder_heads=4))
    scale = enc.load_codebooks(tokenizer.quantizer.codebook_vectors())
    assert float(enc.embeddings[0].weight.detach().norm(dim=-1).mean()) == pytest.approx(32**0.5, rel=1e-5)
    codes = random_codes(seed=5)
    summed = sum(enc.embeddings[k](codes[:, k]) for k in range(len(SIZES))).detach()  # (n, 32)
    quantized = scale * tokenizer.quantizer.decode_codes(codes[None])[0]
    torch.testing.assert_close(summed @ summed.T, quantized @ quantized.T, atol=1e-3, rtol=1e-4)


def test_flow_training_names_a_tokenizer_that_does_not_fit(tokenizer, tmp_path):
    from decoders.train_flow import train_flow

    tokenizer.save_pretrained(tmp_path / "tok")
    cfg = load_config(ROOT / "configs" / "decoder" / "flow_tiny.yaml",
                      overrides=[f"codebooks_from={tmp_path / 'tok'}", f"loop.output_dir={tmp_path / 'run'}"])
    with pytest.raises(ValueError, match="codebooks_from .* codebook_sizes"):
        train_flow(cfg)

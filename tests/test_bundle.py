"""Checkpoint bundles: tiny bundle round trip, assembling from parts, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from omni.bundle import BundleConfig, assemble_bundle, load_bundle, tiny_bundle
from omni.cli.main import app
from omni.config import save_config
from tests.helpers.speech_data import one_thread  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_bundle(tmp_path_factory.mktemp("b") / "tiny")


def test_tiny_bundle_loads_and_speech_round_trips(bundle):
    b = load_bundle(bundle)
    assert b.voices == ["flite:rms", "espeak:en-us+m1"]
    wav = (0.2 * np.sin(np.arange(32000) / 7)).astype(np.float32)
    codes = b.audio_tokenizer.encode(wav, 16000)
    assert codes.shape == (25, 8)
    sizes = torch.tensor(b.model.cfg.codebook_sizes)
    assert bool((codes < sizes).all()) and len(set(codes[:, 0].tolist())) > 1  # codebooks were initialised
    audio = b.speech_decoder.synthesize(codes, speaker="flite:rms")
    assert audio.shape == (25 * b.speech_decoder.samples_per_token,) and torch.isfinite(audio).all()
    again = load_bundle(bundle)
    assert torch.equal(again.audio_tokenizer.encode(wav, 16000), codes)


def test_assemble_copies_parts_and_rejects_mismatches(bundle, tmp_path):
    out = assemble_bundle(tmp_path / "b2", bundle / "model", bundle / "audio_tokenizer", bundle / "flow",
                          bundle / "vocoder", BundleConfig(voices=["flite:rms"]))
    assert load_bundle(out).voices == ["flite:rms"]
    with pytest.raises(FileExistsError, match="exists"):
        assemble_bundle(out, bundle / "model", bundle / "audio_tokenizer", bundle / "flow", bundle / "vocoder")
    # a flow decoder trained for other codebook sizes does not fit
    from decoders.estimator import EstimatorConfig
    from decoders.flow import FlowDecoder, FlowDecoderConfig

    odd = tmp_path / "odd_flow"
    FlowDecoder(FlowDecoderConfig(codebook_sizes=[32] * 8, token_dim=16, encoder_layers=1, encoder_heads=2,
                                  speaker_dim=4, speakers=["flite:rms"],
                                  estimator=EstimatorConfig(channels=16, n_mid_blocks=1, num_heads=2))).save_pretrained(odd)
    with pytest.raises(ValueError, match="disagree on codebook sizes"):
        assemble_bundle(tmp_path / "bad", bundle / "model", bundle / "audio_tokenizer", odd, bundle / "vocoder")
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.*"))  # nothing half-written is left


def test_missing_parts_are_clear_errors(bundle, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no bundle.yaml"):
        load_bundle(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    shutil.rmtree(broken / "vocoder")
    with pytest.raises(FileNotFoundError, match="vocoder directory of the bundle not found"):
        load_bundle(broken)
    save_config(BundleConfig(voices=["nobody"]), bundle.parent / "v" / "bundle.yaml")
    for part in ("model", "audio_tokenizer", "flow", "vocoder"):
        shutil.copytree(bundle / part, bundle.parent / "v" / part)
    with pytest.raises(ValueError, match="voices \\['nobody'\\]"):
        load_bundle(bundle.parent / "v")


def test_cli_info(bundle):
    result = CliRunner().invoke(app, ["bundle", "info", str(bundle)])
    assert result.exit_code == 0, result.output
    assert "voices           flite:rms, espeak:en-us+m1" in result.output
    result = CliRunner().invoke(app, ["bundle", "info", str(bundle.parent / "missing")])
    assert result.exit_code == 2 and "not found" in result.output

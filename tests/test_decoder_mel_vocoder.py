"""Mel front end against librosa; HiFi-GAN vocoder (ESPnet modules) against the published architecture; GAN losses by hand."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from decoders.losses import (
    discriminator_adversarial_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mel_l1_loss,
)
from decoders.mel import MelConfig, MelFrontEnd
from decoders.vocoder import (
    DiscriminatorConfig,
    GeneratorConfig,
    HiFiGANVocoder,
    VocoderConfig,
    build_discriminator,
    build_generator,
)
from omni.config import FieldError
from tests.helpers.speech_data import one_thread  # noqa: F401 (fixture: tiny models run on one thread)


def test_mel_matches_librosa_reference():
    cfg = MelConfig(sample_rate=24000, n_fft=1920, hop_length=480, win_length=1920, n_mels=80, fmax=8000.0)
    rng = np.random.default_rng(0)
    t = np.arange(24000 * 0.7) / 24000
    wav = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    mel = MelFrontEnd(cfg)(torch.from_numpy(wav))[0].numpy()
    assert mel.shape == (80, len(wav) // 480)
    pad = (1920 - 480) // 2
    ref = librosa.feature.melspectrogram(y=np.pad(wav, pad, mode="reflect"), sr=24000, n_fft=1920, hop_length=480,
                                         win_length=1920, window="hann", center=False, power=1.0, n_mels=80,
                                         fmin=0.0, fmax=8000.0)
    np.testing.assert_allclose(mel, np.log(np.maximum(ref, 1e-5)), atol=2e-3)


def test_mel_config_and_input_errors():
    with pytest.raises(FieldError, match="n_fft"):
        MelConfig(n_fft=240, hop_length=480)
    with pytest.raises(FieldError, match="must be even"):
        MelConfig(n_fft=1921)
    with pytest.raises(FieldError, match="fmax"):
        MelConfig(fmax=20000.0)
    with pytest.raises(ValueError, match="shorter than one hop"):
        MelFrontEnd(MelConfig())(torch.zeros(100))


def test_v1_generator_has_the_published_parameter_count():
    # HiFi-GAN V1 (Kong et al. 2020): 22.05 kHz, hop 256 = 8 x 8 x 2 x 2, 512 channels, 13.92 M parameters
    v1 = VocoderConfig(mel=MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024),
                       generator=GeneratorConfig(upsample_scales=[8, 8, 2, 2]))
    with torch.device("meta"):  # shapes only: counting needs no memory or initialisation
        n = sum(p.numel() for p in build_generator(v1).parameters())
        ours = sum(p.numel() for p in HiFiGANVocoder(VocoderConfig()).parameters())
    assert abs(n - 13.9e6) < 0.1e6, n
    # our 24 kHz default keeps the V1 widths with 8 x 5 x 4 x 3 = 480
    assert abs(ours - 13.8e6) < 0.1e6, ours
    # the paper's discriminators: 3 scales + periods 2, 3, 5, 7, 11 = 8 sub-discriminators (narrow here)
    cfg = VocoderConfig(discriminator=DiscriminatorConfig(scale_channels=16, period_channels=4, max_channels=32))
    outs = build_discriminator(cfg)(torch.randn(1, 1, 4800))
    assert len(outs) == 8 and all(isinstance(o, list) and o[-1].dim() >= 2 for o in outs)


def test_generator_output_length_and_upsampling_check():
    cfg = VocoderConfig(generator=GeneratorConfig(channels=32, resblock_kernel_sizes=[3], resblock_dilations=[[1]]))
    voc = HiFiGANVocoder(cfg)
    assert voc(torch.randn(2, 80, 7)).shape == (2, 7 * 480)
    with pytest.raises(ValueError, match=r"mel must be \(B, 80, T\)"):
        voc(torch.randn(2, 60, 7))
    with pytest.raises(FieldError, match=r"their product \(256\) must equal mel.hop_length \(480\)"):
        VocoderConfig(generator=GeneratorConfig(upsample_scales=[8, 8, 2, 2]))


def test_vocoder_save_and_load_round_trip(tmp_path):
    cfg = VocoderConfig(generator=GeneratorConfig(channels=32, resblock_kernel_sizes=[3], resblock_dilations=[[1]]),
                        discriminator=DiscriminatorConfig(scales=1, periods=[2], scale_channels=16, period_channels=4,
                                                          max_channels=32))
    voc = HiFiGANVocoder(cfg).eval()
    voc.save_pretrained(tmp_path / "voc")
    again = HiFiGANVocoder.from_pretrained(tmp_path / "voc")
    mel = torch.randn(1, 80, 5)
    with torch.no_grad():
        torch.testing.assert_close(again(mel), voc(mel))
    (tmp_path / "voc" / "config.json").write_text('{"kind": "flow_decoder", "config": {}}')
    with pytest.raises(ValueError, match="expected a 'vocoder' model"):
        HiFiGANVocoder.from_pretrained(tmp_path / "voc")


def test_folding_weight_norm_keeps_outputs_and_saved_weights_load_both_ways(tmp_path):
    from safetensors.torch import load_file

    cfg = VocoderConfig(generator=GeneratorConfig(channels=32, resblock_kernel_sizes=[3, 5],
                                                  resblock_dilations=[[1, 3], [1, 3]]))
    torch.manual_seed(0)
    voc = HiFiGANVocoder(cfg).eval()
    mel = torch.randn(2, 80, 9)  # (B, M, T)
    with torch.no_grad():
        before = voc(mel)
        for name, p in voc.named_parameters():  # unit-scale gains, away from |v|: a fold that dropped g would show
            if name.endswith("weight_g"):
                p.uniform_(0.5, 1.5)
        ref = voc(mel)
    assert (ref - before).abs().max() > 1e-2  # the gains matter (1000x the tolerance below)
    keys = set(voc.state_dict())
    voc.save_pretrained(tmp_path / "unfolded")
    n_convs = sum(k.endswith("weight_g") for k in keys)
    assert voc.fold_weight_norm() is voc and len(voc.folded) == n_convs > 10
    assert not any(k.endswith(("weight_g", "weight_v")) for k in voc.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(voc(mel), ref, atol=1e-5, rtol=0)
        voc.fold_weight_norm()  # idempotent
        torch.testing.assert_close(voc(mel), ref, atol=1e-5, rtol=0)
    # a folded vocoder saves the weight-norm form: same keys as the training one, loadable either way
    voc.save_pretrained(tmp_path / "folded")
    assert set(load_file(str(tmp_path / "folded" / "model.safetensors"))) == keys
    for src in ("unfolded", "folded"):
        for fold in (True, False):
            again = HiFiGANVocoder.from_pretrained(tmp_path / src, fold_weight_norm=fold)
            assert bool(again.folded) == fold and not again.training
            with torch.no_grad():
                torch.testing.assert_close(again(mel), ref, atol=1e-5, rtol=0)


def test_multi_resolution_stft_loss_by_hand():
    """Identical waveforms score 0; twice the amplitude scores spectral convergence |2S - S| / |S| = 1 plus
    log-magnitude error log 2, at every resolution; the loss is a sum over the batch."""
    from decoders.losses import multi_resolution_stft_loss

    g = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(3, 4800, generator=g)
    res = [(512, 128, 512), (256, 64, 200)]
    assert float(multi_resolution_stft_loss(wav, wav, res)) == pytest.approx(0.0, abs=1e-6)
    loss = float(multi_resolution_stft_loss(2 * wav, wav, res))
    assert loss == pytest.approx(3 * (1.0 + np.log(2.0)), rel=1e-3)


def test_least_squares_and_feature_matching_losses_by_hand():
    # two discriminators, each: one feature map, then its score
    real = [[torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.0]])],
            [torch.tensor([[0.0]]), torch.tensor([[2.0]])]]
    fake = [[torch.tensor([[2.0, 2.0]]), torch.tensor([[0.5, 1.0]])],
            [torch.tensor([[3.0]]), torch.tensor([[-1.0]])]]
    # generator: mean over discriminators of E[(D(G) - 1)^2] = (((-0.5)^2 + 0^2) / 2 + (-2)^2) / 2 = (0.125 + 4) / 2
    assert float(generator_adversarial_loss(fake)) == pytest.approx(2.0625)
    # discriminator: real E[(D(x) - 1)^2] = ((0 + 1) / 2 + 1) / 2 = 0.75; fake E[D(G)^2] = ((0.25 + 1) / 2 + 1) / 2
    d_real, d_fake = discriminator_adversarial_loss(fake, real)
    assert float(d_real) == pytest.approx(0.75) and float(d_fake) == pytest.approx(0.8125)
    # feature matching (final scores excluded): mean over discriminators of L1 of the feature maps = (0.5 + 3) / 2
    assert float(feature_matching_loss(fake, real)) == pytest.approx(1.75)
    # mel L1: sum over frames of the per-frame mean |difference|
    assert float(mel_l1_loss(torch.ones(1, 2, 3), torch.zeros(1, 2, 3))) == pytest.approx(3.0)

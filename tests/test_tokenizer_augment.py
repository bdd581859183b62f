"""SpecAugment of the tokenizer's encoder input: masks where they should be, none at evaluation."""

from __future__ import annotations

import torch

from audio_tokenizer.augment import SpecAugmentConfig, spec_augment
from audio_tokenizer.train import TokenizerTrainModel
from tests.helpers.speech_data import initialised_tokenizer


def test_masks_fill_bands_and_stretches_with_the_clip_mean_and_leave_padding():
    g = torch.Generator().manual_seed(0)
    mel = torch.randn(2, 20, 50, generator=g)
    lengths = torch.tensor([50, 30])
    cfg = SpecAugmentConfig(freq_masks=1, freq_width=4, time_masks=1, time_width=6, max_time_fraction=0.2)
    out = spec_augment(mel, lengths, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(out[1, :, 30:], mel[1, :, 30:])  # padding untouched
    for i, n in enumerate(lengths.tolist()):
        mean = mel[i, :, :n].mean()
        changed = (out[i, :, :n] != mel[i, :, :n])
        assert torch.allclose(out[i, :, :n][changed], mean.expand(int(changed.sum())))
        rows = changed.all(1).sum()  # a masked band is a whole row; a masked stretch a whole column
        cols = changed.all(0).sum()
        assert rows <= 4 and cols <= min(6, int(0.2 * n))
        assert int(changed.sum()) <= rows * n + cols * 20
    off = SpecAugmentConfig()
    assert not off.enabled and torch.equal(spec_augment(mel, lengths, off), mel)


def test_model_augments_in_training_mode_only():
    tok = initialised_tokenizer()
    wav = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([16000, 12000])
    aug = SpecAugmentConfig(freq_masks=2, freq_width=20, time_masks=2, time_width=30)
    plain = TokenizerTrainModel(tok).eval()(wav, lengths).out.quantized
    model = TokenizerTrainModel(tok, augment=aug).eval()
    assert torch.equal(model(wav, lengths).out.quantized, plain)  # evaluation: no masks
    model.train()
    tok.quantizer.eval()  # keep the codebooks fixed; only the encoder's input differs
    torch.manual_seed(3)
    trained = model(wav, lengths)
    assert torch.equal(trained.out.mel, TokenizerTrainModel(tok).train()(wav, lengths).out.mel)  # clean target
    assert not torch.allclose(trained.out.quantized, plain)

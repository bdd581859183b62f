"""Phoneme supervision of the codes: espeak-ng phonemes, the inventory, the upsampling CTC head."""

from __future__ import annotations

import pytest
import torch

from audio_tokenizer.ctc import ctc_per_token
from audio_tokenizer.data import collate_speech
from audio_tokenizer.phonemes import PhonemeCTCHead, PhonemeVocab, phoneme_units
from omni.data.synth.engines import phonemize


def test_espeak_phonemes_of_a_sentence():
    (what,), (again,) = phonemize(["What is it?"]), phonemize(["What is it?"])
    assert what == again and phoneme_units(what) == ["w", "V", "t", "I", "z", "I", "t"]
    # two clauses are joined; stress marks and pauses are dropped from the units
    units = phoneme_units(phonemize(["Yes, seven."])[0])
    assert units[:3] == ["j", "E", "s"] and units[-1] == "n" and all("'" not in u and "," not in u for u in units)
    with pytest.raises(ValueError, match="accent"):
        phonemize(["x"], accent="xx-nowhere")


def test_vocab_is_sorted_and_skips_unseen_phonemes():
    vocab, units = PhonemeVocab.from_texts(["What is it?", "Seven."])
    assert vocab.symbols == sorted(vocab.symbols) and len(vocab) == len(set(u for seq in units for u in seq))
    ids = vocab.encode(units[0])
    assert [vocab.symbols[i] for i in ids] == units[0]
    assert vocab.encode(["w", "no-such-phoneme", "t"]) == [vocab.index["w"], vocab.index["t"]]


def test_head_upsamples_four_times_and_padding_does_not_leak():
    torch.manual_seed(0)
    head = PhonemeCTCHead(6, num_phonemes=10, hidden=16)
    q = torch.randn(2, 5, 6)
    q[1, 3:] = 1e3  # padding frames of the second clip hold garbage
    out = head(q, torch.tensor([5, 3]))
    assert out.shape == (2, 20, 11) and torch.allclose(out.exp().sum(-1), torch.ones(2, 20), atol=1e-5)
    alone = head(q[1:, :3])
    assert torch.allclose(out[1, :12], alone[0], atol=1e-5)  # clip 2's 12 valid frames: as if alone
    assert torch.equal(head.output_lengths(torch.tensor([5, 3])), torch.tensor([20, 12]))
    # a 4x finer clock fits a phoneme sequence that the 12.5 Hz frames could not
    targets = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    res = ctc_per_token(out[:1], torch.tensor([20]), targets, torch.tensor([8]), blank=10, drop_last=False)
    assert res.infeasible == 0 and float(res.loss[0]) > 0


def test_collate_pads_phonemes_beside_text():
    samples = [{"wav": [0.1, 0.2, 0.3], "text_ids": [7, 8, 1], "phoneme_ids": [4, 1, 2]},
               {"wav": [0.4, 0.5], "text_ids": [9, 1], "phoneme_ids": [3]}]
    b = collate_speech(samples)
    assert b.phoneme_ids.tolist() == [[4, 1, 2], [3, 0, 0]] and b.phoneme_lengths.tolist() == [3, 1]
    b = collate_speech([{"wav": [0.1], "text_ids": []}])
    assert b.phoneme_lengths.tolist() == [0] and b.text_lengths.tolist() == [0]

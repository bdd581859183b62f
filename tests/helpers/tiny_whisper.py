"""A randomly initialised tiny Whisper (model + byte-level tokenizer + feature extractor) saved to a directory,
for testing the Whisper recogniser offline."""

from __future__ import annotations

from pathlib import Path

import torch

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
            "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


def tiny_whisper(out: Path, seed: int = 0) -> Path:
    """Write an English-only tiny Whisper to ``out`` (loadable with ``from_pretrained(out, local_files_only=True)``)."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    tok = WhisperTokenizer(vocab=vocab, merges=[])
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    ids = tok.convert_tokens_to_ids(SPECIALS)
    cfg = WhisperConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                        max_source_positions=1500, max_target_positions=64, pad_token_id=ids[0], bos_token_id=ids[0],
                        eos_token_id=ids[0], decoder_start_token_id=ids[1])
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(cfg).eval()
    gc = model.generation_config
    gc.decoder_start_token_id, gc.no_timestamps_token_id, gc.is_multilingual = ids[1], ids[8], False
    gc.forced_decoder_ids = None
    gc.suppress_tokens = ids  # random weights: never stop early or emit specials, so transcripts are non-empty
    gc.begin_suppress_tokens = ids
    model.save_pretrained(out)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok).save_pretrained(out)
    return out

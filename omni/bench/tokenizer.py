"""Audio tokenizer encode throughput (seconds of audio per second) against the usual transformers path.

* ours: ``AudioTokenizer.encode_batch`` (batched torch front end, variable-length Whisper encoder);
* reference: ``WhisperFeatureExtractor`` (pads every clip to 30 s), ``WhisperEncoder.forward`` on 3000
  frames, then the same downsampler and quantizer.

Config: ``configs/tokenizer/tiny.yaml``'s model (a whisper-small-sized one on a GPU), random weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from omni.bench.core import BenchContext, Figure

ROOT = Path(__file__).resolve().parents[2]


def tiny_tokenizer_config():
    from audio_tokenizer.train import TokenizerTrainConfig
    from omni.config import load_config

    return load_config(ROOT / "configs" / "tokenizer" / "tiny.yaml", TokenizerTrainConfig).model


def small_tokenizer_config():
    """Whisper-small-sized encoder (768 x 12 layers, 80 mels), full-size RVQ."""
    from audio_tokenizer.conv import ConvStackConfig
    from audio_tokenizer.decoder import DecoderConfig
    from audio_tokenizer.encoder import EncoderConfig
    from audio_tokenizer.frontend import FrontendConfig
    from audio_tokenizer.model import AudioTokenizerConfig
    from audio_tokenizer.quantizer import QuantizerConfig

    return AudioTokenizerConfig(
        frontend=FrontendConfig(n_mels=80), encoder=EncoderConfig(d_model=768, layers=12, heads=12, ffn_dim=3072),
        downsampler=ConvStackConfig(dim=768), quantizer=QuantizerConfig(dim=256),
        decoder=DecoderConfig(upsampler=ConvStackConfig(dim=768), d_model=768, layers=12, heads=12, ffn_dim=3072))


@torch.no_grad()
def reference_encode(tok, clips: list[np.ndarray], device) -> torch.Tensor:
    """transformers' way: features padded to 30 s, WhisperEncoder.forward on 3000 frames, then our quantizer."""
    fe = tok.cfg.frontend.feature_extractor()
    feats = fe(clips, sampling_rate=tok.sample_rate, return_tensors="pt")["input_features"].to(device)
    hidden = tok.encoder.whisper(feats).last_hidden_state  # (B, 1500, D)
    lengths50 = torch.tensor([(len(c) // 160 + 1) // 2 for c in clips], device=device)  # (B,) at 50 Hz
    down, code_lengths = tok.downsampler(hidden[:, :int(lengths50.max())], lengths50)
    z = tok.pre_quant(down)  # (B, T, d)
    mask = torch.arange(z.shape[1], device=device)[None, :] < code_lengths[:, None]  # (B, T)
    return tok.quantizer(z, mask).codes


@torch.no_grad()
def bench_tokenizer(ctx: BenchContext) -> list[Figure]:
    from audio_tokenizer.model import AudioTokenizer

    cfg = small_tokenizer_config() if ctx.cuda else tiny_tokenizer_config()
    cfg.quantizer.kmeans_init = False  # random codebooks, usable at once
    torch.manual_seed(0)
    tok = AudioTokenizer(cfg).to(ctx.device).eval()
    batch, seconds = (2, 2.0) if ctx.cfg.quick else (8, 5.0)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(int(seconds * tok.sample_rate))).astype(np.float32) for _ in range(batch)]
    wav = torch.from_numpy(np.stack(clips)).to(ctx.device)  # (B, S)
    lengths = torch.full((batch,), wav.shape[1], dtype=torch.long)
    runs = {"ours": lambda: tok.encode_batch(wav, lengths), "ref": lambda: reference_encode(tok, clips, ctx.device)}
    for fn in runs.values():
        fn()
    best = {k: min(ctx.time(fn) for _ in range(ctx.repeats)) for k, fn in runs.items()}
    audio = batch * seconds
    params = sum(p.numel() for p in tok.parameters()) / 1e6
    return [Figure("tokenizer encode throughput", audio / best["ours"], "audio s / s", audio / best["ref"],
                   "transformers 30 s padded", note=f"{'small' if ctx.cuda else 'tiny'} config ({params:.1f} M), "
                   f"batch {batch} x {seconds:g} s, {tok.bitrate:.0f} bit/s")]

"""Encode throughput of the audio tokenizer (seconds of audio per second) and its bitrate.

For each model size (the tiny config and a whisper-small-sized one) it times, in the same process:

* ours: ``AudioTokenizer.encode_batch`` (batched torch front end, variable-length Whisper encoder);
* reference: the usual way with transformers' pieces: ``WhisperFeatureExtractor`` (pads every clip to 30 s)
  then ``WhisperEncoder.forward`` on 3000 frames, then the same downsampler and quantizer;

and prints both, their ratio, and the bitrate (frame rate x sum(log2 K_i)). Weights are random (speed does
not depend on them); clips are noise of the given length.

    python bench/bench_tokenizer.py --device cpu
    python bench/bench_tokenizer.py --device cuda --batch 32 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audio_tokenizer.conv import ConvStackConfig  # noqa: E402
from audio_tokenizer.decoder import DecoderConfig  # noqa: E402
from audio_tokenizer.encoder import EncoderConfig  # noqa: E402
from audio_tokenizer.frontend import FrontendConfig  # noqa: E402
from audio_tokenizer.model import AudioTokenizer, AudioTokenizerConfig  # noqa: E402
from audio_tokenizer.quantizer import QuantizerConfig  # noqa: E402
from omni.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def tiny_config() -> AudioTokenizerConfig:
    """The model section of configs/tokenizer/tiny.yaml."""
    from audio_tokenizer.train import TokenizerTrainConfig

    return load_config(ROOT / "configs" / "tokenizer" / "tiny.yaml", TokenizerTrainConfig).model


def small_config() -> AudioTokenizerConfig:
    """Whisper-small-sized encoder (768 x 12 layers, 80 mels), full-size RVQ (8 levels, 8192 .. 1024)."""
    return AudioTokenizerConfig(
        frontend=FrontendConfig(n_mels=80),
        encoder=EncoderConfig(d_model=768, layers=12, heads=12, ffn_dim=3072),
        downsampler=ConvStackConfig(dim=768),
        quantizer=QuantizerConfig(dim=256),
        decoder=DecoderConfig(upsampler=ConvStackConfig(dim=768), d_model=768, layers=12, heads=12, ffn_dim=3072),
    )


def build(cfg: AudioTokenizerConfig, device: str) -> AudioTokenizer:
    cfg.quantizer.kmeans_init = False  # random codebooks, usable at once
    torch.manual_seed(0)
    return AudioTokenizer(cfg).to(device).eval()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def reference_encode(tok: AudioTokenizer, clips: list[np.ndarray], device: str) -> torch.Tensor:
    """transformers' way: features padded to 30 s, WhisperEncoder.forward on 3000 frames, then our quantizer."""
    fe = tok.cfg.frontend.feature_extractor()
    with torch.no_grad():
        feats = fe(clips, sampling_rate=tok.sample_rate, return_tensors="pt")["input_features"].to(device)
        hidden = tok.encoder.whisper(feats).last_hidden_state  # (B, 1500, D)
        lengths50 = torch.tensor([(len(c) // 160 + 1) // 2 for c in clips], device=device)
        steps = int(lengths50.max())
        down, code_lengths = tok.downsampler(hidden[:, :steps], lengths50)
        z = tok.pre_quant(down)
        mask = torch.arange(z.shape[1], device=device)[None, :] < code_lengths[:, None]
        return tok.quantizer(z, mask).codes


def bench(name: str, cfg: AudioTokenizerConfig, device: str, batch: int, seconds: float, repeats: int) -> dict:
    tok = build(cfg, device)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(int(seconds * tok.sample_rate))).astype(np.float32) for _ in range(batch)]
    wav = torch.from_numpy(np.stack(clips)).to(device)
    lengths = torch.full((batch,), wav.shape[1], dtype=torch.long)
    audio = batch * seconds
    ours = timed(lambda: tok.encode_batch(wav, lengths), repeats, device)
    ref = timed(lambda: reference_encode(tok, clips, device), repeats, device)
    params = sum(p.numel() for p in tok.parameters()) / 1e6
    return {"name": name, "device": device, "params_m": params, "ours": audio / ours, "ref": audio / ref,
            "ratio": ref / ours, "bitrate": tok.bitrate, "sizes": list(tok.codebook_sizes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sizes", default="tiny,small", help="Comma list of: tiny, small (whisper-small-sized).")
    parser.add_argument("--batch", type=int, default=8, help="Clips per encode call.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Length of each clip.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("note: --device cuda requested but no GPU is available here; skipped")
        return
    configs = {"tiny": tiny_config, "small": small_config}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
          f"batch {args.batch} x {args.seconds:g} s clips, {args.repeats} repeats")
    rows = [bench(n, configs[n](), args.device, args.batch, args.seconds, args.repeats) for n in args.sizes.split(",")]
    header = f"{'config':<7} {'device':<6} {'params*':>8} {'ours (audio s/s)':>17} {'HF 30-s padded':>15} {'speed-up':>9} {'bits/s':>7}  codebooks"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['name']:<7} {r['device']:<6} {r['params_m']:>7.1f}M {r['ours']:>17.1f} {r['ref']:>15.1f} "
              f"{r['ratio']:>8.2f}x {r['bitrate']:>7.0f}  {r['sizes']}")
    print("* parameters of encoder + quantizer + mel decoder; speed-up = ours / reference throughput")


if __name__ == "__main__":
    main()

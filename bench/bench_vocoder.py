"""Vocoder inference variants, back to back in one process: the full-size HiFi-GAN (random weights) with its
training-time weight norm, folded (what ``from_pretrained`` / ``SpeechDecoder`` use), folded with a time-major
input, and bfloat16 (weights or autocast; not used by default: its audio quality is not evaluated).

    PYTHONPATH=. python bench/bench_vocoder.py --device cpu --threads 1 --seconds 4

Prints seconds per run, x real time, achieved GFLOP/s (from ``torch.utils.flop_counter``) and each ratio
against the weight-norm form; the bf16 rows also print their largest deviation from float32.
"""

from __future__ import annotations

import argparse

import torch

from omni.bench.timing import median_time, use_device


def main() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from decoders.vocoder import HiFiGANVocoder, VocoderConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--seconds", type=float, default=4.0, help="audio length")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not use_device(args.device, args.threads):
        return
    device = torch.device(args.device)
    torch.manual_seed(0)
    wn = HiFiGANVocoder(VocoderConfig()).eval().to(device)
    folded = HiFiGANVocoder(VocoderConfig()).eval().to(device)
    folded.load_state_dict(wn.state_dict())
    folded.fold_weight_norm()
    bf16 = HiFiGANVocoder(VocoderConfig()).eval()
    bf16.load_state_dict(wn.state_dict())
    bf16 = bf16.fold_weight_norm().to(device, torch.bfloat16)
    mel = torch.randn(1, 80, int(args.seconds * 50), device=device)  # (1, M, F), 50 frames/s at 24 kHz
    time_major = mel.transpose(1, 2).contiguous().transpose(1, 2)  # same (1, M, F), strides (F M, 1, M)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        folded(mel)
    flops = fc.get_total_flops()
    runs = {
        "weight norm (training form)": lambda: wn(mel),
        "folded (inference)": lambda: folded(mel),
        "folded, time-major input": lambda: folded(time_major),
        "bf16 weights": lambda: bf16(mel.bfloat16()),
        "autocast bf16": lambda: torch.autocast(device.type, torch.bfloat16)(folded)(mel),
    }
    with torch.inference_mode():
        ref = folded(mel)
        times = {k: median_time(fn, args.repeats, device) for k, fn in runs.items()}
        err = {"bf16 weights": (bf16(mel.bfloat16()).float() - ref).abs().max().item(),
               "autocast bf16": (runs["autocast bf16"]().float() - ref).abs().max().item()}
    print(f"device {args.device} ({torch.get_num_threads()} threads), {args.seconds:g} s of audio, "
          f"{flops / args.seconds / 1e9:.1f} GFLOP per audio second, median of {args.repeats}")
    base = times["weight norm (training form)"]
    print(f"{'variant':30s} {'s':>7s} {'x real time':>12s} {'GFLOP/s':>8s} {'speed-up':>9s}  note")
    for k, t in times.items():
        note = f"max |diff| vs float32 {err[k]:.2e} (output std {ref.std().item():.2e})" if k in err else ""
        print(f"{k:30s} {t:7.3f} {args.seconds / t:12.2f} {flops / t / 1e9:8.0f} {base / t:9.2f}  {note}")


if __name__ == "__main__":
    main()

"""Speech-decoder speed: real-time factors of the flow decoder (per NFE) and the vocoder, next to peers,
and time to first audio in streaming vs whole-utterance mode. A benchmark, not a test: it prints a table.

    python bench/bench_decoder.py --device cpu [--seconds 10] [--nfe 2 4 10] [--repeats 3]

Peers, built from configs (random weights: speed does not depend on them), in the same process:
* transformers' Qwen2.5-Omni token-to-wave model (``Qwen2_5OmniToken2WavModel``): its DiT flow-matching
  estimator scaled to our flow decoder's parameter count, run for the same number of function evaluations
  (Euler, classifier-free guidance: both use a doubled batch), and its BigVGAN scaled to our vocoder's size.
  Qwen's DiT works at 100 mel frames/s (hop 240) from 50 Hz codes; ours at 50 frames/s from 12.5 Hz codes,
  so per second of audio it processes twice the frames: the RTF column is the cost of producing audio.
* ESPnet's HiFi-GAN V1 generator (22.05 kHz, hop 256), the published configuration.

RTF = compute seconds / audio seconds (lower is faster). ``--device cuda`` is skipped with a note when no
GPU is present.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from omni.bench.timing import median_time, use_device

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from decoders.flow import FlowDecoder, FlowDecoderConfig, time_span  # noqa: E402
from decoders.mel import MelConfig  # noqa: E402
from decoders.speech_decoder import SpeechDecoder, SpeechDecoderConfig  # noqa: E402
from decoders.vocoder import GeneratorConfig, HiFiGANVocoder, VocoderConfig, build_generator  # noqa: E402


def params(m: torch.nn.Module) -> float:
    return sum(p.numel() for p in m.parameters()) / 1e6


def qwen_token2wav(dit_hidden: int, dit_layers: int, bigvgan_channels: int):
    from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import (
        Qwen2_5OmniToken2WavConfig,
    )
    from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import Qwen2_5OmniToken2WavModel

    cfg = Qwen2_5OmniToken2WavConfig(
        dit_config={"hidden_size": dit_hidden, "num_hidden_layers": dit_layers, "num_attention_heads": dit_hidden // 64,
                    "head_dim": 64, "look_ahead_layers": [dit_layers // 2], "look_backward_layers": [0, dit_layers - 1],
                    "dropout": 0.0},
        bigvgan_config={"upsample_initial_channel": bigvgan_channels})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Qwen2_5OmniToken2WavModel(cfg).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description="Speech decoder real-time factors vs peers.")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--seconds", type=float, default=10.0, help="Utterance length.")
    ap.add_argument("--nfe", type=int, nargs="+", default=[2, 4, 10], help="Euler steps to time.")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default).")
    ap.add_argument("--parts", nargs="+", choices=["rtf", "stream"], default=["rtf", "stream"],
                    help="rtf: real-time factors vs peers; stream: time to first audio, streaming vs whole.")
    args = ap.parse_args()
    if not use_device(args.device, args.threads):
        return
    device = torch.device(args.device)
    torch.manual_seed(0)
    # ours, full size: flow decoder of the design brief (12 mid blocks) and HiFi-GAN V1 widths at 24 kHz
    flow = FlowDecoder(FlowDecoderConfig()).eval().to(device)
    voc = HiFiGANVocoder(VocoderConfig()).eval().fold_weight_norm().to(device)  # as loaded for inference
    codes = torch.randint(0, 1024, (int(args.seconds * flow.cfg.token_rate), 8))
    print(f"device: {args.device} ({torch.get_num_threads()} threads), utterance {args.seconds:g} s, "
          f"median of {args.repeats}")
    if "rtf" in args.parts:
        rtf_table(args, flow, voc, codes, device)
    if "stream" in args.parts:
        first_audio(args, flow, voc, codes)


@torch.no_grad()
def rtf_table(args, flow: FlowDecoder, voc: HiFiGANVocoder, codes: torch.Tensor, device: torch.device) -> None:
    """RTF of our flow decoder per NFE and our vocoder, next to Qwen2.5-Omni's DiT / BigVGAN and ESPnet's V1."""
    secs, n_tok = args.seconds, len(codes)
    frames = n_tok * flow.cfg.frames_per_token
    mu = flow.encoder(codes.unsqueeze(0).to(device), torch.ones(1, n_tok, device=device))  # (1, M, T)
    mask, z = torch.ones(1, 1, frames, device=device), torch.randn(1, 80, frames, device=device)
    rows = []  # (component, implementation, params M, NFE, seconds)
    ours, peer = {}, {}
    for nfe in args.nfe:
        ours[nfe] = median_time(lambda nfe=nfe: flow.cfm.solve_euler(z, time_span(nfe, "cosine", device), mask, mu,
                                                                guidance_scale=0.7), args.repeats, device)
        rows.append(("flow decoder", "ours: U-Net 1D (12 mid blocks)", params(flow), str(nfe), ours[nfe]))
    mel = torch.randn(1, 80, frames, device=device)
    t_voc = median_time(lambda: voc(mel), args.repeats, device)
    rows.append(("vocoder", "ours: ESPnet HiFi-GAN V1, hop 480", params(voc), "-", t_voc))

    # peer: Qwen2.5-Omni token2wav (DiT + BigVGAN) scaled to comparable sizes, Euler with guidance as ours
    qwen = qwen_token2wav(512, 10, 512).to(device)  # DiT 44.1 M, BigVGAN 13.0 M parameters
    dit, big = qwen.code2wav_dit_model, qwen.code2wav_bigvgan_model
    q_frames = int(secs * 100)  # 100 mel frames/s, 50 Hz codes repeated twice
    q_codes = torch.randint(0, 8192, (1, q_frames // dit.repeats), device=device)
    x = torch.randn(1, q_frames, 80, device=device)  # (B, T, mel)
    ref_mel = torch.randn(1, 300, 80, device=device)
    spk = torch.randn(1, q_frames, dit.config.enc_emb_dim, device=device)

    def qwen_euler(nfe: int) -> torch.Tensor:
        y, ts = x, time_span(nfe, "linear", device)
        for i in range(1, len(ts)):
            out = dit(hidden_states=y, condition_vector=ref_mel, speaker_embedding=spk, quantized_code=q_codes,
                      time_step=ts[i - 1], apply_cfg=True)  # (2B, T, mel): conditional and unconditional
            v_c, v_u = out.chunk(2, dim=0)
            y = y + (ts[i] - ts[i - 1]) * (v_c + 0.5 * (v_c - v_u))
        return y

    for nfe in args.nfe:
        peer[nfe] = median_time(lambda nfe=nfe: qwen_euler(nfe), args.repeats, device)
        rows.append(("flow decoder", "transformers Qwen2.5-Omni DiT (scaled)", params(dit), str(nfe), peer[nfe]))
    q_mel = torch.randn(1, 80, q_frames, device=device)
    t_big = median_time(lambda: big(q_mel), args.repeats, device)
    rows.append(("vocoder", "transformers Qwen2.5-Omni BigVGAN (scaled)", params(big), "-", t_big))

    # peer: ESPnet HiFi-GAN V1 as published (22.05 kHz, hop 256)
    v1cfg = VocoderConfig(mel=MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024),
                          generator=GeneratorConfig(upsample_scales=[8, 8, 2, 2]))
    v1 = build_generator(v1cfg).eval().to(device)
    v1.remove_weight_norm()  # ESPnet's inference form, like ours
    v1_mel = torch.randn(1, 80, int(secs * 22050 / 256), device=device)
    t_v1 = median_time(lambda: v1(v1_mel), args.repeats, device)
    rows.append(("vocoder", "ESPnet HiFi-GAN V1 (22.05 kHz, hop 256)", params(v1), "-", t_v1))

    print(f"\n{'component':<13} {'implementation':<42} {'params M':>8} {'NFE':>4} {'seconds':>8} {'RTF':>7}")
    for comp, impl, p, nfe, t in rows:
        print(f"{comp:<13} {impl:<42} {p:>8.1f} {nfe:>4} {t:>8.3f} {t / secs:>7.4f}")
    print("\nratios (ours / peer time; < 1 means ours is faster):")
    for nfe in args.nfe:
        print(f"  flow decoder, NFE {nfe:>2}: ours / Qwen2.5-Omni DiT = {ours[nfe] / peer[nfe]:.2f}")
    print(f"  vocoder: ours / Qwen2.5-Omni BigVGAN = {t_voc / t_big:.2f};  ours / ESPnet HiFi-GAN V1 = {t_voc / t_v1:.2f}")
    print("  whole pipeline RTF (ours) = flow + vocoder: "
          + ", ".join(f"NFE {n}: {(ours[n] + t_voc) / secs:.3f}" for n in args.nfe))


@torch.no_grad()
def first_audio(args, flow: FlowDecoder, voc: HiFiGANVocoder, codes: torch.Tensor) -> None:
    """Time to first audio: whole synthesis vs the first streamed chunk (codes arrive one frame at a time,
    all available at t = 0), and the total streaming time. Whole and first-chunk runs alternate, so a load
    change on a shared machine hits both alike."""
    cfg = SpeechDecoderConfig(device=args.device)
    print(f"\ntime to first audio, {args.seconds:g} s utterance (first chunk {cfg.first_chunk_tokens} tokens, then "
          f"{cfg.chunk_tokens}; look-ahead {cfg.lookahead_tokens}, left context {cfg.left_context_tokens}):")
    for nfe in sorted({min(args.nfe), max(args.nfe)}):
        dec = SpeechDecoder(flow, voc, SpeechDecoderConfig(n_steps=nfe, device=args.device))

        def frames():
            return (codes[i:i + 1] for i in range(len(codes)))

        next(iter(dec.stream(frames())))  # warm-up
        whole, first = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            dec.synthesize(codes)
            whole.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            next(iter(dec.stream(frames())))
            first.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in dec.stream(frames()):
            pass
        t_all = time.perf_counter() - t0
        t_whole, t_first = statistics.median(whole), statistics.median(first)
        print(f"  NFE {nfe:>2}: whole {t_whole:.3f} s, streaming first chunk {t_first:.3f} s "
              f"(ratio {t_first / t_whole:.3f}); streaming all chunks {t_all:.3f} s ({t_all / t_whole:.2f} x whole)")


if __name__ == "__main__":
    main()

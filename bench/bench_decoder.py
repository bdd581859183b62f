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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from decoders.flow import FlowDecoder, FlowDecoderConfig, time_span  # noqa: E402
from decoders.mel import MelConfig  # noqa: E402
from decoders.speech_decoder import SpeechDecoder, SpeechDecoderConfig  # noqa: E402
from decoders.vocoder import GeneratorConfig, HiFiGANVocoder, VocoderConfig, build_generator  # noqa: E402


def params(m: torch.nn.Module) -> float:
    return sum(p.numel() for p in m.parameters()) / 1e6


def timed(fn, repeats: int, device: torch.device) -> float:
    """Median wall seconds of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("note: --device cuda requested but no GPU is available here; skipped (run on a GPU machine)")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    rows: list[tuple[str, str, float, str, float, float]] = []
    secs = args.seconds

    # ---- ours: full-size flow decoder (design brief: 12 mid blocks) and HiFi-GAN V1 at 24 kHz
    flow = FlowDecoder(FlowDecoderConfig()).eval().to(device)
    voc = HiFiGANVocoder(VocoderConfig()).eval().to(device)
    n_tok = int(secs * flow.cfg.token_rate)
    codes = torch.randint(0, 1024, (n_tok, 8))
    frames = n_tok * flow.cfg.frames_per_token
    mu = flow.encoder(codes.unsqueeze(0).to(device), torch.ones(1, n_tok, device=device)).detach()
    mask = torch.ones(1, 1, frames, device=device)
    z = torch.randn(1, 80, frames, device=device)
    ours_flow = {}
    with torch.no_grad():
        for nfe in args.nfe:
            t = timed(lambda nfe=nfe: flow.cfm.solve_euler(z, time_span(nfe, "cosine", device), mask, mu,
                                                           guidance_scale=0.7), args.repeats, device)
            ours_flow[nfe] = t
            rows.append(("flow decoder", "ours: U-Net 1D (12 mid blocks)", params(flow), str(nfe), t, t / secs))
        mel = torch.randn(1, 80, frames, device=device)
        t_voc = timed(lambda: voc(mel), args.repeats, device)
        rows.append(("vocoder", "ours: ESPnet HiFi-GAN V1, hop 480", params(voc), "-", t_voc, t_voc / secs))

        # ---- peer: Qwen2.5-Omni token2wav (DiT + BigVGAN), scaled to comparable sizes
        qwen = qwen_token2wav(512, 10, 512).to(device)  # DiT 44.1 M, BigVGAN 13.0 M parameters
        dit, big = qwen.code2wav_dit_model, qwen.code2wav_bigvgan_model
        q_frames = int(secs * 100)  # 100 mel frames/s, 50 Hz codes repeated twice
        q_codes = torch.randint(0, 8192, (1, q_frames // dit.repeats), device=device)
        x = torch.randn(1, q_frames, 80, device=device)
        ref_mel = torch.randn(1, 300, 80, device=device)
        spk = torch.randn(1, q_frames, dit.config.enc_emb_dim, device=device)
        peer_flow = {}

        def qwen_euler(nfe: int) -> torch.Tensor:
            y = x
            ts = time_span(nfe, "linear", device)
            for i in range(1, len(ts)):
                out = dit(hidden_states=y, condition_vector=ref_mel, speaker_embedding=spk, quantized_code=q_codes,
                          time_step=ts[i - 1], apply_cfg=True)
                v_c, v_u = out.chunk(2, dim=0)
                y = y + (ts[i] - ts[i - 1]) * (v_c + 0.5 * (v_c - v_u))
            return y

        for nfe in args.nfe:
            t = timed(lambda nfe=nfe: qwen_euler(nfe), args.repeats, device)
            peer_flow[nfe] = t
            rows.append(("flow decoder", "transformers Qwen2.5-Omni DiT (scaled)", params(dit), str(nfe), t, t / secs))
        q_mel = torch.randn(1, 80, q_frames, device=device)
        t_big = timed(lambda: big(q_mel), args.repeats, device)
        rows.append(("vocoder", "transformers Qwen2.5-Omni BigVGAN (scaled)", params(big), "-", t_big, t_big / secs))

        # ---- peer: ESPnet HiFi-GAN V1 as published (22.05 kHz, hop 256)
        v1cfg = VocoderConfig(mel=MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024),
                              generator=GeneratorConfig(upsample_scales=[8, 8, 2, 2]))
        v1 = build_generator(v1cfg).eval().to(device)
        v1_mel = torch.randn(1, 80, int(secs * 22050 / 256), device=device)
        t_v1 = timed(lambda: v1(v1_mel), args.repeats, device)
        rows.append(("vocoder", "ESPnet HiFi-GAN V1 (22.05 kHz, hop 256)", params(v1), "-", t_v1, t_v1 / secs))

    # ---- streaming vs whole: time to first audio for one utterance (all codes available at t = 0)
    ttfa = []
    for nfe in sorted({min(args.nfe), max(args.nfe)}):
        dec = SpeechDecoder(flow, voc, SpeechDecoderConfig(n_steps=nfe, device=args.device))

        def whole(dec=dec) -> None:
            dec.synthesize(codes)

        def first_chunk(dec=dec) -> None:
            next(iter(dec.stream(codes[i:i + 1] for i in range(len(codes)))))

        def all_chunks(dec=dec) -> None:
            for _ in dec.stream(codes[i:i + 1] for i in range(len(codes))):
                pass

        ttfa.append((nfe, timed(whole, args.repeats, device), timed(first_chunk, args.repeats, device),
                     timed(all_chunks, 1, device), dec.cfg))

    print(f"\ndevice: {args.device} ({torch.get_num_threads()} threads), utterance {secs:g} s, median of {args.repeats}\n")
    print(f"{'component':<13} {'implementation':<42} {'params M':>8} {'NFE':>4} {'seconds':>8} {'RTF':>7}")
    for comp, impl, p, nfe, t, rtf in rows:
        print(f"{comp:<13} {impl:<42} {p:>8.1f} {nfe:>4} {t:>8.3f} {rtf:>7.4f}")
    print("\nratios (ours / peer time; < 1 means ours is faster):")
    for nfe in args.nfe:
        print(f"  flow decoder, NFE {nfe:>2}: ours / Qwen2.5-Omni DiT = {ours_flow[nfe] / peer_flow[nfe]:.2f}")
    print(f"  vocoder: ours / Qwen2.5-Omni BigVGAN = {t_voc / t_big:.2f};  ours / ESPnet HiFi-GAN V1 = {t_voc / t_v1:.2f}")
    print("  whole pipeline RTF (ours, NFE n) = flow + vocoder: "
          + ", ".join(f"NFE {n}: {(ours_flow[n] + t_voc) / secs:.3f}" for n in args.nfe))
    c = ttfa[0][4]
    print(f"\ntime to first audio, {secs:g} s utterance (first chunk {c.first_chunk_tokens} tokens, then "
          f"{c.chunk_tokens}; look-ahead {c.lookahead_tokens}, left context {c.left_context_tokens}):")
    for nfe, t_whole, t_first, t_all, _ in ttfa:
        print(f"  NFE {nfe:>2}: whole {t_whole:.3f} s, streaming first chunk {t_first:.3f} s "
              f"(ratio {t_first / t_whole:.3f}); streaming all chunks {t_all:.3f} s ({t_all / t_whole:.2f} x whole)")


if __name__ == "__main__":
    main()

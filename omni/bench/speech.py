"""Speech decoder: real-time factors of the full-size flow decoder (NFE 10) and vocoder, and the total time
of streamed synthesis against whole-utterance synthesis.

Models are the full-size defaults (``FlowDecoderConfig()``: U-Net 1D with 12 mid blocks, ~42 M parameters;
``VocoderConfig()``: HiFi-GAN V1 widths at 24 kHz, ~14 M, weight norm folded as when loaded for inference),
random weights (speed does not depend on them),
on a 10 s utterance of random codes. RTF = compute seconds / audio seconds; "x real time" is its inverse.
Streamed: codes arrive one frame at a time (all available at t = 0) through ``SpeechDecoder.stream`` with
the default chunking; queued: the first chunk's frames (and look-ahead) arrive, then the rest at once (an LLM
ahead of the decoder: what was ready is decoded in one window); whole: ``SpeechDecoder.synthesize``; the runs
alternate, so load hits them alike.
"""

from __future__ import annotations

import statistics

import torch

from omni.bench.core import BenchContext, Figure, Goal


@torch.no_grad()
def bench_speech_decoder(ctx: BenchContext) -> list[Figure]:
    from decoders.flow import FlowDecoder, FlowDecoderConfig, time_span
    from decoders.speech_decoder import SpeechDecoder, SpeechDecoderConfig
    from decoders.vocoder import HiFiGANVocoder, VocoderConfig

    seconds, nfe = (2.0, 2) if ctx.cfg.quick else (10.0, 10)
    torch.manual_seed(0)
    flow = FlowDecoder(FlowDecoderConfig()).eval().to(ctx.device)
    voc = HiFiGANVocoder(VocoderConfig()).eval().fold_weight_norm().to(ctx.device)  # as loaded for inference
    n_tok = int(seconds * flow.cfg.token_rate)
    codes = torch.randint(0, 1024, (n_tok, 8))  # (T, 8)
    frames = n_tok * flow.cfg.frames_per_token
    mu = flow.encoder(codes.unsqueeze(0).to(ctx.device), torch.ones(1, n_tok, device=ctx.device))  # (1, M, F)
    mask = torch.ones(1, 1, frames, device=ctx.device)  # (1, 1, F)
    z = torch.randn(1, 80, frames, device=ctx.device)  # (1, 80, F)
    mel = torch.randn(1, 80, frames, device=ctx.device)  # (1, 80, F)
    dec = SpeechDecoder(flow, voc, SpeechDecoderConfig(n_steps=nfe, device=ctx.cfg.device))

    def flow_run():
        flow.cfm.solve_euler(z, time_span(nfe, "cosine", ctx.device), mask, mu, guidance_scale=0.7)

    def streamed():
        for _ in dec.stream(codes[i:i + 1] for i in range(n_tok)):
            pass

    def queued():
        first = dec.cfg.first_chunk_tokens + dec.cfg.lookahead_tokens
        for _ in dec.stream([codes[:first], codes[first:]]):
            pass

    runs = {"flow": flow_run, "vocoder": lambda: voc(mel), "whole": lambda: dec.synthesize(codes),
            "streamed": streamed, "queued": queued}
    for fn in runs.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(ctx.repeats):
        for k, fn in runs.items():
            times[k].append(ctx.time(fn))
    t = {k: statistics.median(v) for k, v in times.items()}
    c = dec.cfg
    p = sum(x.numel() for x in flow.parameters()) / 1e6, sum(x.numel() for x in voc.parameters()) / 1e6
    return [
        Figure(f"flow decoder RTF at NFE {nfe}", t["flow"], "s compute", seconds, "s audio",
               note=f"full size, {p[0]:.1f} M params, Euler with guidance; ratio = RTF (lower is faster)"),
        Figure("vocoder speed (x real time)", t["vocoder"], "s compute", seconds, "s audio",
               Goal(">=", 5.0), inverse=True, note=f"full size HiFi-GAN, {p[1]:.1f} M params, 24 kHz"),
        Figure("streamed vs whole synthesis total time", t["streamed"], "s", t["whole"], "whole s", Goal("<=", 1.1),
               note=f"NFE {nfe}; chunks {c.first_chunk_tokens}/{c.chunk_tokens} tokens growing x{c.chunk_growth:g} to "
                    f"{c.max_chunk_tokens}, left context {c.left_context_tokens}, look-ahead {c.lookahead_tokens}: "
                    "each chunk re-decodes its context"),
        Figure("streamed (codes queued behind the first chunk) vs whole synthesis", t["queued"], "s", t["whole"],
               "whole s", Goal("<=", 1.1), note="the LLM ahead of the decoder: first chunk alone, then one window"),
    ]

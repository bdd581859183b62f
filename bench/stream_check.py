"""Streaming equivalence and seam smoothness of a trained SpeechDecoder (a measurement, not a timed test).

    python bench/stream_check.py --flow RUN/model --vocoder RUN/model --manifest codes/tts_dev.jsonl \
        [--utterances 8] [--arrival 1] [--save-dir DIR] [overrides of SpeechDecoderConfig ...]

For each utterance: the codes are decoded whole and streamed (codes arriving ``--arrival`` frames at a
time), with the same seed. It prints

* relative mel L1 = mean |mel(streamed) - mel(whole)| / mean |mel(whole)|, over all utterances;
* seam smoothness: the largest sample-to-sample jump |x[n] - x[n-1]| within 2 samples of each chunk
  boundary of the streamed audio, next to the largest and the 99.9th-percentile jump elsewhere
  (inside chunks); the same for a "naive" streamer without context, look-ahead or cross-fade, and, as a
  control, the jumps of whole-utterance synthesis at the same positions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from decoders.speech_decoder import SpeechDecoder, SpeechDecoderConfig  # noqa: E402
from omni.config import from_data  # noqa: E402
from omni.config.yaml_io import apply_overrides  # noqa: E402
from omni.data.codes import CodesReader  # noqa: E402
from omni.data.manifest import load_manifest  # noqa: E402

NAIVE = dict(left_context_tokens=0, lookahead_tokens=0, crossfade_tokens=0, vocoder_context_frames=0,
             vocoder_lookahead_frames=0, vocoder_crossfade_frames=0)


def stream(dec: SpeechDecoder, codes: torch.Tensor, arrival: int) -> tuple[torch.Tensor, list[int]]:
    chunks = list(dec.stream(codes[i:i + arrival] for i in range(0, len(codes), arrival)))
    return torch.cat([c.samples for c in chunks]), [c.start for c in chunks[1:]]


def seam_jumps(wav: torch.Tensor, seams: list[int]) -> tuple[float, float, float]:
    """(max jump near seams, max jump elsewhere, 99.9th percentile elsewhere)."""
    d = (wav[1:] - wav[:-1]).abs().numpy()  # d[n - 1] = |x[n] - x[n - 1]|
    near = np.zeros_like(d, dtype=bool)
    for s in seams:
        near[max(0, s - 3):s + 2] = True
    return float(d[near].max()) if near.any() else 0.0, float(d[~near].max()), float(np.quantile(d[~near], 0.999))


def main() -> None:
    ap = argparse.ArgumentParser(description="Streamed vs whole synthesis: mel L1 and seam jumps.")
    ap.add_argument("--flow", required=True)
    ap.add_argument("--vocoder", required=True)
    ap.add_argument("--manifest", required=True, type=Path, help="Manifest whose rows carry codes.")
    ap.add_argument("--utterances", type=int, default=8)
    ap.add_argument("--arrival", type=int, default=1, help="Code frames per arriving chunk.")
    ap.add_argument("--save-dir", type=Path, default=None, help="Write whole/streamed wavs of the first utterance.")
    ap.add_argument("overrides", nargs="*", help="SpeechDecoderConfig overrides, e.g. chunk_tokens=8.")
    args = ap.parse_args()
    data, origins = apply_overrides({}, {}, [f"flow_dir={args.flow}", f"vocoder_dir={args.vocoder}", *args.overrides])
    cfg = from_data(SpeechDecoderConfig, data, origins, "command line")
    dec = SpeechDecoder.from_config(cfg)
    naive = SpeechDecoder(dec.flow, dec.vocoder, SpeechDecoderConfig(**{**data, **NAIVE}))
    rows = load_manifest(args.manifest)[: args.utterances]
    reader = CodesReader(args.manifest)
    diff = ref = 0.0
    naive_diff = 0.0
    seams, inside, p999, naive_seams, whole_seams, n_seams = [], [], [], [], [], 0
    for i, row in enumerate(rows):
        codes = reader.load(row.codes)
        whole = dec.synthesize(codes)
        streamed, starts = stream(dec, codes, args.arrival)
        rough, rough_starts = stream(naive, codes, args.arrival)
        mel_w, mel_s, mel_n = (dec.front_end(w)[0] for w in (whole, streamed, rough))
        diff += float((mel_s - mel_w).abs().sum())
        naive_diff += float((mel_n - mel_w).abs().sum())
        ref += float(mel_w.abs().sum())
        a, b, c = seam_jumps(streamed, starts)
        seams.append(a), inside.append(b), p999.append(c)
        naive_seams.append(seam_jumps(rough, rough_starts)[0])
        whole_seams.append(seam_jumps(whole, starts)[0])  # control: the same positions in whole synthesis
        n_seams += len(starts)
        if i == 0 and args.save_dir is not None:
            from omni.audio.io import save_audio

            args.save_dir.mkdir(parents=True, exist_ok=True)
            save_audio(args.save_dir / "whole.wav", whole.numpy(), dec.sample_rate)
            save_audio(args.save_dir / "streamed.wav", streamed.numpy(), dec.sample_rate)
    c = dec.cfg
    print(f"{len(rows)} utterances, {n_seams} seams; codes arriving {args.arrival} frame(s) at a time; "
          f"chunks {c.first_chunk_tokens}/{c.chunk_tokens} tokens, left context {c.left_context_tokens}, "
          f"look-ahead {c.lookahead_tokens}, cross-fade {c.crossfade_tokens} token(s); vocoder context "
          f"{c.vocoder_context_frames}, look-ahead {c.vocoder_lookahead_frames}, cross-fade "
          f"{c.vocoder_crossfade_frames} frame(s); NFE {c.n_steps or dec.flow.cfg.n_steps}, seed {c.seed}")
    print(f"relative mel L1, streamed vs whole: {100 * diff / ref:.3f} %   (naive streaming: {100 * naive_diff / ref:.3f} %)")
    print(f"max sample jump within 2 samples of a seam: {max(seams):.4f}   (naive streaming: {max(naive_seams):.4f}; "
          f"whole synthesis at the same positions: {max(whole_seams):.4f})")
    print(f"max sample jump inside chunks:              {max(inside):.4f}   99.9th percentile: {max(p999):.4f}")


if __name__ == "__main__":
    main()

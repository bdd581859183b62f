"""STAND-IN audio codes for developing the flow decoder before the audio tokenizer (issue 3) lands.

NOT the project's audio tokenizer and not a substitute for it: it quantises pooled log-mel frames
(4 mel frames of 20 ms -> one 12.5 Hz frame) with an 8-level residual VQ from vector-quantize-pytorch
(k-means initialised, a few EMA passes), so the codes have the shape, rate and range of real ones
(T, 8) at 12.5 Hz but carry acoustic, not semantic, information. Use it only to exercise
`omni train flow` end to end; runs trained on these codes must be redone on `omni data tokenize` codes.

    python tools/standin_codes.py CORPUS_DIR OUT_DIR [--codebook-size 256] [--manifests tts_train tts_dev tts_test]

writes OUT_DIR/codes/shard-00000.safetensors and copies of the manifests in OUT_DIR whose rows carry
`codes` references (audio paths made absolute).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from vector_quantize_pytorch import ResidualVQ

from decoders.mel import MelConfig, MelFrontEnd
from omni.audio.io import load_audio
from omni.data.codes import write_codes_shard
from omni.data.manifest import CodesRef, load_manifest, resolve_media, write_manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--codebook-size", type=int, default=256)
    ap.add_argument("--manifests", nargs="+", default=["tts_train", "tts_dev", "tts_test"])
    args = ap.parse_args()
    torch.manual_seed(0)
    front = MelFrontEnd(MelConfig())
    feats: dict[str, dict[str, torch.Tensor]] = {}
    rows = {}
    for name in args.manifests:
        manifest = args.corpus / f"{name}.jsonl"
        rows[name] = load_manifest(manifest)
        feats[name] = {}
        for r in rows[name]:
            wav = torch.from_numpy(load_audio(resolve_media(manifest, r.audio), 24000).samples)
            mel = front(wav)[0]  # (80, F)
            t = mel.shape[1] // 4
            feats[name][r.id] = mel[:, : 4 * t].T.reshape(t, 4 * 80)  # (T, 320): 4 frames per token
    train = torch.cat(list(feats[args.manifests[0]].values()))  # (N, 320)
    mean, std = train.mean(0), train.std(0) + 1e-5
    rvq = ResidualVQ(dim=320, num_quantizers=8, codebook_size=args.codebook_size, kmeans_init=True,
                     kmeans_iters=10, decay=0.9, threshold_ema_dead_code=2)
    rvq.train()
    for _ in range(5):
        rvq(((train - mean) / std).unsqueeze(0))
    rvq.eval()
    shard: dict[str, torch.Tensor] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.manifests:
        new_rows = []
        for r in rows[name]:
            x = ((feats[name][r.id] - mean) / std).unsqueeze(0)
            _, idx, _ = rvq(x)  # (1, T, 8)
            key = f"{name}/{r.id}"
            shard[key] = idx[0].to(torch.int32)
            audio = str(resolve_media(args.corpus / f"{name}.jsonl", r.audio))
            new_rows.append(dataclasses.replace(r, audio=audio, codes=CodesRef("codes/shard-00000.safetensors", key)))
        write_manifest(args.out / f"{name}.jsonl", new_rows)
    write_codes_shard(args.out / "codes" / "shard-00000.safetensors", shard,
                      {"frame_rate": "12.5", "tokenizer": "STAND-IN k-means RVQ on pooled log-mel (tools/standin_codes.py)"})
    print(f"wrote stand-in codes for {len(shard)} utterances to {args.out}")


if __name__ == "__main__":
    main()

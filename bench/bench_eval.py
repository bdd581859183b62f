"""Evaluation throughput: batched vs one-by-one omni ASR (utterances/s, RTF), next to the PocketSphinx judge.
A benchmark, not a test: it prints a table and the ratios, all measured back to back in one process.

    python bench/bench_eval.py --device cpu [--checkpoint DIR] [--manifest M.jsonl] [--utterances 32]
                               [--batch-sizes 1 8 16] [--max-new-tokens 24] [--threads 1]

Without ``--checkpoint`` a tiny random bundle is built in a temp directory (plumbing speed: its text is
nonsense, and greedy decoding runs to ``--max-new-tokens`` unless it stops early, the same for every batch
size). Without ``--manifest`` a small synthetic corpus is rendered. Every configuration runs on the same
utterances through :func:`omni.eval.asr.evaluate_asr` (file reading excluded from RTF), after one warm-up
batch; ``--repeats`` rounds over all configurations (round robin), the fastest round of each is shown.
RTF = processing seconds / audio seconds; utterances/s = utterances / wall seconds of the loop.
``--device cuda`` is skipped with a note when no GPU is present.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from omni.bench.timing import use_device

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omni.eval.asr import AsrEvalConfig, evaluate_asr  # noqa: E402
from omni.eval.data import EvalDataConfig  # noqa: E402
from omni.eval.parallel import DistContext  # noqa: E402
from omni.eval.recognizers import RecognizerConfig, build_recognizer  # noqa: E402
from omni.eval.results import summarize  # noqa: E402


def corpus_manifest(tmp: Path, n: int) -> Path:
    from omni.data.synth.config import CorpusConfig
    from omni.data.synth.corpus import build_corpus

    out = tmp / "corpus"
    build_corpus(CorpusConfig(seed=1, utterances=max(24, n), eval_renders=1), out, workers=1, progress=False)
    return out / "asr_train.jsonl"


def subset(manifest: Path, n: int, tmp: Path) -> Path:
    rows = []
    for line in manifest.read_text().splitlines()[:n]:
        row = json.loads(line)
        if "audio" in row and not Path(row["audio"]).is_absolute():
            row["audio"] = str((manifest.parent / row["audio"]).resolve())
        rows.append(row)
    out = tmp / "bench.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def run(recognizer, manifest: Path, batch_size: int, device: str) -> dict:
    cfg = AsrEvalConfig(data=EvalDataConfig(batch_size=batch_size))
    r = evaluate_asr(cfg, manifest, recognizer, DistContext(0, 1, device), progress=False)
    t = summarize(r.results)
    return {"utts": t["scored"], "audio_s": t["audio_seconds"], "proc_s": t["processing_seconds"],
            "wall_s": r.wall_seconds, "utt_per_s": t["scored"] / r.wall_seconds, "rtf": t["rtf"], "wer": t["wer"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--manifest", type=Path, default=None)
    ap.add_argument("--utterances", type=int, default=32)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="Rounds over all configurations; the best round counts.")
    ap.add_argument("--no-sphinx", action="store_true", help="Skip the PocketSphinx row.")
    args = ap.parse_args()
    if not use_device(args.device, args.threads):
        return
    from omni.bundle import load_bundle, tiny_bundle

    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp_s:
        tmp = Path(tmp_s)
        ckpt = args.checkpoint or tiny_bundle(tmp / "tiny", seed=0)
        manifest = subset(args.manifest or corpus_manifest(tmp, args.utterances), args.utterances, tmp)
        bundle = load_bundle(ckpt, device=args.device)
        omni = build_recognizer(RecognizerConfig(name="omni", device=args.device, max_new_tokens=args.max_new_tokens),
                                bundle)
        (tmp / "warm").mkdir()
        run(omni, subset(manifest, 2, tmp / "warm"), 2, args.device)  # warm-up: first-call allocations, lazy imports
        rows: dict[str, dict] = {}
        for _ in range(args.repeats):  # round robin, so load changes on a shared machine hit every configuration
            for bs in args.batch_sizes:
                r = run(omni, manifest, bs, args.device)
                name = f"omni batch {bs}"
                if name not in rows or r["wall_s"] < rows[name]["wall_s"]:
                    rows[name] = r
        if not args.no_sphinx:
            rows["pocketsphinx (1 by 1)"] = run(build_recognizer(RecognizerConfig(name="pocketsphinx")), manifest, 8,
                                                "cpu")
    print(f"device {args.device}, threads {args.threads}, checkpoint {'tiny random' if not args.checkpoint else ckpt}, "
          f"max_new_tokens {args.max_new_tokens}")
    print(f"{'system':24s} {'utts':>5s} {'audio s':>8s} {'proc s':>8s} {'wall s':>8s} {'utt/s':>8s} {'RTF':>8s}")
    for name, r in rows.items():
        print(f"{name:24s} {r['utts']:5d} {r['audio_s']:8.1f} {r['proc_s']:8.2f} {r['wall_s']:8.2f} "
              f"{r['utt_per_s']:8.2f} {r['rtf']:8.4f}")
    base = rows.get("omni batch 1")
    if base:
        for name, r in rows.items():
            if name.startswith("omni batch") and name != "omni batch 1":
                print(f"{name} vs batch 1: throughput x{r['utt_per_s'] / base['utt_per_s']:.2f}, "
                      f"RTF x{base['rtf'] / r['rtf']:.2f} lower")


if __name__ == "__main__":
    main()

"""Evaluation throughput: batched vs one-by-one omni ASR (utterances/s) through :func:`omni.eval.asr.evaluate_asr`.

A random tiny bundle and a small synthetic corpus are built in a temporary directory (plumbing speed: the
text is nonsense and greedy decoding runs to ``max_new_tokens``, the same for every batch size). Batch 1
and batch 8 alternate over the same utterances; the best round of each counts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from omni.bench.core import BenchContext, Figure


def bench_evaluation(ctx: BenchContext) -> list[Figure]:
    from omni.bundle import load_bundle, tiny_bundle
    from omni.data.synth.config import CorpusConfig
    from omni.data.synth.corpus import build_corpus
    from omni.eval.asr import AsrEvalConfig, evaluate_asr
    from omni.eval.data import EvalDataConfig
    from omni.eval.parallel import DistContext
    from omni.eval.recognizers import RecognizerConfig, build_recognizer

    n, batch = (4, 4) if ctx.cfg.quick else (16, 8)
    with tempfile.TemporaryDirectory(prefix="omni-bench-eval-") as tmp_s:
        tmp = Path(tmp_s)
        build_corpus(CorpusConfig(seed=1, utterances=24, eval_renders=1), tmp / "corpus", workers=1, progress=False)
        src = tmp / "corpus" / "asr_train.jsonl"
        rows = [json.loads(line) for line in src.read_text().splitlines()[:n]]
        for r in rows:
            r["audio"] = str((src.parent / r["audio"]).resolve())
        manifest = tmp / "bench.jsonl"
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
        bundle = load_bundle(tiny_bundle(tmp / "tiny", seed=0), device=ctx.cfg.device)
        rec = build_recognizer(RecognizerConfig(name="omni", device=ctx.cfg.device, max_new_tokens=24), bundle)

        def run(bs: int) -> float:
            cfg = AsrEvalConfig(data=EvalDataConfig(batch_size=bs))
            r = evaluate_asr(cfg, manifest, rec, DistContext(0, 1, ctx.cfg.device), progress=False)
            return len(r.results) / r.wall_seconds

        run(batch)  # warm-up
        best = {1: 0.0, batch: 0.0}
        for _ in range(ctx.repeats):
            for bs in best:
                best[bs] = max(best[bs], run(bs))
    return [Figure(f"ASR evaluation throughput: batch {batch} vs one by one", best[batch], "utt/s", best[1],
                   "batch 1", note=f"random tiny bundle, {n} synthetic utterances, max_new_tokens 24")]

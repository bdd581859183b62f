#!/bin/bash
# The recipe's vocoder step alone on a finished run's corpus, with overrides (after the recipe's own), then the
# copy-synthesis gate on the recipe's 60 sentences.
# usage: RUN=runs/tiny OUT=/tmp/voc bash reports/learning/run18/vocoder.sh NAME [overrides...]
set -euo pipefail
RUN=${RUN:-runs/tiny}; OUT=${OUT:-/tmp/voc}; NAME=$1; shift
mkdir -p "$OUT"; [ -e "$OUT/judge_cache" ] || cp -r "$RUN/judge_cache" "$OUT/judge_cache"
omni train vocoder configs/decoder/vocoder_tiny.yaml "train_manifests=[$RUN/corpus/tts_train.jsonl]" \
  "dev_manifest=$RUN/corpus/tts_dev.jsonl" adversarial_start=1200 loop.max_steps=1200 loop.eval_every=600 \
  loop.save_every=600 "loop.output_dir=$OUT/$NAME" "$@" > "$OUT/$NAME.log" 2>&1
omni eval vocoder "$RUN/corpus/tts_test.jsonl" --vocoder "$OUT/$NAME/model" --out "$OUT/$NAME.gate" \
  --config configs/eval/vocoder.yaml --no-plots data.limit=60 "reference_cache=$OUT/judge_cache" > "$OUT/$NAME.gate.log" 2>&1
python - "$OUT/$NAME.gate/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"WER {r['totals']['wer']:.3f} ratio {r['wer_ratio']:.2f} MCD {r['mcd']['mean']:.2f}")
PY

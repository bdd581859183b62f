#!/bin/bash
# The recipe's flow step alone on a finished run's codes (its tokenizer's codebooks as the tables' start), with
# overrides, then the resynthesis gate with the run's tokenizer and vocoder on the recipe's 60 sentences.
# usage: RUN=runs/tiny OUT=/tmp/flow bash reports/learning/run18/flow.sh NAME [overrides...]
# Writes OUT/NAME (the model), OUT/NAME.gate (the gate's report) and the logs; prints the gate's WER and ratio.
set -euo pipefail
RUN=${RUN:-runs/tiny}; OUT=${OUT:-/tmp/flow}; NAME=$1; shift
mkdir -p "$OUT"; [ -e "$OUT/judge_cache" ] || cp -r "$RUN/judge_cache" "$OUT/judge_cache"
omni train flow configs/decoder/flow_tiny.yaml "train_manifests=[$RUN/corpus/tts_train.codes.jsonl]" \
  "dev_manifest=$RUN/corpus/tts_dev.codes.jsonl" "codebooks_from=$RUN/tokenizer/tokenizer" \
  "loop.output_dir=$OUT/$NAME" "$@" > "$OUT/$NAME.log" 2>&1
omni eval tokenizer "$RUN/corpus/tts_test.jsonl" --tokenizer "$RUN/tokenizer/tokenizer" --flow "$OUT/$NAME/model" \
  --vocoder "$RUN/vocoder/model" --out "$OUT/$NAME.gate" --config configs/eval/tokenizer.yaml --no-plots \
  data.limit=60 "reference_cache=$OUT/judge_cache" > "$OUT/$NAME.gate.log" 2>&1
python - "$OUT/$NAME.gate/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"WER {r['totals']['wer']:.3f} ratio {r['wer_ratio']:.2f} MCD {r['mcd']['mean']:.2f}")
PY

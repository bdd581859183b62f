#!/bin/bash
# The recipe's tokenizer step alone, on a finished run's corpus and LM, with overrides (session 17's T5).
# usage: RUN=runs/tiny OUT=/tmp/tok bash reports/learning/run17/tok.sh NAME STEPS [overrides...]
#   e.g. bash reports/learning/run17/tok.sh t2500w0 2500 transcription.weight=0 loop.eval_every=1250 loop.save_every=1250
# Writes OUT/NAME (the run: eval_report.json, tensorboard) and OUT/NAME.log.
set -euo pipefail
RUN=${RUN:-runs/tiny}; OUT=${OUT:-/tmp/tok}; NAME=$1; STEPS=$2; shift 2
mkdir -p "$OUT"
omni train tokenizer configs/tokenizer/tiny.yaml "train_manifests=[$RUN/corpus/asr_train.jsonl]" \
  "dev_manifests=[$RUN/corpus/asr_dev.jsonl]" "transcription.lm_path=$RUN/lm/model" "loop.output_dir=$OUT/$NAME" \
  "loop.max_steps=$STEPS" "$@" > "$OUT/$NAME.log" 2>&1
grep -o '"ctc_wer": [0-9.]*' "$OUT/$NAME/eval_report.json"

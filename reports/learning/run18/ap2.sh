#!/bin/bash
# A variant of the recipe's audio pretrain 2, branched from a finished run (its steps before audio_pretrain_2
# linked), then its model's seen-voice ASR (the recipe's 443 test clips) and text QA, each bundled with the run's
# speech components. OVERRIDES are appended to the step's overrides in the recipe (YAML flow items).
# usage: RUN=runs/tiny OUT=/tmp/ap2 bash reports/learning/run18/ap2.sh NAME 'OVERRIDES' [--until STEP]
#   e.g. ap2.sh lr1 '"param_groups=[{name: all, match: [llm, embeddings, lm_head, audio_embed, audio_head], lr: 1.0e-3}]"'
set -euo pipefail
RUN=$(realpath "${RUN:-runs/tiny}"); OUT=${OUT:-/tmp/ap2}; NAME=$1; EXTRA=$2; shift 2
UNTIL=${1:-}; [ "$UNTIL" = "--until" ] && UNTIL=$2 || UNTIL=audio_pretrain_2
mkdir -p "$OUT"; recipe="$OUT/$NAME.yaml"; root="$OUT/$NAME"
step='loop.max_steps=1300, loop.batch_size=16, loop.eval_every=1300, loop.save_every=650\]'
sed "s#$step#loop.max_steps=1300, loop.batch_size=16, loop.eval_every=1300, loop.save_every=650, $EXTRA]#" \
  configs/recipes/tiny.yaml > "$recipe"
! cmp -s configs/recipes/tiny.yaml "$recipe" || { echo "ap2.sh: the pattern did not match" >&2; exit 1; }
bash reports/learning/run14/branch.sh "$RUN" "$root" audio_pretrain_2 "$recipe" --until "$UNTIL" > "$OUT/$NAME.log" 2>&1
for stage in audio_pretrain_2 multimodal_sft dpo; do
  [ -d "$root/$stage/final" ] || continue
  omni bundle assemble --out "$OUT/$NAME.b_$stage" --model "$root/$stage/final" --audio-tokenizer "$RUN/tokenizer/tokenizer" \
    --flow "$RUN/flow/model" --vocoder "$RUN/vocoder/model" --overwrite > /dev/null
  omni eval asr "$RUN/corpus/asr_test.jsonl" --checkpoint "$OUT/$NAME.b_$stage" --config configs/eval/asr.yaml \
    --out "$OUT/$NAME.asr_$stage" --limit 443 --no-plots > "$OUT/$NAME.asr_$stage.log" 2>&1
  omni eval qa "$RUN/corpus/text_test.jsonl" --checkpoint "$OUT/$NAME.b_$stage" --config configs/eval/qa.yaml \
    --out "$OUT/$NAME.text_$stage" speech_in=false > "$OUT/$NAME.text_$stage.log" 2>&1 || true
  echo "$NAME $stage asr $(grep -o '"wer": [0-9.]*' "$OUT/$NAME.asr_$stage/report.json" | head -1) text $(grep -o '"accuracy": [0-9.]*' "$OUT/$NAME.text_$stage/report.json" 2>/dev/null | head -1)"
done

#!/bin/bash
# Seen-voice ASR WER (443 test clips, the recipe's eval) of each LLM stage's model of a finished run: where along
# the chain the hearing is won and lost. usage: bash reports/learning/run17/chain_asr.sh RUN OUT
set -euo pipefail
RUN=$1; OUT=$2; mkdir -p "$OUT"
for stage in audio_pretrain_1 audio_pretrain_2 multimodal_sft dpo; do
  omni bundle assemble --out "$OUT/b_$stage" --model "$RUN/$stage/final" --audio-tokenizer "$RUN/tokenizer/tokenizer" \
    --flow "$RUN/flow/model" --vocoder "$RUN/vocoder/model" --overwrite > /dev/null
  omni eval asr "$RUN/corpus/asr_test.jsonl" --checkpoint "$OUT/b_$stage" --config configs/eval/asr.yaml \
    --out "$OUT/asr_$stage" --limit 443 --no-plots > "$OUT/asr_$stage.log" 2>&1
  echo "$stage $(grep -o '"wer": [0-9.]*' "$OUT/asr_$stage/report.json" | head -1)"
done

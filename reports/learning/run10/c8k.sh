# Experiment G, data: G3 (ASR alone, 750 steps x 16, the recipe's 2-layer warm-up) on an 8000-utterance corpus'
# ASR clips instead of the 4000-utterance one (the generator nests the 4000 sentences and none of their test
# sentences); scored on the run's 443 seen-voice test clips.  usage: bash reports/learning/run10/c8k.sh
set -e
s=$(date +%s)
omni data synth --out runs/exp/c8k --config configs/data/synth.yaml --utterances 8000 --workers 2 --no-progress \
  > runs/exp/c8k_synth.log 2>&1
omni data tokenize runs/exp/c8k/asr_train.jsonl --tokenizer runs/tiny/tokenizer/tokenizer --workers 2 \
  --batch-seconds 120 > runs/exp/c8k_tok.log 2>&1
echo "corpus + codes in $(( $(date +%s) - s )) s"
s=$(date +%s)
omni train stage reports/learning/run10/asr_depth.yaml loop.max_steps=750 loop.eval_every=750 loop.save_every=750 \
  "data.sources=[{name: asr, manifests: [runs/exp/c8k/asr_train.codes.jsonl], task: asr, ratio: 1.0, concat_seconds: 20.0}]" \
  loop.output_dir=runs/exp/g_c8k_750 > runs/exp/g_c8k_750.log 2>&1
echo "g_c8k_750 trained in $(( $(date +%s) - s )) s"
bash reports/learning/run6/asr_eval.sh runs/exp/g_c8k_750/final g_c8k_750

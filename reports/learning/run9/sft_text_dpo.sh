# The recipe's last steps on runs/exp/sft_text (sft_text.yaml): make-pairs from that SFT model, DPO 600 steps on the
# corpus pairs + those, then the answers, spoken QA and ASR of the DPO model. Run from the clone root (data/ linked).
set -e
[ -x .venv/bin/omni ] && PATH="$PWD/.venv/bin:$PATH"
T=runs/tiny
/usr/bin/time -f "pairs %e s" omni data make-pairs $T/corpus/preference_train.jsonl --model runs/exp/sft_text/final \
  --out runs/exp/pairs_sft_text/pairs.jsonl --candidates 4 --temperature 1.0 --min-gap 0.5 --text-in 2>&1 | tail -2
/usr/bin/time -f "dpo %e s" omni train dpo configs/stages/tiny/dpo.yaml init_from=runs/exp/sft_text/final \
  "data.train=[$T/corpus/preference_train.jsonl,runs/exp/pairs_sft_text/pairs.jsonl]" "data.dev=[$T/corpus/preference_dev.jsonl]" \
  loop.max_steps=600 loop.eval_every=200 loop.save_every=200 loop.output_dir=runs/exp/dpo_sft_text_exact 2>&1 | tail -2
python reports/learning/stage_qa.py --pref --spoken runs/tiny runs/exp/dpo_sft_text_exact/final runs/exp/sft_text/final 2>&1 | grep '^|'
bash reports/learning/run6/asr_eval.sh runs/exp/dpo_sft_text_exact/final dpo_sft_text_exact 2>&1 | tail -1

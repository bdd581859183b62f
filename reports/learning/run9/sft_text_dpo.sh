# The recipe's last steps on an SFT experiment's model runs/exp/NAME/final (NAME = sft_text, sft_text_img, sft_text2_img):
# make-pairs from it, DPO 600 steps on the corpus pairs + those, then the answers, spoken QA and ASR of the DPO
# model. Run from the clone root (data/ linked).   usage: bash reports/learning/run9/sft_text_dpo.sh [NAME]
set -e
[ -x .venv/bin/omni ] && PATH="$PWD/.venv/bin:$PATH"
T=runs/tiny
N=${1:-sft_text}
/usr/bin/time -f "pairs %e s" omni data make-pairs $T/corpus/preference_train.jsonl --model runs/exp/$N/final \
  --out runs/exp/pairs_$N/pairs.jsonl --candidates 4 --temperature 1.0 --min-gap 0.5 --text-in 2>&1 | tail -2
/usr/bin/time -f "dpo %e s" omni train dpo configs/stages/tiny/dpo.yaml init_from=runs/exp/$N/final \
  "data.train=[$T/corpus/preference_train.jsonl,runs/exp/pairs_$N/pairs.jsonl]" "data.dev=[$T/corpus/preference_dev.jsonl]" \
  loop.max_steps=600 loop.eval_every=200 loop.save_every=200 loop.output_dir=runs/exp/dpo_${N}_exact 2>&1 | tail -2
python reports/learning/stage_qa.py --pref --spoken runs/tiny runs/exp/dpo_${N}_exact/final runs/exp/$N/final 2>&1 | grep '^|'
bash reports/learning/run6/asr_eval.sh runs/exp/dpo_${N}_exact/final dpo_${N}_exact 2>&1 | tail -1

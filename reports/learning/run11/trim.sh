# After full run 11 (in its clone): (1) the code cache with 2 worker processes against the recipe's 1, on the
# run's asr_train manifest (6683 clips), written beside it under runs/exp; (2) DPO for 900 steps from the run's
# SFT model on the run's pairs (the recipe: 600), held-out reward accuracy every 300 steps, and 600 steps at lr
# 2e-4 (the recipe: 1e-4).
# usage: bash reports/learning/run11/trim.sh
set -e
R=runs/tiny; O=runs/exp/trim; mkdir -p $O
for w in 1 2; do
  s=$(date +%s)
  omni data tokenize $R/corpus/asr_train.jsonl --tokenizer $R/tokenizer/tokenizer --workers $w --no-progress \
    --out $O/asr_train_w$w.codes.jsonl --codes-dir $O/codes_w$w > $O/codes_w$w.log 2>&1
  echo "codes, workers $w: $(( $(date +%s) - s )) s"
done
dpo() {  # NAME STEPS EVAL_EVERY LR
  s=$(date +%s)
  omni train dpo configs/stages/tiny/dpo.yaml init_from=$R/multimodal_sft/final \
    "data.train=[$R/corpus/preference_train.jsonl, $R/pairs/pairs.jsonl]" "data.dev=[$R/corpus/preference_dev.jsonl]" \
    loop.max_steps=$2 loop.eval_every=$3 loop.save_every=$2 optim.lr=$4 loop.progress=false loop.output_dir=$O/$1 \
    > $O/$1.log 2>&1
  echo "$1: $(( $(date +%s) - s )) s"
}
dpo dpo900 900 300 1.0e-4
dpo dpo_lr2e-4 600 200 2.0e-4
python - $O/dpo900 $O/dpo_lr2e-4 <<'PY'
import sys
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
for run in sys.argv[1:]:
    for ev in Path(run).rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(ev)); acc.Reload()
        if "eval/rewards/accuracies" in acc.Tags()["scalars"]:
            print(run, "reward accuracy by step:",
                  [(e.step, round(e.value, 3)) for e in acc.Scalars("eval/rewards/accuracies")])
PY

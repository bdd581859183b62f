# DPO with image pairs, on a finished tiny recipe's outputs (run from the clone root that ran it).
# usage: bash reports/learning/run8/dpo.sh NAME STEPS LR IMAGE_PAIRS(0|1) [more dpo overrides]
set -e
[ -x .venv/bin/omni ] && PATH="$PWD/.venv/bin:$PATH"  # the clone's own environment, activated or not
T=runs/tiny
name=$1 steps=$2 lr=$3 img=$4
shift 4
if [ ! -f runs/exp/images_pref/image_preference_train.jsonl ]; then  # the recipe's image set + its preference rows
  omni data images --out runs/exp/images_pref train_images=1500 questions_per_image=4 preference_fraction=0.5 > /dev/null
fi
train="$T/corpus/preference_train.jsonl,$T/pairs/pairs.jsonl"
[ "$img" = 1 ] && train="$train,runs/exp/images_pref/image_preference_train.jsonl"
/usr/bin/time -f "$name %e s" omni train dpo configs/stages/tiny/dpo.yaml init_from=$T/multimodal_sft/final \
  "data.train=[$train]" "data.dev=[$T/corpus/preference_dev.jsonl]" optim.lr=$lr \
  loop.max_steps=$steps loop.eval_every=$steps loop.save_every=$steps loop.output_dir=runs/exp/dpo_$name "$@" 2>&1 | tail -2

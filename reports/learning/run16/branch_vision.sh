#!/usr/bin/env bash
# Branch a finished run of the recipe (BASE, e.g. full run 14's runs/tiny) for a recipe with the vision warm-up:
# every step of the base run linked except `vision_images`, `vision` and the omni stages from image_text_pretrain_1 on, which run
# in NEW. Run from the repository root.  Usage: branch_vision.sh BASE NEW [RECIPE]
set -euo pipefail
base=$1 new=$2 recipe=${3:-configs/recipes/tiny.yaml}
mkdir -p "$new"
for s in corpus images lm tokenizer gate_codes codes flow vocoder gate_vocoder gate_griffin_lim gate_resynthesis; do
  [ -e "$new/$s" ] || ln -s "$base/$s" "$new/$s"
done
[ -e "$new/judge_cache" ] || cp -r "$base/judge_cache" "$new/judge_cache"
omni train pipeline "$recipe" output_root="$new" --until eval_pref_dpo

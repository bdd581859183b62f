# Experiment G (reports/learning.md): does the LLM's size limit how well it reads the codes? ASR alone, 250 steps
# x 16, from text-LM warm-ups of three sizes (the recipe's 128 x 2, 128 x 4, 256 x 2), scored on 443 test clips.
# usage: bash reports/learning/run10/g.sh   (from the root of a clone that ran the tiny recipe; omni on PATH)
set -e
R=reports/learning/run10
CB="'codebook_sizes=[256, 128, 128, 64, 64, 64, 64, 64]'"
run() {  # NAME LM_DIR
  s=$(date +%s)
  omni train stage $R/asr_depth.yaml "model_overrides=[backbone.path=$2, tokenizer=$2, $CB]" \
    loop.output_dir=runs/exp/g_$1 > runs/exp/g_$1.log 2>&1
  echo "g_$1 trained in $(( $(date +%s) - s )) s"
  bash reports/learning/run6/asr_eval.sh runs/exp/g_$1/final g_$1
}
mkdir -p runs/exp
run l2 runs/tiny/lm/model
s=$(date +%s); bash $R/lm.sh l4 model.layers=4 > runs/exp/lm_l4.log 2>&1; echo "lm_l4 in $(( $(date +%s) - s )) s"
run l4 runs/exp/lm_l4/model
s=$(date +%s); bash $R/lm.sh w256 model.hidden_size=256 model.intermediate_size=768 > runs/exp/lm_w256.log 2>&1
echo "lm_w256 in $(( $(date +%s) - s )) s"
run w256 runs/exp/lm_w256/model

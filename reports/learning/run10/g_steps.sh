# Experiment G, steps: the recipe's 2-layer warm-up, ASR alone for N steps x 16 (G0 is 250).
# usage: bash reports/learning/run10/g_steps.sh N
set -e
s=$(date +%s)
omni train stage reports/learning/run10/asr_depth.yaml loop.max_steps=$1 loop.eval_every=$1 loop.save_every=$1 \
  loop.output_dir=runs/exp/g_l2_$1 > runs/exp/g_l2_$1.log 2>&1
echo "g_l2_$1 trained in $(( $(date +%s) - s )) s"
bash reports/learning/run6/asr_eval.sh runs/exp/g_l2_$1/final g_l2_$1

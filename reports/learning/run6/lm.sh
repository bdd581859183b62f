set -e

O=omni
$O train lm configs/lm/tiny.yaml loop.output_dir=runs/exp/lm1500 loop.max_steps=1500 loop.eval_every=500 loop.save_every=500
$O train stage reports/learning/run6/itp1_lm.yaml
$O train stage reports/learning/run6/itp2_lm.yaml
python reports/learning/stage_qa.py runs/tiny runs/exp/itp2_lm/final | grep "^|"

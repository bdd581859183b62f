# Text exposure probe on a finished tiny recipe's outputs (run from the clone root that ran it, with data/ linked
# as in reports/learning/run6/README.md). usage: bash reports/learning/run9/text_sft.sh STEPS [STEPS ...]
set -e
[ -x .venv/bin/omni ] && PATH="$PWD/.venv/bin:$PATH"  # the clone's own environment, activated or not
for n in "$@"; do
  /usr/bin/time -f "text_sft_$n %e s" omni train stage reports/learning/run9/text_sft.yaml loop.max_steps=$n \
    loop.eval_every=$n loop.save_every=$n loop.output_dir=runs/exp/text_sft_$n 2>&1 | tail -1
done
python reports/learning/stage_qa.py runs/tiny $(for n in "$@"; do echo runs/exp/text_sft_$n/final; done)

# Where an LLM stage's step goes: cProfile of 40 steps of the recipe's audio_pretrain_2 (batch 16) from a
# finished run's audio_pretrain_1 model; prints the largest cumulative entries.
# usage (in the clone of a finished full run): bash reports/learning/run11/profile_stage.sh
set -e
mkdir -p data && ln -sfn ../runs/tiny/corpus data/corpus && ln -sfn ../runs/tiny/images data/images
O=runs/exp/profile; mkdir -p $O
python -m cProfile -o $O/ap2.prof "$(which omni)" train stage configs/stages/tiny/audio_pretrain_2_vision.yaml \
  init_from=runs/tiny/audio_pretrain_1/final loop.batch_size=16 loop.max_steps=40 loop.eval_every=1000 \
  loop.save_every=1000 loop.progress=false loop.output_dir=$O/ap2 > $O/ap2.log 2>&1
python - $O/ap2.prof <<'PY'
import pstats, sys
pstats.Stats(sys.argv[1]).sort_stats("cumulative").print_stats(45)
PY

#!/usr/bin/env bash
# Write session 14's recipe variants (reports/learning.md, "Session 14") into DIR, each the committed
# configs/recipes/tiny.yaml with one change; run one with branch.sh.  Usage: variants.sh DIR
#   base  audio pretrain 2 at 700 steps (the recipe before X1; S included)
#   x0    base without S (SFT in 8 rows of 1024 positions)
#   x1    the recipe as committed (audio pretrain 2 at 1000 steps)
#   x5    audio pretrain 2 at 1300 steps
#   d2    DPO at lr 5e-5;   d3  DPO at 600 steps
set -euo pipefail
out=$1; recipe=configs/recipes/tiny.yaml
mkdir -p "$out"
ap2() { sed "s#loop.max_steps=1000, loop.batch_size=16, loop.eval_every=1000, loop.save_every=500#loop.max_steps=$1, loop.batch_size=16, loop.eval_every=$1, loop.save_every=$(($1 / 2))#" "$recipe"; }
ap2 700 > "$out/base.yaml"
ap2 700 | sed 's#, data.max_seq_len=512, loop.batch_size=16\]#]#' > "$out/x0.yaml"
cp "$recipe" "$out/x1.yaml"
ap2 1300 > "$out/x5.yaml"
dpo='loop.max_steps=1200, loop.eval_every=300, loop.save_every=300\]'
sed "s#$dpo#loop.max_steps=1200, loop.eval_every=300, loop.save_every=300, optim.lr=5.0e-5]#" "$recipe" > "$out/d2.yaml"
sed "s#$dpo#loop.max_steps=600, loop.eval_every=300, loop.save_every=300]#" "$recipe" > "$out/d3.yaml"
for f in "$out"/*.yaml; do
  [ "$(basename "$f")" = x1.yaml ] || ! cmp -s "$recipe" "$f" || { echo "variants.sh: $f did not change" >&2; exit 1; }
done

#!/usr/bin/env bash
# Write session 15's recipe variants (reports/learning.md, "Session 15") into DIR: the committed
# configs/recipes/tiny.yaml with its DPO step changed as named; run one with run14/branch.sh from `dpo`.
#   r2   DPO with replay (configs/stages/tiny/dpo_replay.yaml): 2 rows of 512 positions of ASR a step, weight 1
#   r4   the same with 4 rows a step
#   r2h  2 rows a step at weight 0.5
# Usage: variants.sh DIR
set -euo pipefail
out=$1; recipe=configs/recipes/tiny.yaml
mkdir -p "$out"
dpo='config: configs/stages/tiny/dpo.yaml'
sed "s#$dpo#config: configs/stages/tiny/dpo_replay.yaml#" "$recipe" > "$out/r2.yaml"
step='loop.max_steps=1200, loop.eval_every=300, loop.save_every=300\]'
sed "s#$step#loop.max_steps=1200, loop.eval_every=300, loop.save_every=300, replay.batch_size=4]#" "$out/r2.yaml" > "$out/r4.yaml"
sed "s#$step#loop.max_steps=1200, loop.eval_every=300, loop.save_every=300, replay.weight=0.5]#" "$out/r2.yaml" > "$out/r2h.yaml"
for f in "$out"/*.yaml; do
  ! cmp -s "$recipe" "$f" || { echo "variants.sh: $f is the recipe itself (a pattern did not match)" >&2; exit 1; }
done
cmp -s "$out/r2.yaml" "$out/r4.yaml" && { echo "variants.sh: r4 equals r2 (a pattern did not match)" >&2; exit 1; }
cmp -s "$out/r2.yaml" "$out/r2h.yaml" && { echo "variants.sh: r2h equals r2 (a pattern did not match)" >&2; exit 1; }
exit 0

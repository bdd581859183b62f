#!/usr/bin/env bash
# Write session 14's recipe variants (reports/learning.md, "Session 14") into DIR, each the committed
# configs/recipes/tiny.yaml with its audio pretrain 2 steps and vocoder set as named; run one with branch.sh.
#   base  audio pretrain 2 at 700 steps, the vocoder's 700 mel-only + 500 GAN steps (S included)
#   x0    base without S (SFT in 8 rows of 1024 positions)
#   x1    audio pretrain 2 at 1000 steps, the GAN vocoder;   x5  the same at 1300 steps
#   d2    x1 with DPO at lr 5e-5;   d3  x1 with DPO at 600 steps
#   vm    x1 with the vocoder on the mel loss alone for its 1200 steps (the recipe's vocoder now)
# The recipe now is x5's audio pretrain 2 with vm's vocoder.  Usage: variants.sh DIR
set -euo pipefail
out=$1; recipe=configs/recipes/tiny.yaml
mkdir -p "$out"
# variant AP2_STEPS ADVERSARIAL_START: the recipe with those two settings
variant() {
  sed -e "s#loop.max_steps=1300, loop.batch_size=16, loop.eval_every=1300, loop.save_every=650#loop.max_steps=$1, loop.batch_size=16, loop.eval_every=$1, loop.save_every=$(($1 / 2))#" \
      -e "s#adversarial_start=1200, loop.max_steps=1200#adversarial_start=$2, loop.max_steps=1200#" "$recipe"
}
variant 700 700 > "$out/base.yaml"
variant 700 700 | sed 's#, data.max_seq_len=512, loop.batch_size=16\]#]#' > "$out/x0.yaml"
variant 1000 700 > "$out/x1.yaml"
variant 1300 700 > "$out/x5.yaml"
dpo='loop.max_steps=1200, loop.eval_every=300, loop.save_every=300\]'
variant 1000 700 | sed "s#$dpo#loop.max_steps=1200, loop.eval_every=300, loop.save_every=300, optim.lr=5.0e-5]#" > "$out/d2.yaml"
variant 1000 700 | sed "s#$dpo#loop.max_steps=600, loop.eval_every=300, loop.save_every=300]#" > "$out/d3.yaml"
variant 1000 1200 > "$out/vm.yaml"
for f in "$out"/*.yaml; do
  ! cmp -s "$recipe" "$f" || { echo "variants.sh: $f is the recipe itself (a pattern did not match)" >&2; exit 1; }
done

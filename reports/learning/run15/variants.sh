#!/usr/bin/env bash
# Write session 15's recipe variants (reports/learning.md, "R") into DIR: the committed configs/recipes/tiny.yaml
# (whose DPO step is rq: configs/stages/tiny/dpo_replay.yaml, 1 row of 512 positions a step of ASR and spoken
# questions at weight 1; rq below wrote it as an override, the same config)
# with its DPO step changed as named; run one with run14/branch.sh from `dpo`.
#   base  DPO without replay (configs/stages/tiny/dpo.yaml, the recipe of full run 14)
#   r1    replay of ASR rows alone (1 row a step);   r2  2 ASR rows a step;   r4  4;   r2h  2 at weight 0.5
#   a1    audio pretrain 2's cosine down to 1% of its peak rate (10%: 2e-4) instead; run it from audio_pretrain_2
#   a2    audio pretrain 2 at 1000 steps (1300), DPO with replay as committed; run it from audio_pretrain_2
#   rq    replay of half ASR, half spoken-question rows (spoken_qa_train), 1 row a step; run it from dpo
# Usage: variants.sh DIR
set -euo pipefail
out=$1; recipe=configs/recipes/tiny.yaml
mkdir -p "$out"
sed "s#config: configs/stages/tiny/dpo_replay.yaml#config: configs/stages/tiny/dpo.yaml#" "$recipe" > "$out/base.yaml"
step='loop.max_steps=1200, loop.eval_every=300, loop.save_every=300\]'
asr="'replay.data.sources=[{name: asr, manifests: [data/corpus/asr_train.codes.jsonl], task: asr, ratio: 1.0}]'"
for v in "r1|$asr" "r2|$asr|replay.batch_size=2" "r4|$asr|replay.batch_size=4" "r2h|$asr|replay.batch_size=2|replay.weight=0.5"; do
  name=${v%%|*} extra=${v#*|}
  sed "s#$step#loop.max_steps=1200, loop.eval_every=300, loop.save_every=300, ${extra//|/, }]#" "$recipe" > "$out/$name.yaml"
done
sed "s#loop.max_steps=1300, loop.batch_size=16, loop.eval_every=1300, loop.save_every=650\]#loop.max_steps=1300, loop.batch_size=16, loop.eval_every=1300, loop.save_every=650, optim.min_lr_ratio=0.01]#" \
  "$recipe" > "$out/a1.yaml"
sed "s#loop.max_steps=1300, loop.batch_size=16, loop.eval_every=1300, loop.save_every=650\]#loop.max_steps=1000, loop.batch_size=16, loop.eval_every=1000, loop.save_every=500]#" \
  "$recipe" > "$out/a2.yaml"
qa="'replay.data.sources=[{name: asr, manifests: [data/corpus/asr_train.codes.jsonl], task: asr, ratio: 0.5}, \
{name: audio_qa, manifests: [data/corpus/spoken_qa_train.codes.jsonl], task: audio_qa, ratio: 0.5}]'"
sed "s#$step#loop.max_steps=1200, loop.eval_every=300, loop.save_every=300, $qa]#" "$recipe" > "$out/rq.yaml"
for f in "$out"/*.yaml; do
  ! cmp -s "$recipe" "$f" || { echo "variants.sh: $f is the recipe itself (a pattern did not match)" >&2; exit 1; }
done

#!/usr/bin/env bash
# Write session 16's recipe variants (reports/learning.md, "Session 16") into DIR: the committed
# configs/recipes/tiny.yaml with one change each; run one with run14/branch.sh from the step named.
#   w2   DPO's replay at weight 2 (1)                                                  from dpo
#   ri   DPO's replay row drawn 40% ASR, 40% spoken questions, 20% image questions of the three weakest kinds
#        (count, position, shape)                                                       from dpo
#   sa   SFT with ASR and spoken questions at ratio 0.30 each (0.15): 15% of the rows each  from multimodal_sft
#   sl   SFT at a peak rate of 5e-4 (1e-3)                                              from multimodal_sft
# Usage: variants.sh DIR
set -euo pipefail
out=$1; recipe=configs/recipes/tiny.yaml
mkdir -p "$out"
step='loop.max_steps=1200, loop.eval_every=300, loop.save_every=300\]'
dpo() { sed "s#$step#loop.max_steps=1200, loop.eval_every=300, loop.save_every=300, $2]#" "$recipe" > "$out/$1.yaml"; }
dpo w2 "replay.weight=2.0"
img=""
for k in count position shape; do
  img="$img, {name: qa_$k, manifests: [data/images/image_qa_train.jsonl], task: image_qa, ratio: 0.0667, where: {meta.question_kind: $k}}"
done
dpo ri "'replay.data.sources=[{name: asr, manifests: [data/corpus/asr_train.codes.jsonl], task: asr, ratio: 0.4}, \
{name: audio_qa, manifests: [data/corpus/spoken_qa_train.codes.jsonl], task: audio_qa, ratio: 0.4}$img]'"
# the SFT variants: a stage file beside the recipe variant, extending the committed one
base=$(realpath configs/stages/tiny/multimodal_sft_vision.yaml)
python - "$base" "$out" <<'PY'
import sys, yaml
base, out = sys.argv[1:]
cfg = yaml.safe_load(open(base))
sources = cfg["data"]["sources"]
for s in sources:
    if s["name"] in ("asr", "audio_qa"):
        s["ratio"] = 0.30
yaml.safe_dump({"kind": "stage", "extends": base, "data": {"sources": sources}}, open(f"{out}/sft_sa.yaml", "w"))
groups = cfg["param_groups"]
groups[0]["lr"] = 5.0e-4
yaml.safe_dump({"kind": "stage", "extends": base, "param_groups": groups}, open(f"{out}/sft_sl.yaml", "w"))
PY
for v in sa sl; do
  sed "s#config: configs/stages/tiny/multimodal_sft_vision.yaml#config: $(realpath "$out")/sft_$v.yaml#" "$recipe" > "$out/$v.yaml"
done
for f in "$out"/*.yaml; do
  ! cmp -s "$recipe" "$f" || { echo "variants.sh: $f is the recipe itself (a pattern did not match)" >&2; exit 1; }
done

#!/usr/bin/env bash
# Vision warm-up variants, one at a time, each then probed (the probe reads the tower as the LLM stages would).
# Run from the repository root; ROOT = a finished recipe run (its images and its DPO model), OUT = a scratch dir.
#   ROOT=runs/tiny OUT=/tmp/w warm_sizes.sh NAME:TRAIN_MANIFEST:STEPS ...
# Session 16: i6k:$OUT/img6k/image_caption_train.jsonl:1500 (6000 fresh images, seed 1, drawn here)
set -euo pipefail
R=$ROOT/images
[ -f "$OUT/img6k/images.json" ] || omni data images --out "$OUT/img6k" train_images=6000 dev_images=100 test_images=4 seed=1 questions_per_image=1
probe() {  # probe a saved tower: a copy of the rq model with this tower
  python - "$1" "$2" <<'PY'
import sys, torch
from omni.model import OmniModel
from omni.model.vision_inputs import VisionProcessor
from omni.eval.vision_probe import probe_vision
import os
R = os.environ["ROOT"] + "/images"
omni = OmniModel.from_pretrained(os.environ["ROOT"] + "/dpo/final")
omni.vision.load_pretrained(sys.argv[1])
res = probe_vision(omni.vision.eval(), VisionProcessor(omni.cfg.vision), f"{R}/image_qa_train.jsonl", f"{R}/image_qa_test.jsonl")
print(sys.argv[2], "probe", {k: round(a, 3) for k, a in res.accuracy.items()}, flush=True)
PY
}
run() {  # name, train manifest, steps
  /usr/bin/time -f "$1 %e s" omni train vision configs/vision/tiny.yaml "train_manifests=[$2]" "dev_manifests=[$R/image_caption_dev.jsonl]" \
    loop.output_dir=$OUT/w_$1 loop.max_steps=$3 loop.eval_every=$3 loop.save_every=$3 loop.progress=false 2>&1 | grep -v "^\[transformers\]" | tail -2
  probe $OUT/w_$1/model $1
}
for spec in "$@"; do IFS=: read name man steps <<< "$spec"; run $name $man $steps; done

# Experiment W: does a DataLoader worker process pay on 2 cores? Each training step of the tiny recipe for 60
# steps with loop.num_workers 0 (the recipe's) and 1, on a finished run's outputs; the figure is the trainer's
# own throughput (units_per_s) over steps 41-60, read from trainer_state.json.
# usage (in the clone of a finished full run): bash reports/learning/run11/workers.sh [0 1 ...]
set -e
mkdir -p data && ln -sfn ../runs/tiny/corpus data/corpus && ln -sfn ../runs/tiny/images data/images
R=runs/tiny; O=runs/exp/workers; mkdir -p $O
common="loop.max_steps=60 loop.log_every=20 loop.save_every=1000 loop.progress=false"
for w in ${@:-0 1}; do
  omni train tokenizer configs/tokenizer/tiny.yaml transcription.lm_path=$R/lm/model eval_max_clips=4 $common \
    loop.eval_every=0 loop.num_workers=$w loop.output_dir=$O/tokenizer_$w > $O/tokenizer_$w.log 2>&1
  omni train flow configs/decoder/flow_tiny.yaml codebooks_from=$R/tokenizer/tokenizer eval_examples=1 $common \
    loop.num_workers=$w loop.output_dir=$O/flow_$w > $O/flow_$w.log 2>&1
  omni train vocoder configs/decoder/vocoder_tiny.yaml adversarial_start=1 eval_examples=1 $common \
    loop.num_workers=$w loop.output_dir=$O/vocoder_$w > $O/vocoder_$w.log 2>&1
  omni train stage configs/stages/tiny/audio_pretrain_2_vision.yaml init_from=$R/audio_pretrain_1/final \
    loop.batch_size=16 $common loop.eval_every=1000 loop.num_workers=$w loop.output_dir=$O/ap2_$w > $O/ap2_$w.log 2>&1
  omni train stage configs/stages/tiny/multimodal_sft_vision.yaml init_from=$R/audio_pretrain_2/final \
    $common loop.eval_every=1000 loop.num_workers=$w loop.output_dir=$O/sft_$w > $O/sft_$w.log 2>&1
done
python - "$O" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for step in ["tokenizer", "flow", "vocoder", "ap2", "sft"]:
    row = []
    for state in sorted(out.glob(f"{step}_*/trainer_state.json")):
        m = json.loads(state.read_text())["metrics"]
        row.append(f"workers {state.parent.name.rsplit('_', 1)[1]}: {m['units_per_s']:.2f} units/s")
    print(step, "; ".join(row))
PY

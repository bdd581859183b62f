# Experiment L: a flow decoder that reads only the first LEVELS RVQ levels (model.condition_levels), trained like
# the recipe's flow step, then the resynthesis gate (reference codes) and TTS with the run's final model (its
# own codes), both on the recipe's 60 held-out sentences of the reply voice; the run's vocoder throughout.
# usage: bash reports/learning/run13/levels.sh RUN_DIR LEVELS   (RUN_DIR: a finished run's runs/tiny)
set -e
R=$1; L=$2; O=runs/exp/levels; mkdir -p $O
s=$(date +%s)
omni train flow configs/decoder/flow_tiny.yaml codebooks_from=$R/tokenizer/tokenizer model.condition_levels=$L \
  "train_manifests=[$R/corpus/tts_train.codes.jsonl]" dev_manifest=$R/corpus/tts_dev.codes.jsonl \
  loop.output_dir=$O/flow_l$L loop.progress=false > $O/flow_l$L.log 2>&1
echo "flow, $L levels: $(( $(date +%s) - s )) s"
omni eval tokenizer $R/corpus/tts_test.jsonl --config configs/eval/tokenizer.yaml --tokenizer $R/tokenizer/tokenizer \
  --flow $O/flow_l$L/model --vocoder $R/vocoder/model --out $O/resynthesis_l$L --no-plots \
  data.limit=60 reference_cache=$R/judge_cache > $O/resynthesis_l$L.log 2>&1
omni bundle assemble --out $O/bundle_l$L --model $R/dpo/final --audio-tokenizer $R/tokenizer/tokenizer \
  --flow $O/flow_l$L/model --vocoder $R/vocoder/model --overwrite > /dev/null 2>&1
omni eval tts $R/corpus/tts_test.jsonl --config configs/eval/tts.yaml --checkpoint $O/bundle_l$L --out $O/tts_l$L \
  --no-plots data.limit=60 max_audio_frames=100 max_new_tokens=120 reference_cache=$R/judge_cache > $O/tts_l$L.log 2>&1
python - $O $L <<'PY'
import json, sys
o, lv = sys.argv[1:]
for name in (f"resynthesis_l{lv}", f"tts_l{lv}"):
    t = json.load(open(f"{o}/{name}/report.json"))["totals"]
    print(name, {k: v for k, v in t.items() if "wer" in k or "ratio" in k})
PY

# usage: bash reports/learning/run10/lm.sh NAME OVERRIDES...  (a text-LM warm-up like the recipe's lm step, other sizes)
# e.g. lm.sh l4 model.layers=4 ; lm.sh w256 model.hidden_size=256 model.intermediate_size=768
N=$1; shift
omni train lm configs/lm/tiny.yaml "train_manifests=[runs/tiny/corpus/text_train.jsonl,runs/tiny/corpus/asr_train.jsonl]" \
  "dev_manifests=[runs/tiny/corpus/asr_dev.jsonl]" loop.output_dir=runs/exp/lm_$N loop.progress=false "$@"

# usage: asr_eval.sh MODEL_DIR NAME  (from the root of the clone that ran the tiny recipe)
O=omni
T=runs/tiny
$O bundle assemble --out runs/exp/bundle_$2 --model $1 --audio-tokenizer $T/tokenizer/tokenizer --flow $T/flow/model --vocoder $T/vocoder/model --overwrite > /dev/null 2>&1
$O eval asr $T/corpus/asr_test.jsonl --checkpoint runs/exp/bundle_$2 --limit 443 --out runs/exp/asr_$2 > /dev/null 2>&1 || $O eval asr $T/corpus/asr_test.jsonl --checkpoint runs/exp/bundle_$2 --limit 443 2>&1 | tail -3
python3 -c "import json; print('$2', json.load(open('runs/exp/asr_$2/report.json'))['totals']['wer'])"

# Experiment G, in the chain: the recipe's audio_pretrain_2 and multimodal_sft (configs as they are) from run 10's
# audio_pretrain_1 model, on the 8000-utterance corpus (c8k.sh; its other manifests code-cached with the run's
# tokenizer), then ASR on the run's 443 test clips and the QA evaluations. data/corpus -> runs/exp/c8k here.
# usage: bash reports/learning/run10/c8k_chain.sh   (after c8k.sh)
set -e
mkdir -p data && ln -sfn ../runs/exp/c8k data/corpus && ln -sfn ../runs/tiny/images data/images
s=$(date +%s)
for m in asr_dev tts_train interleaved_train spoken_qa_train spoken_qa_dev spoken_chat_train; do
  omni data tokenize runs/exp/c8k/$m.jsonl --tokenizer runs/tiny/tokenizer/tokenizer --workers 2 --batch-seconds 120 \
    > runs/exp/c8k_tok_$m.log 2>&1
done
echo "codes in $(( $(date +%s) - s )) s"; s=$(date +%s)
omni train stage configs/stages/tiny/audio_pretrain_2_vision.yaml init_from=runs/tiny/audio_pretrain_1/final \
  loop.max_steps=400 loop.batch_size=16 loop.eval_every=200 loop.save_every=200 loop.progress=false \
  loop.output_dir=runs/exp/c8k_ap2 > runs/exp/c8k_ap2.log 2>&1
echo "ap2 in $(( $(date +%s) - s )) s"; s=$(date +%s)
omni train stage configs/stages/tiny/multimodal_sft_vision.yaml init_from=runs/exp/c8k_ap2/final \
  loop.max_steps=400 loop.eval_every=200 loop.save_every=200 loop.progress=false \
  loop.output_dir=runs/exp/c8k_sft > runs/exp/c8k_sft.log 2>&1
echo "sft in $(( $(date +%s) - s )) s"
bash reports/learning/run6/asr_eval.sh runs/exp/c8k_ap2/final c8k_ap2
bash reports/learning/run6/asr_eval.sh runs/exp/c8k_sft/final c8k_sft
python reports/learning/stage_qa.py --spoken runs/tiny runs/exp/c8k_sft/final

set -e
O=omni
$O train stage configs/stages/tiny/audio_pretrain_1.yaml init_from=runs/exp/itp2_bal/final model=null loop.output_dir=runs/exp/ap1_bal loop.max_steps=300 loop.eval_every=150 loop.save_every=150
$O train stage reports/learning/run6/ap2_bal.yaml
$O train stage reports/learning/run6/sft_bal.yaml

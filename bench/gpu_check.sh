#!/usr/bin/env bash
# One prepared run for a lent GPU machine (the `device` tool; a bare image with torch, no network):
#   1. install the wheels carried in .whl/ (packages the image lacks) into /tmp/site (SKIP_WHEELS=1: not);
#   2. the GPU benchmarks (decode with the static cache + CUDA graphs, streaming, speech decoder, training MFU;
#      BENCH_SECONDS, default 150) into $OUT/bench.json / bench.md, the CUDA section of reports/bench.md;
#   3. the CI recipe's component steps and gates (configs/recipes/tiny_ci.yaml --until gate_resynthesis, about a
#      minute): proves the environment runs every step before the budget goes to the real run;
#   4. the small recipe's bounded part (configs/recipes/small_gpu_check.yaml --until gate_resynthesis);
#   5. results into $OUT/results.tgz (step log, gate reports, training states, sample wavs) and $OUT/*.log.
# Usage on the device: bash bench/gpu_check.sh [SECONDS for step 4, default 480]
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ -z "${SKIP_WHEELS:-}" ] && compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
omni() { python3 -c "from omni.cli.main import app; app()" "$@"; }
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  python3 -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'accelerate', accelerate.__version__, 'cuda', torch.cuda.is_available())"
  nproc; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
tb=$(date +%s)
cp reports/bench.md "$OUT/bench.md" 2>/dev/null  # its CPU section is kept, the CUDA one replaced
timeout "${BENCH_SECONDS:-150}" python3 -c "from omni.cli.main import app; app()" bench decode streaming \
  speech_decoder training --device cuda --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1
echo "bench: exit $? after $(( $(date +%s) - tb )) s"; grep -E "ratio|skipped|error" "$OUT/bench.log" | tail -30
t0=$(date +%s)
omni train pipeline configs/recipes/tiny_ci.yaml output_root=/tmp/gpu_ci --until gate_resynthesis \
  > "$OUT/ci.log" 2>&1 || { tail -40 "$OUT/ci.log"; echo "CI part failed"; exit 4; }
echo "CI part passed in $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
timeout "${1:-480}" python3 -c "from omni.cli.main import app; app()" train pipeline \
  configs/recipes/small_gpu_check.yaml --until gate_resynthesis > "$OUT/small.log" 2>&1
echo "small check: exit $? after $(( $(date +%s) - t1 )) s"
grep -E "^\[|^  [a-z_0-9]+ |gate|WER" "$OUT/small.log" | grep -v "it/s" | tail -40
R=runs/small_gpu_check
tar czf "$OUT/results.tgz" $(ls -d $R/pipeline_steps.json $R/gate_*/report.json $R/gate_*/report.md \
  $R/*/trainer_state.json $R/*/eval_report.json $R/gate_*/samples 2>/dev/null)
ls -la "$OUT"

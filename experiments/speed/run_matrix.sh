#!/bin/bash
# Runs probe_step.py over impls x XLA flags x dtypes, one process each, appending
# JSON lines to $OUT (default experiments/speed/results.jsonl).
#   bash experiments/speed/run_matrix.sh "dcgan64:matmul:float32: dcgan64:matmul:float32:--xla_cpu_experimental_ynn_fusion_type="
cd "$(dirname "$0")/../.." || exit 1
source /work/venv/bin/activate
export PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=3
OUT=${OUT:-experiments/speed/results.jsonl}
for spec in $1; do
  IFS=: read -r arch impl dtype flags <<< "$spec"
  XLA_FLAGS="$flags" python experiments/speed/probe_step.py --arch="$arch" --impl="$impl" \
      --dtype="$dtype" --steps="${STEPS:-5}" --repeats="${REPEATS:-5}" ${EXTRA} 2>/dev/null | tee -a "$OUT"
done

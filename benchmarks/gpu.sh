#!/usr/bin/env bash
# The device checks, as one prepared run on a lent GPU machine (H100/H200, ~9 minutes):
#   1. GPU facts and versions;
#   2. benchmarks/train_step.py on the GPU (EMORL alone vs LOM-EMORL, the reference's setting),
#      then LOM-EMORL in fp32/bf16 x eager/compiled at batch 32;
#   3. benchmarks/decomposition.py: the quickstart variants trained concurrently on the GPU
#      for SWEEP_MINUTES each, held-out ARI-FG / structure accuracy every 500 steps;
#   4. meanwhile tests/test_cuda.py (CPU vs CUDA numbers) and the whole test suite under the
#      machine's own torch.
# Usage (repository root; pyro-ppl and pyro-api wheels in .whl/ where the machine lacks them):
#   OUT=/some/dir bash benchmarks/gpu.sh
# Everything it prints is also in $OUT/gpu.log; results in $OUT (at most 8 files).
set -u
OUT=${OUT:-benchmarks/results/gpu}
DEVICE=${DEVICE:-cuda}
SWEEP_MINUTES=${SWEEP_MINUTES:-5.5}
BENCH_REPS=${BENCH_REPS:-10}
SWEEP_DIR=${SWEEP_DIR:-/tmp/lom_decomposition}
# the settings still open after the 2026-11-26 sweeps (docs/notes/benchmarks.md); any of VARIANTS
SWEEP_VARIANTS=${SWEEP_VARIANTS:-base_lr1e-3 base_lr1e-3_batch32 base_lr1e-3_L1_I0 base_lr1e-3_K7 lom_base_lr1e-3 base_lr2e-3}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
export PYTHONUNBUFFERED=1
if ! python3 -c "import pyro" 2>/dev/null && [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD

echo "== 1. machine"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
python3 -c "import torch, pyro, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| pyro', pyro.__version__, '| cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"

echo "== 2. train step on $DEVICE (64x64, K=7, L=3, I=3)"
timeout 200 python3 benchmarks/train_step.py --device "$DEVICE" --batches 8 32 --reps "$BENCH_REPS" \
  --threads 4 --out "$OUT/train_step.json"

echo "== 2b. LOM-EMORL at batch 32: fp32 vs bf16 autocast, eager vs compiled networks (target >= 30 steps/s)"
timeout 420 python3 benchmarks/train_step.py --device "$DEVICE" --speed-variants --batches 32 --reps 20 \
  --warmup 5 --threads 4 --out "$OUT/train_step_speed_variants.json"

echo "== 3. decomposition sweep, $SWEEP_MINUTES min per variant, concurrently"
rm -rf "$SWEEP_DIR"
timeout $(( ${SWEEP_MINUTES%.*} * 60 + 150 )) python3 benchmarks/decomposition.py --device "$DEVICE" --parallel \
  --minutes "$SWEEP_MINUTES" --eval-every 500 --threads 1 --out "$SWEEP_DIR" --variants $SWEEP_VARIANTS > "$OUT/decomposition.txt" 2>&1 &
SWEEP=$!

echo "== 4. tests: CPU vs CUDA, then the whole suite"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15
timeout 240 python3 -m pytest -q -p no:cacheprovider -n 4 tests 2>&1 | tail -15

wait $SWEEP
echo "== 3. sweep results"
cat "$OUT/decomposition.txt" | tail -15
cp "$SWEEP_DIR/decomposition.json" "$OUT/" 2>/dev/null
tar czf "$OUT/decomposition_runs.tgz" -C "$SWEEP_DIR" --exclude='*.pt' . 2>/dev/null
ls -la "$OUT"
date -u

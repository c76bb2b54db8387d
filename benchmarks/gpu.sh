#!/usr/bin/env bash
# The device checks, as one prepared run on a lent GPU machine (H100/H200, ~7 minutes):
#   1. GPU facts and versions;
#   2. lom-pyro fit-prior on the GPU: a diffusion slot prior (and, concurrently, a mixture-density
#      one) fitted ex post to the shipped stacks32_ar's aggregate posterior on 131,072 cached
#      scenes (docs/priors.md); the written files come back in $OUT;
#   3. meanwhile tests/test_cuda.py (CPU vs CUDA numbers) and the whole test suite under the
#      machine's own torch.
# STAGES picks what runs (default "prior tests"); "train_step" and "sweep" are the earlier
# checks (benchmarks/train_step.py on the GPU and the decomposition sweep; results/gpu/ holds
# what they printed on 2026-11-26).
# Usage (repository root; pyro-ppl, pyro-api, opt_einsum, einops wheels in .whl/ where the
# machine lacks them):
#   OUT=/some/dir bash benchmarks/gpu.sh
# Everything it prints is also in $OUT/gpu.log; results in $OUT.
set -u
OUT=${OUT:-benchmarks/results/gpu}
DEVICE=${DEVICE:-cuda}
STAGES=${STAGES:-prior tests}
SOURCE=${SOURCE:-stacks32_ar}
PRIOR_SCENES=${PRIOR_SCENES:-131072}
PRIOR_STEPS=${PRIOR_STEPS:-40000}
PRIOR_MINUTES=${PRIOR_MINUTES:-4.5}
SWEEP_MINUTES=${SWEEP_MINUTES:-5.5}
BENCH_REPS=${BENCH_REPS:-10}
SWEEP_DIR=${SWEEP_DIR:-/tmp/lom_decomposition}
SWEEP_VARIANTS=${SWEEP_VARIANTS:-base_lr1e-3 base_lr1e-3_batch32 base_lr1e-3_L1_I0 base_lr1e-3_K7 lom_base_lr1e-3 base_lr2e-3}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
export PYTHONUNBUFFERED=1
if ! python3 -c "import pyro, einops" 2>/dev/null && [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
has() { [[ " $STAGES " == *" $1 "* ]]; }

echo "== 1. machine"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
python3 -c "import torch, pyro, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| pyro', pyro.__version__, '| cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"

PIDS=()
if has prior; then
  echo "== 2. fit-prior on $DEVICE: $PRIOR_SCENES scenes, $PRIOR_STEPS steps (at most $PRIOR_MINUTES min of fitting each)"
  FIT="python3 -m lom_pyro fit-prior $SOURCE --device $DEVICE --threads 6 --scenes $PRIOR_SCENES --held-out 2048 \
       --steps $PRIOR_STEPS --batch-size 1024 --max-minutes $PRIOR_MINUTES --report-samples 500"
  timeout 420 $FIT --prior diffusion --lr 5e-4 --options '{"width": 768, "depth": 4, "steps": 200}' \
    --cache /tmp/cache_diffusion.pt --out "$OUT/stacks32_diffusion_gpu.pt" > "$OUT/fit_diffusion.txt" 2>&1 &
  PIDS+=($!)
  timeout 420 $FIT --prior mdn --lr 1e-3 --options '{"components": 16, "hidden": 256, "layers": 2}' \
    --cache /tmp/cache_mdn.pt --out "$OUT/stacks32_mdn_gpu.pt" > "$OUT/fit_mdn.txt" 2>&1 &
  PIDS+=($!)
fi

if has train_step; then
  echo "== train step on $DEVICE (64x64, K=7, L=3, I=3)"
  timeout 200 python3 benchmarks/train_step.py --device "$DEVICE" --batches 8 32 --reps "$BENCH_REPS" \
    --threads 4 --out "$OUT/train_step.json"
fi
if has sweep; then
  echo "== decomposition sweep, $SWEEP_MINUTES min per variant, concurrently"
  rm -rf "$SWEEP_DIR"
  timeout $(( ${SWEEP_MINUTES%.*} * 60 + 150 )) python3 benchmarks/decomposition.py --device "$DEVICE" --parallel \
    --minutes "$SWEEP_MINUTES" --eval-every 500 --threads 1 --out "$SWEEP_DIR" --variants $SWEEP_VARIANTS \
    > "$OUT/decomposition.txt" 2>&1 &
  PIDS+=($!)
fi

if has tests; then
  echo "== 3. tests: CPU vs CUDA, then the whole suite"
  python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15
  timeout 300 python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tail -15
fi

for pid in "${PIDS[@]}"; do wait "$pid"; done
if has prior; then
  echo "== 2. fit-prior results"
  tail -25 "$OUT/fit_diffusion.txt"
  tail -25 "$OUT/fit_mdn.txt"
  rm -f "$OUT"/*.state.pt
fi
if has sweep; then
  echo "== sweep results"
  tail -15 "$OUT/decomposition.txt"
  cp "$SWEEP_DIR/decomposition.json" "$OUT/" 2>/dev/null
  tar czf "$OUT/decomposition_runs.tgz" -C "$SWEEP_DIR" --exclude='*.pt' . 2>/dev/null
fi
ls -la "$OUT"
date -u

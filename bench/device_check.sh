#!/usr/bin/env bash
# Issue 14's GPU measurements in one command (H200 or H100, the device image's torch 2.11), about
# 8 minutes; every result lands in $OUT (8 files at most). Run from the repository root:
#
#   here, once (pip reaches PyPI here, not there):   bash bench/fetch_device_wheels.sh
#   device tool:  run(command="bash bench/device_check.sh", carry=[".whl"], timeout_s=600)
#   CPU smoke test of the same script:               bash bench/device_check.sh --cpu
#
# The device image lacks nibabel (the synthetic cohort's NIfTI files), SimpleITK and
# segmentation_models_pytorch (the comparison): the first and last travel as wheels in .whl/
# (bench/fetch_device_wheels.sh); SimpleITK is only imported, never called, on the benches' NIfTI
# path, so bench/_stubs stands in for it when it is missing.
#
# Stages, most important first, each under its own time limit (a stage that runs out keeps what it
# printed; grid_time prints and writes JSON after each phase):
#   throughput_unet  U-Net width 64, 64x64, batch 1024: plain fp32, iphbench eager, compiled
#                    (default and reduce-overhead), the iphbench recipe's step, smp's VGG16-BN U-Net;
#                    MFU against this card's measured bf16 matmul rate
#   grid_time        a sample of the paper grid on a CT-sized synthetic cohort, extrapolated to 239
#                    subjects x 60 runs x 300 epochs and to the iphbench recipe's step budget, with
#                    1, 2 and 4 runs per device
#   throughput_all   all four architectures at the paper's batch 256, compiled (graphs already in
#                    the compile cache from grid_time)
#   no_sync          tests/training/test_no_sync.py -m gpu: no host sync inside an epoch on CUDA
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=gpu
[[ "${1:-}" == "--cpu" ]] && MODE=cpu
OUT=${OUT:-$PWD/device_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
[[ $MODE == cpu && -x .venv/bin/python && -z "${PYTHON:-}" ]] && PY=.venv/bin/python
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/iphbench-site .whl/*.whl \
    && PYTHONPATH="$PYTHONPATH:/tmp/iphbench-site"
fi
PYTHONPATH="$PYTHONPATH" $PY -c "import SimpleITK" 2>/dev/null || PYTHONPATH="$PYTHONPATH:$PWD/bench/_stubs"
CACHE=/tmp/iphbench-compile-cache
export PYTHONPATH PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$CACHE

log() { echo "$*" | tee -a "$OUT/log.txt"; }
stage() {  # stage NAME LIMIT_S COMMAND...
  local name=$1 limit=$2 t0=$SECONDS
  shift 2
  log "== $name (limit ${limit}s): $*"
  timeout -k 10 "$limit" "$@" > >(tee "$OUT/$name.md") 2>&1
  local rc=$?
  log "== $name: exit $rc after $((SECONDS - t0)) s"
}

{
  date -u
  nvidia-smi 2>&1 | head -15
  $PY -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.version.cuda, platform.python_version())"
  $PY -c "import segmentation_models_pytorch as s; print('smp', s.__version__)" 2>&1 | tail -1
  $PY -c "import nibabel; print('nibabel', nibabel.__version__)" 2>&1 | tail -1
  $PY -c "import SimpleITK as s; print('SimpleITK', getattr(s, '__file__', '?'))" 2>&1 | tail -1
  git log --oneline -1 2>/dev/null
} > "$OUT/env.txt" 2>&1
log "device_check ($MODE) in $PWD, results in $OUT"

if [[ $MODE == gpu ]]; then
  stage throughput_unet 200 $PY bench/train_throughput.py --models unet --batch 1024 --steps 10 --rounds 3 \
    --compile-modes default reduce-overhead --json "$OUT/throughput_unet.json"
  stage grid_time 230 $PY bench/grid_time.py --budget-s 200 --compile-cache "$CACHE" --json "$OUT/grid_time.json"
  stage throughput_all 90 $PY bench/train_throughput.py --batch 256 --steps 10 --rounds 3 --variants compiled
  stage no_sync 60 $PY -m pytest -q -x -m gpu -p no:cacheprovider tests/training/test_no_sync.py
else
  stage throughput_unet 300 $PY bench/train_throughput.py --quick --models unet --json "$OUT/throughput_unet.json"
  stage grid_time 600 $PY bench/grid_time.py --reduced --styles unet fpn --runs-per-device 1 2 \
    --compile-cache "$CACHE" --json "$OUT/grid_time.json"
  stage throughput_all 300 $PY bench/train_throughput.py --quick --variants eager
  stage no_sync 120 $PY -m pytest -q -x -p no:cacheprovider tests/training/test_no_sync.py
fi
log "device_check done in $SECONDS s"

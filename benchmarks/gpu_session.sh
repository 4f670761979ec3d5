# One GPU session's checks, in the steps that ONNX Runtime's four chunks allow (../shared/gpu/README.md).
# Run from the project's root on the GPU machine, one step per `run` call, each call carrying its chunk and
# .gpu/ort-setup.sh; every step leaves its JSON results and its log in $OUT (results.tar, STEP.log).
#   bash benchmarks/gpu_session.sh torch     # chunk a: torch only (augmentation, training, torch GPU tests)
#   bash benchmarks/gpu_session.sh chunk     # chunks b and c: gather them
#   bash benchmarks/gpu_session.sh runtime   # chunk d: pytest -m gpu, inference, the live loop, decoding
#   bash benchmarks/gpu_session.sh rest      # annotate, the demo end to end, many cameras
#   bash benchmarks/gpu_session.sh again     # chunk d of a later lease: loop, decoding, annotate, the demo
set -u -o pipefail
step=${1:?step: torch, chunk, runtime, again or rest}
source .gpu/ort-setup.sh
# That machine's site-packages carry no .pyc: without a writable cache every process recompiles torch.
export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
unset PYTHONDONTWRITEBYTECODE
out=${OUT:-/tmp/out}
mkdir -p "$out"
log="$out/$step.log"
t() { echo "== ${SECONDS}s: $*"; "$@"; }  # each command's start, to size the next session's steps
{
  nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader
  case $step in
    torch)
      t python3 -m pytest -q -m gpu tests/test_gpu.py -k "graphed or training" -p no:cacheprovider
      t python3 -m benchmarks.bench_augment --device cuda --no-record --rounds 5 --sizes 224 --engines before,jitter_first,fused,kernel
      t python3 -m benchmarks.run --device cuda --only train --no-record ;;
    chunk) ls /tmp/parts ;;
    runtime)  # the GPU tests' files only: that machine lacks the test-only packages of others (pympi)
      t python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py tests/test_runtime_session.py
      t python3 -m benchmarks.run --device cuda --only infer,loop,decode --no-record ;;
    again) t python3 -m benchmarks.run --device cuda --only loop,decode,annotate,demo --no-record ;;
    rest) t python3 -m benchmarks.run --device cuda --only annotate,demo,streams --no-record ;;
  esac
  echo "== ${SECONDS}s: done"
} 2>&1 | tee "$log"
status=$?
tar cf "$out/results.tar" benchmarks/results/gpu
exit $status

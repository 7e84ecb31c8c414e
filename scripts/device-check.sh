#!/usr/bin/env bash
# Run THERE, on a bare GPU machine (the device tool), from the repository root, after
# scripts/device-bundle.sh ran here and .device-bundle travelled with the call:
#   device run: bash scripts/device-check.sh        carry: [".device-bundle"]
# One command, a few minutes: unpack the bundle, build the CUDA backend and its tests against it
# (make CUDA=1 -j16, no MPI), run make test-cuda (every registry op, every LM kind, training steps,
# allocator, checkpoints; GPU against CPU), then the GPU benchmarks against PyTorch CUDA eager.
# Logs go to $OUT (the device tool's folder that comes back), else logs/device/; the last lines
# printed are the summary.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG="${OUT:-logs/device}"
mkdir -p "$LOG"
BUNDLE=.device-bundle
[ -f "$BUNDLE/root.tar.xz" ] || { echo "device-check: no $BUNDLE/root.tar.xz (run scripts/device-bundle.sh here and carry .device-bundle)"; exit 2; }
tar -C "$BUNDLE" -xJf "$BUNDLE/root.tar.xz"
# shellcheck source=/dev/null
source "$BUNDLE/env.sh"
NVCC_PATH="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
CUDA_HOME="$(dirname "$(dirname "$NVCC_PATH")")"
{ nvidia-smi; "$NVCC_PATH" --version; g++ --version | head -1; } > "$LOG/machine.txt" 2>&1
export ENGRAM_NUM_THREADS="${ENGRAM_NUM_THREADS:-16}"
MAKE_ARGS=(CUDA=1 MPI=0 CUDA_HOME="$CUDA_HOME" NVCC="$NVCC_PATH" PKG_CFLAGS="$BUNDLE_CFLAGS" PKG_LIBS="$BUNDLE_LIBS")
status=0
t0=$(date +%s)
make "${MAKE_ARGS[@]}" -j16 build-cuda/tests/engram_cuda_tests build-cuda/apps/bench > "$LOG/build.log" 2>&1 \
  || { status=1; echo "device-check: the build failed"; tail -40 "$LOG/build.log"; }
t1=$(date +%s)
if [ $status = 0 ]; then
  build-cuda/tests/engram_cuda_tests --duration=true > "$LOG/test-cuda.log" 2>&1 || status=1
  grep -E "ERROR|FAILED|MESSAGE|relative error|samples" "$LOG/test-cuda.log" | head -60
  # The plain python3 there is the one with PyTorch (CUDA); the bench would prefer /usr/bin/python3.
  PY="$(command -v python3)"
  build-cuda/apps/bench --device cuda --peak > "$LOG/bench-cuda-peak.txt" 2>&1 || status=1
  timeout 420 build-cuda/apps/bench --device cuda --python "$PY" > "$LOG/bench-cuda.txt" 2>&1 || status=1
  cat "$LOG/bench-cuda-peak.txt" "$LOG/bench-cuda.txt"
fi
t2=$(date +%s)
echo "device-check: build $((t1 - t0)) s, tests and bench $((t2 - t1)) s, logs in $LOG"
grep -E "^\[doctest\] (test cases|assertions)" "$LOG/test-cuda.log" 2>/dev/null
exit $status

#!/usr/bin/env bash
# The CUDA backend's check on a GPU machine, in one call: GPU tests, then the benchmark (bmh bench-gpu) and its
# PyTorch peers, then a short table (printed last).
#
#   scripts/gpu_check.sh pack     # here (x86-64, nvcc 13, our Debian libraries): build for sm_90 and collect the
#                                 # binaries, the non-system shared libraries they load and Zyphra's BlackMamba
#                                 # source (uncommitted peer) into .carry/ (gitignored)
#   scripts/gpu_check.sh          # on the GPU machine (CUDA 13 + python3 with torch/transformers, none of our
#                                 # Debian libraries): run from the repository root with .carry/ beside it
# Options (GPU side): --tests-only, --bench-only, --quick (fewer presets, shorter runs), --kernels-only (tests, then
# floors + op table + MoE layer, no presets and no peers). Logs and JSON go to $OUT
# (the device tool's output folder) or to ./gpu_check_out.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=.carry

if [ "${1:-}" = pack ]; then
  set -e
  BUILD=${BUILD:-build-cuda}
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  cmake --build "$BUILD" -j"${JOBS:-2}" --target gpu_test_ops gpu_test_cuda_model
  cmake --build "$BUILD" -j"${JOBS:-2}" --target bmh || echo "warning: bmh did not build; the benchmark will be missing"
  # Staged in the build folder, shipped as one compressed bundle (the device tool carries at most 64 MiB in all).
  ST="$BUILD/carry-stage"
  rm -rf "$ST" && mkdir -p "$ST/bin" "$ST/lib"
  cp "$BUILD/tests/gpu_test_ops" "$BUILD/tests/gpu_test_cuda_model" "$ST/bin/"
  [ -x "$BUILD/bmh" ] && cp "$BUILD/bmh" "$ST/bin/"
  strip --strip-debug "$ST"/bin/* || true
  # Shared libraries: everything ldd resolves except glibc's own, the driver and cuBLAS (large; CUDA 13 is there).
  for b in "$ST"/bin/*; do ldd "$b"; done | awk '/=> \//{print $3}' | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|libresolv.so*|ld-linux*|libcuda.so*|libcublas*.so*) ;;
      *) cp -L "$lib" "$ST/lib/" ;;
    esac
  done
  # Zyphra's official code for the blackmamba-2.8b peer (python sources only; never committed).
  ZY=${ZYPHRA_SRC:-/work/.mirror/Zyphra+BlackMamba/repo}
  if [ -d "$ZY" ]; then
    mkdir -p "$ST/zyphra"
    git --git-dir="$ZY" archive HEAD | tar -x -C "$ST/zyphra" --exclude=csrc
  fi
  echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- kernels tests/gpu experiments/cmd_bench_gpu.cpp scripts || echo +local-changes)" >"$ST/COMMIT"
  rm -rf "$CARRY" && mkdir -p "$CARRY"
  tar -C "$ST" -cJf "$CARRY/bundle.tar.xz" .
  du -sh "$CARRY"
  exit 0
fi

MODE=all
QUICK=0
for a in "$@"; do
  case "$a" in
    --tests-only) MODE=tests ;;
    --bench-only) MODE=bench ;;
    --quick) QUICK=1 ;;
    --kernels-only) MODE=kernels ;;
  esac
done
if [ -f "$CARRY/bundle.tar.xz" ] && [ ! -d "$CARRY/bin" ]; then tar -C "$CARRY" -xJf "$CARRY/bundle.tar.xz"; fi
O=${OUT:-gpu_check_out}
mkdir -p "$O"
LOG="$O/gpu_check.log"
: >"$LOG"
say() { echo "$@" | tee -a "$LOG"; }

# cuBLAS from the machine's CUDA 13 (toolkit or the pip wheel torch uses); our other libraries from .carry/lib.
CUBLAS_DIR=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         "$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null)"; do
  if [ -n "$d" ] && ls "$d"/libcublas.so.13* >/dev/null 2>&1; then CUBLAS_DIR=$d; break; fi
done
BINLIB="$PWD/$CARRY/lib${CUBLAS_DIR:+:$CUBLAS_DIR}"
run_bin() { LD_LIBRARY_PATH="$BINLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }
export BMH_TEST_DIR="$PWD/tests"

say "== gpu_check $(date -u +%Y-%m-%dT%H:%MZ) on $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null)"
say "== cuBLAS from ${CUBLAS_DIR:-?}; binaries built here from commit $(cat "$CARRY/COMMIT" 2>/dev/null || echo '?')"
STATUS=0
if [ "$MODE" != bench ]; then
  for t in gpu_test_ops gpu_test_cuda_model; do
    say "== $t"
    run_bin "$CARRY/bin/$t" --gtest_brief=1 2>&1 | tee -a "$LOG" | tail -n 40
    rc=${PIPESTATUS[0]}
    say "== $t exit $rc"
    [ "$rc" = 0 ] || STATUS=1
  done
fi
if [ "$MODE" = kernels ]; then
  say "== bmh bench-gpu --skip-models"
  run_bin "$CARRY/bin/bmh" bench-gpu --skip-models --json "$O/bench_gpu.json" 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" = 0 ] || STATUS=1
elif [ "$MODE" != tests ]; then
  if [ "$QUICK" = 1 ]; then
    BARGS=(--presets blackmamba-2.8b --decode-tokens 32 --forward-batch 2)
  else
    BARGS=()
  fi
  say "== bmh bench-gpu ${BARGS[*]}"
  run_bin "$CARRY/bin/bmh" bench-gpu --json "$O/bench_gpu.json" "${BARGS[@]}" 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" = 0 ] || STATUS=1
  say "== peers"
  PYTHONUNBUFFERED=1 timeout 240 python3 scripts/gpu_peers/hf_peers.py --json "$O/peers_hf.json" \
    $([ "$QUICK" = 1 ] && echo --forward-batch 2) 2>&1 | grep -v Warning | tee -a "$LOG"
  if [ -d "$CARRY/zyphra" ]; then
    PYTHONUNBUFFERED=1 timeout 180 python3 scripts/gpu_peers/zyphra_peer.py --src "$CARRY/zyphra" \
      --json "$O/peers_zyphra.json" 2>&1 | tail -n 20 | tee -a "$LOG"
  fi
  say ""
  say "== summary"
  python3 scripts/gpu_peers/table.py "$O/bench_gpu.json" "$O"/peers_*.json 2>&1 | tee "$O/table.md" | tee -a "$LOG"
fi
say "== gpu_check status $STATUS"
exit $STATUS

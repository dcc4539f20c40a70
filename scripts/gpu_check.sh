#!/usr/bin/env bash
# The CUDA backend's check on a GPU machine, from binaries of one clean commit, in modes that each fit one
# 10-minute device call:
#
#   scripts/gpu_check.sh pack [--allow-dirty]
#       here (x86-64, nvcc 13, our Debian libraries): refuses a dirty tree (untracked files included) unless
#       --allow-dirty (then everything it produces says "-dirty"); builds for sm_90 and bundles into .carry/
#       (gitignored): the binaries, the non-system shared libraries they load, the full commit hash, and the peers'
#       sources (never committed): Zyphra/BlackMamba's Python code, state-spaces/mamba v2.3.2's selective_scan
#       sources + mamba_ssm Python package, Dao-AILab/causal-conv1d v1.6.1's sources + Python package.
#   scripts/gpu_check.sh tests      GPU tests with BMH_REQUIRE_GPU=1; fails on any failure or skip
#   scripts/gpu_check.sh bench      bmh bench-gpu, then the peers built and run in the same call, then the table
#   scripts/gpu_check.sh sanitize   compute-sanitizer memcheck over the model tests (not the long ones),
#                                   racecheck (shared-memory hazards) and initcheck over the op table
#   scripts/gpu_check.sh all        the three in one call (the peers' kernels build on the CPUs meanwhile)
#   scripts/gpu_check.sh suite      the 7-task zero-shot suite timed cold (`bmh eval`, fresh --out, model load
#                                   included) for blackmamba-2.8b and mamba-2.8b (bf16, random weights), then the same
#                                   requests scored lm-eval-style by Zyphra's code and mamba_ssm (eval_peer.py);
#                                   SUITE_LIMIT=N runs --limit N (default: the full tasks)
# The tests need the half-precision routing oracle (tests/fixtures/blackmamba-tiny-halfroute, made from Zyphra's code
# by scripts/gpu_peers/routing_oracle.py): where it is not committed yet it is made first and returned as
# halfroute.tgz, to be committed.
# Output (logs, JSON, table.md/table.json) goes to ./gpu_check_out, or, where $OUT is set (the device tool's folder,
# which returns at most 8 files), to a private folder archived into $OUT/gpu_check_<mode>.tgz -- rewritten after
# each part and on exit, so a call cut by its limit keeps what it did -- beside a copy of the log. File it under
# results/gpu/<date>-<device>-<full hash>/ with scripts/gpu_results.sh (folders or those archives), which also
# regenerates README's table.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=.carry
MAMBA_TAG=v2.3.2
CONV_TAG=v1.6.1.post4

if [ "${1:-}" = pack ]; then
  set -e
  hash=$(git rev-parse HEAD)
  if [ -n "$(git status --porcelain)" ]; then
    if [ "${2:-}" != --allow-dirty ]; then
      echo "gpu_check pack: the tree is dirty (git status --porcelain is not empty); commit first" >&2
      git status --short >&2
      exit 1
    fi
    hash="$hash-dirty"
  fi
  BUILD=${BUILD:-build-cuda}
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  # Every GPU test binary (tests/gpu/test_*.cpp) and the CLI.
  GPU_TESTS=$(for f in tests/gpu/test_*.cpp; do basename "$f" .cpp | sed 's/^/gpu_/'; done)
  cmake --build "$BUILD" -j"${JOBS:-2}" --target $GPU_TESTS bmh
  stamped=$(sed -n 's/#define BMH_GIT_HASH "\(.*\)"/\1/p' "$BUILD/generated/bmh_git_hash.h")
  [ "$stamped" = "$hash" ] || { echo "gpu_check pack: build stamped '$stamped', tree is '$hash'" >&2; exit 1; }
  ST="$BUILD/carry-stage"
  rm -rf "$ST" && mkdir -p "$ST/bin" "$ST/lib" "$ST/peers"
  for t in $GPU_TESTS; do cp "$BUILD/tests/$t" "$ST/bin/"; done
  cp "$BUILD/bmh" "$ST/bin/"
  strip --strip-debug "$ST"/bin/*
  # Shared libraries: everything ldd resolves except glibc's own, the driver and cuBLAS (CUDA 13 is there).
  for b in "$ST"/bin/*; do ldd "$b"; done | awk '/=> \//{print $3}' | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|libresolv.so*|ld-linux*|libcuda.so*|libcublas*.so*) ;;
      *) cp -L "$lib" "$ST/lib/" ;;
    esac
  done
  MIRROR=${MIRROR:-/work/.mirror}
  for need in Zyphra+BlackMamba state-spaces+mamba Dao-AILab+causal-conv1d; do
    [ -d "$MIRROR/$need/repo" ] || { echo "gpu_check pack: missing $MIRROR/$need/repo (fetch github:${need/+//})" >&2; exit 1; }
  done
  mkdir -p "$ST/peers/zyphra" "$ST/peers/mamba" "$ST/peers/conv"
  git --git-dir="$MIRROR/Zyphra+BlackMamba/repo" archive HEAD | tar -x -C "$ST/peers/zyphra" --exclude=csrc
  git --git-dir="$MIRROR/state-spaces+mamba/repo" archive "$MAMBA_TAG" csrc/selective_scan mamba_ssm \
    | tar -x -C "$ST/peers/mamba"
  git --git-dir="$MIRROR/Dao-AILab+causal-conv1d/repo" archive "$CONV_TAG" csrc causal_conv1d \
    | tar -x -C "$ST/peers/conv"
  echo "$hash" >"$ST/COMMIT"
  rm -rf "$CARRY" && mkdir -p "$CARRY"
  # xz -9e: its 64 MiB window sees that the GPU test binaries and bmh share the same kernels (26 -> 14 MB at
  # 465c6a3), which keeps the tree plus the bundle under the device call's 64 MiB.
  XZ_OPT=-9e tar -C "$ST" -cJf "$CARRY/bundle.tar.xz" .
  du -sh "$CARRY"
  exit 0
fi

MODE=${1:-tests}
case "$MODE" in tests|bench|sanitize|suite|all) ;; *) echo "usage: $0 pack [--allow-dirty] | tests | bench | sanitize | suite | all" >&2; exit 2 ;; esac
want() { [ "$MODE" = "$1" ] || [ "$MODE" = all ]; }
if [ -f "$CARRY/bundle.tar.xz" ] && [ ! -d "$CARRY/bin" ]; then tar -C "$CARRY" -xJf "$CARRY/bundle.tar.xz"; fi
[ -x "$CARRY/bin/bmh" ] || { echo "gpu_check: no $CARRY/bin (run 'scripts/gpu_check.sh pack' here first)" >&2; exit 2; }
O=gpu_check_out
[ -z "${OUT:-}" ] || O=/tmp/gpu_check_$MODE.$$
mkdir -p "$O"
LOG="$O/gpu_check_$MODE.log"
: >"$LOG"
# Where $OUT is set: everything so far into one archive there (tar of a snapshot, then a rename: never half written).
archive() {
  [ -n "${OUT:-}" ] || return 0
  tar -C "$O" -czf "$OUT/gpu_check_$MODE.tgz.tmp" . && mv "$OUT/gpu_check_$MODE.tgz.tmp" "$OUT/gpu_check_$MODE.tgz"
  cp "$LOG" "$OUT/gpu_check_$MODE.log"
}
trap archive EXIT
trap 'exit 143' TERM
# "== " headers carry the seconds since the script started, so a log shows where a device call's time went.
say() { local m="$*"; case $m in "== "*) m="$m [${SECONDS} s]" ;; esac; echo "$m" | tee -a "$LOG"; }
COMMIT=$(cat "$CARRY/COMMIT")

# cuBLAS from the machine's CUDA 13 (toolkit or the pip wheel torch uses); our other libraries from .carry/lib.
CUBLAS_DIR=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         "$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null)"; do
  if [ -n "$d" ] && ls "$d"/libcublas.so.13* >/dev/null 2>&1; then CUBLAS_DIR=$d; break; fi
done
BINLIB="$PWD/$CARRY/lib${CUBLAS_DIR:+:$CUBLAS_DIR}"
run_bin() { LD_LIBRARY_PATH="$BINLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }
export BMH_TEST_DIR="$PWD/tests" BMH_REQUIRE_GPU=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

DEVICE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
say "== gpu_check $MODE $(date -u +%Y-%m-%dT%H:%MZ) on $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null)"
say "== binaries of commit $COMMIT; cuBLAS from ${CUBLAS_DIR:-?}"
STATUS=0

# Runs one gtest binary; counts failures and skips from its JSON report (any skip fails the check).
gtest() {
  local name=$1; shift
  say "== $name $*"
  run_bin "$CARRY/bin/$name" --gtest_brief=1 --gtest_output="json:/tmp/$name.json" "$@" 2>&1 | tee -a "$LOG" | tail -n 30
  local rc=${PIPESTATUS[0]}
  local counts
  counts=$(python3 - "/tmp/$name.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
tests = [t for s in d["testsuites"] for t in s["testsuite"]]
skipped = [t["classname"] + "." + t["name"] for t in tests if t.get("result") == "SKIPPED"]
failed = [t["classname"] + "." + t["name"] for t in tests if t.get("failures")]
# The op table's largest relative error per op and dtype (test property max_rel_err), against its tolerance.
worst = {}
for t in tests:
    if "max_rel_err" in t:
        case = t["name"].split("/")[-1] if "/" in t["name"] else t.get("value_param", t["name"])
        parts = case.split("_")
        cut = next((i for i, x in enumerate(parts) if x in ("f32", "bf16", "f16", "fp32", "fp16")), 1)
        key = "_".join(parts[:cut + 1])
        worst[key] = max(worst.get(key, 0.0), float(t["max_rel_err"]))
for k in sorted(worst): print(f"  max rel err {k}: {worst[k]:.3g}")
print(f"{len(tests)} run, {len(failed)} failed, {len(skipped)} skipped")
for n in skipped: print("  skipped:", n)
for n in failed: print("  failed:", n)
sys.exit(1 if skipped or failed else 0)
EOF
  )
  local crc=$?
  say "== $name exit $rc: $counts"
  [ "$rc" = 0 ] && [ "$crc" = 0 ] || STATUS=1
}

P=scripts/gpu_peers
PEERS="$PWD/$CARRY/peers"
OA=$(cd "$O" && pwd)
KB=/tmp/peer_kernels
# Each peer script runs under min(its cap, what is left of the call less 15 s for the table): a script that is
# stopped leaves its planned rows marked "not measured" (table.py). CALL_LIMIT: the seconds the device call
# allows this script (the tool's limit, or less where less device time is left).
CALL_LIMIT=${CALL_LIMIT:-585}
peer() {
  local cap=$1 name=$2; shift 2
  local t=$((CALL_LIMIT - 15 - SECONDS)); [ "$t" -lt "$cap" ] || t=$cap; [ "$t" -gt 1 ] || t=1
  say "== peer $name (timeout $t s)"
  env PYTHONUNBUFFERED=1 timeout "$t" python3 "$@" 2>&1 | grep -v Warning | tee -a "$LOG"
}
# BENCH_PEERS=none: bmh bench-gpu alone (kernel A/B runs); the table then has no peer times.
NO_PEERS=$([ "${BENCH_PEERS:-all}" = none ] && echo 1 || true)
if { want bench && [ -z "$NO_PEERS" ]; } || [ "$MODE" = suite ]; then
  # The peers' kernels build on the CPUs while our tests and benchmark run on the GPU.
  (PYTHONUNBUFFERED=1 python3 $P/build_peer_kernels.py --mamba "$PEERS/mamba" --conv "$PEERS/conv" --out "$KB" \
     >/tmp/peer_build.log 2>&1; echo "exit $?" >>/tmp/peer_build.log) &
  BUILD_PID=$!
fi

if want tests; then
  HR=tests/fixtures/blackmamba-tiny-halfroute
  if [ ! -f "$HR/expected.json" ]; then
    say "== making the half-precision routing oracle (Zyphra's code, bf16 and fp16) into $HR"
    PYTHONUNBUFFERED=1 timeout 120 python3 $P/routing_oracle.py --src "$PEERS/zyphra" \
      --fixture tests/fixtures/blackmamba-tiny --out "$HR" 2>&1 | tail -n 8 | tee -a "$LOG"
    tar -czf "$OA/halfroute.tgz" -C tests/fixtures blackmamba-tiny-halfroute
  fi
  # OPS_TEST_FILTER (a gtest filter) limits the op table's cases, whose full run takes ~4.5 min on the H200, so that
  # a call can hold the model tests and the benchmark (e.g. OPS_TEST_FILTER='*gemv*' after a GEMV change).
  for t in "$CARRY"/bin/gpu_test_*; do
    n=$(basename "$t")
    if [ "$n" = gpu_test_ops ] && [ -n "${OPS_TEST_FILTER:-}" ]; then gtest "$n" --gtest_filter="$OPS_TEST_FILTER"
    else gtest "$n"; fi
  done
fi

archive
if want bench; then
  say "== bmh bench-gpu"
  # Op rows: the scan's versions side by side (8 x 2048 and 1 x 16384; versions 3 and 4 also at BlackMamba-2.8B's
  # 2944 channels), decode attention at 32k cached positions,
  # attention prefill 8 x 2048, the decode GEMV's versions at 1 row (split, stream; the norm folded in or not) and
  # at 8 rows, decode's state and conv updates at 1..256 rows
  # (Mamba-2.8B's 5120 channels, state update in both versions); every version stays in the op table for
  # `bmh bench-gpu` without --ops.
  # BENCH_EXTRA_OPS=1 adds (bench_gpu.json only, ~1 min): BlackMamba-2.8B's scan shape at each lane count, and the
  # prefill elementwise passes (GELU, gated expert activation, rotary, conv, norms) beside their scalar versions.
  OPS='^selective_scan_bf16_(B8_)?T(2048|16384)_(M160_)?N5120_K16_flag_bias(_chunked|_states|_pipelined)?$|^selective_scan_bf16_B8_T2048_M92_N2944_K16_flag_bias_(states|pipelined)$|^attention_decode_bf16_H16_hd128_S32768|^attention_prefill_bf16_B8_T2048|^gemv_bf16_B(8|64|256)_|^gemv_bf16_N[0-9]+_K[0-9]+(_E8_flag)?(_split|_stream)?$|^norm_gemv_bf16_N[0-9]+_K[0-9]+_rms(_fused|_stream)?$|^state_update_bf16_(B[0-9]+_)?N5120_K16_flag_bias(_tile)?$|^conv1d_update_bf16_B'
  [ -z "${BENCH_EXTRA_OPS:-}" ] ||
    OPS="$OPS|^selective_scan_bf16_B8_T2048_M92_N2944|^mlp_act_bf16_T|^rotary_bf16_B8|^conv1d_bf16_B8|^add_norm_bf16_T16384"
  # Preset rows with the default kernels; BENCH_AB=SETS times every preset once per kernel set of the comma-separated
  # list, same weights, adjacent rows ("(SET kernels)" in the table; sets as `bmh bench-gpu --kernels-ab`, e.g.
  # BENCH_AB=v2,v1 or BENCH_AB=v2,v2+decode_proj=cublas,v2+scan_lanes=4) -- ~25 s more per set and preset, which
  # with the peers does not fit one 10-minute call for more than one extra set: use BENCH_AB with BENCH_PEERS=none.
  run_bin "$CARRY/bin/bmh" bench-gpu --json "$OA/bench_gpu.json" --ops "$OPS" ${BENCH_AB:+--kernels-ab "$BENCH_AB"} \
    --presets blackmamba-2.8b,blackmamba-1.5b,mamba-2.8b,mamba-1.4b,pythia-1.4b 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" = 0 ] || STATUS=1
  [ -z "$NO_PEERS" ] || say "== peers: not run (BENCH_PEERS=none)"
fi
archive
if want bench && [ -z "$NO_PEERS" ]; then
  wait $BUILD_PID
  say "== peer kernels: $(grep -E 'built in|^exit' /tmp/peer_build.log | tr '\n' ' ')"
  grep -q "^exit 0" /tmp/peer_build.log || tail -n 40 /tmp/peer_build.log | tee -a "$LOG"
  say "== peers"
  # Most important rows first and mamba_ssm's batched decoding last, so the call's limit never cuts the table.
  peer 150 mamba_ssm $P/mamba_ssm_peer.py --mamba "$PEERS/mamba" --conv "$PEERS/conv" --kernels "$KB" \
    --json "$OA/peers_mamba_ssm.json"
  peer 100 zyphra $P/zyphra_peer.py --src "$PEERS/zyphra" --conv "$PEERS/conv" --kernels "$KB" \
    --json "$OA/peers_zyphra.json"
  peer 180 transformers $P/hf_peers.py --json "$OA/peers_transformers.json"
  peer 120 mamba_ssm-batched $P/mamba_ssm_peer.py --mamba "$PEERS/mamba" --conv "$PEERS/conv" --kernels "$KB" \
    --rows batched --json "$OA/peers_mamba_ssm_batched.json"
  peer 90 zyphra-batched $P/zyphra_peer.py --src "$PEERS/zyphra" --conv "$PEERS/conv" --kernels "$KB" \
    --rows batched --presets blackmamba-2.8b --json "$OA/peers_zyphra_batched.json"
fi
if want bench; then
  say "== table"
  shopt -s nullglob
  peer_files=("$OA"/peers_*.json)
  shopt -u nullglob
  python3 $P/table.py --bench "$OA/bench_gpu.json" --peers "${peer_files[@]}" --commit "$COMMIT" \
    --command "scripts/gpu_check.sh bench" --out "$OA" 2>&1 | tee -a "$LOG"
fi
if [ "$MODE" = suite ]; then
  TASKS=lambada_openai,hellaswag,piqa,winogrande,arc_easy,arc_challenge,openbookqa
  for preset in blackmamba-2.8b mamba-2.8b; do
    d=/tmp/suite-$preset
    rm -rf "$d"
    say "== bmh eval $preset bf16 ${SUITE_LIMIT:+--limit $SUITE_LIMIT }(cold: fresh --out)"
    t0=$(date +%s.%N)
    run_bin "$CARRY/bin/bmh" eval --preset "$preset" --backend cuda --dtype bf16 --tasks "$TASKS" --no-progress \
      ${SUITE_LIMIT:+--limit "$SUITE_LIMIT"} --requests-jsonl --out "$d" 2>&1 | tee -a "$LOG" | tail -n 16
    rc=${PIPESTATUS[0]}
    t1=$(date +%s.%N)
    [ "$rc" = 0 ] || STATUS=1
    python3 $P/suite_table.py ours --preset "$preset" --start "$t0" --end "$t1" --exit "$rc" --run-dir "$d" \
      --limit "${SUITE_LIMIT:-0}" --json "$OA/suite_ours_$preset.json" 2>&1 | tee -a "$LOG"
  done
  wait $BUILD_PID
  say "== peer kernels: $(grep -E 'built in|^exit' /tmp/peer_build.log | tr '\n' ' ')"
  peer 240 mamba_ssm-suite $P/eval_peer.py --peer mamba_ssm --mamba "$PEERS/mamba" --conv "$PEERS/conv" --kernels "$KB" \
    --requests /tmp/suite-mamba-2.8b/requests.jsonl --json "$OA/suite_peer_mamba_ssm.json"
  peer 200 zyphra-suite $P/eval_peer.py --peer zyphra --src "$PEERS/zyphra" --mamba "$PEERS/mamba" --conv "$PEERS/conv" \
    --kernels "$KB" --requests /tmp/suite-blackmamba-2.8b/requests.jsonl --json "$OA/suite_peer_zyphra.json"
  python3 $P/suite_table.py table --dir "$OA" --commit "$COMMIT" --command "scripts/gpu_check.sh suite" 2>&1 | tee -a "$LOG"
fi
archive
if want sanitize; then
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  # memcheck over gpu_test_cuda_model: the default kernels on every fixture and preset. Left to the tests mode:
  # gpu_test_cuda_model_long (the deliberate out-of-memory test, the 1000-call leak checks -- memory growth, not
  # accesses --, the widened-head flash test and the ~300 forwards of the batched-scoring test: too slow under the
  # tool; the flash kernel's tensor-core path is covered by racecheck/initcheck below), the version-1 kernel passes
  # and decode_dt=fused (off by default); pdl=on, the default, is in.
  # Then gpu_test_cuda_decode_batched: batched decoding at 2..8 rows (gemv=mma / rows) and the argmax kernel.
  for t in gpu_test_cuda_model gpu_test_cuda_decode_batched; do
    say "== compute-sanitizer memcheck $t"
    run_bin timeout 200 "$CS" --tool memcheck --error-exitcode 97 --leak-check no "$CARRY/bin/$t" \
      --gtest_brief=1 --gtest_filter='-*v1kernels*:*FusedDecodeDt*' 2>&1 | tee -a "$LOG" | tail -n 25
    rc=${PIPESTATUS[0]}; say "== memcheck $t exit $rc"; [ "$rc" = 0 ] || STATUS=1
  done
  # racecheck: shared-memory hazards over the op table's correctness cases (model-sized ones would take hours).
  # SANITIZE_TOOLS picks the tools (default all three) where one call must also hold the tests.
  for tool in racecheck initcheck; do
    case " ${SANITIZE_TOOLS:-memcheck racecheck initcheck} " in *" $tool "*) ;; *) say "== $tool: not run (SANITIZE_TOOLS)"; continue ;; esac
    say "== compute-sanitizer $tool gpu_test_ops (correctness cases)"
    BMH_OPS_CORRECTNESS_ONLY=1 run_bin timeout 150 "$CS" --tool "$tool" --error-exitcode 97 --print-limit 1000000 "$CARRY/bin/gpu_test_ops" \
      --gtest_brief=1 --gtest_filter='-*OutOfMemory*' 2>&1 | tee "/tmp/$tool.log" | tail -n 25 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    # Reports inside cuBLAS (nvjet / cublasLt kernels) are listed, not counted: only ones whose device frame names
    # our kernels (namespace bmh::cuda) fail the check.
    grep -A1 -E "^========= .*(Error|Hazard|Uninitialized|Race reported)" "/tmp/$tool.log" \
      | grep -oE "(at|access at) (void )?[^ (<]+" | sed -E 's/^(access )?at (void )?//; s/\+0x[0-9a-f]+$//' | sort | uniq -c \
      | sort -rn | head -n 20 >"/tmp/$tool.kernels"
    ours=$(grep -c -E "bmh::" "/tmp/$tool.kernels" || true)
    say "== $tool exit $rc; kernels with reports (count, kernel):"
    cat "/tmp/$tool.kernels" | tee -a "$LOG"
    say "== $tool: kernels of ours with reports: $ours; 'maximum number of hazards' notices: $(grep -ci 'maximum number' "/tmp/$tool.log")"
    [ "$ours" = 0 ] || STATUS=1
    [ "$rc" = 0 ] || [ "$rc" = 97 ] || STATUS=1
  done
fi

say "== gpu_check $MODE status $STATUS"
exit $STATUS

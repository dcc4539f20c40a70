#!/usr/bin/env bash
# Fuzzes every reader of untrusted files with libFuzzer (clang, ASan + UBSan): builds tests/fuzz/ in
# build-fuzz/, generates seed corpora from the fixtures (tests/fuzz/make_seeds.py), runs each target for
# MINUTES (default 2) in turn and appends one line per target to results/fuzz/runs.tsv
# (date, target, seconds, execs, findings). Crash inputs land in results/fuzz/crashes/. MINUTES=0 only builds.
#   scripts/fuzz.sh [MINUTES] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-2}
shift || true
all=(safetensors torch_zip torch_pickle pickle config tokenizer_json task_jsonl experiment inputs)
targets=("${@:-${all[@]}}")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
command -v clang++ >/dev/null || { echo "fuzz.sh: needs clang++ (scripts/setup.sh installs it)" >&2; exit 1; }

build=build-fuzz
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DCMAKE_C_FLAGS_RELEASE=-O1 -DBMH_CUDA=OFF -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}"
python3 tests/fuzz/make_seeds.py . "$build/seeds"
[ "$minutes" = 0 ] && exit 0
source tests/fuzz/max_len.sh

mkdir -p results/fuzz/crashes
[ -f results/fuzz/runs.tsv ] || printf 'date\ttarget\tseconds\texecs\tfindings\n' > results/fuzz/runs.tsv
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  log="$build/fuzz_$t.log"
  start=$(date +%s)
  # -fork=1 keeps fuzzing after a finding (each crash is saved); memory over 2 GB is a finding too.
  set +e
  "$build/tests/fuzz/fuzz_$t" "$corpus" "$build/seeds/$t" -fork=1 -ignore_crashes=1 -ignore_ooms=1 \
    -ignore_timeouts=1 -max_total_time=$((minutes * 60)) -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=20 \
    -max_len="$(max_len "$t")" -artifact_prefix="results/fuzz/crashes/$t-" >"$log" 2>&1
  set -e
  secs=$(($(date +%s) - start))
  # fork mode prints "#N: cov: ... exec/s: ... oom/timeout/crash: A/B/C ..." lines; the last holds the totals.
  execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  findings=$(grep -oE 'oom/timeout/crash: [0-9]+/[0-9]+/[0-9]+' "$log" | tail -1 | awk -F'[ /]' '{print $4+$5+$6}')
  printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$secs" "${execs:-0}" "${findings:-0}" | tee -a results/fuzz/runs.tsv
done

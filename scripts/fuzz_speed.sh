#!/usr/bin/env bash
# Speed of the libFuzzer targets, measured as scripts/fuzz.sh fuzzes (-fork=1, same flags) but from the seeds alone
# (a fresh corpus each time) and without touching results/fuzz/: prints per target the wall seconds, executions,
# exec/s and executions per CPU-second (user + system time of the fuzzer and its jobs; on a shared machine the
# wall rate follows the load, the CPU rate much less). Needs the build of `scripts/fuzz.sh 0`.
#   scripts/fuzz_speed.sh SECONDS [BINDIR] [TARGET...]     (BINDIR defaults to build-fuzz/tests/fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
bindir=${2:-build-fuzz/tests/fuzz}
shift 2 || shift $#
all=(safetensors torch_zip torch_pickle pickle config tokenizer_json task_jsonl experiment inputs)
targets=("${@:-${all[@]}}")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
source tests/fuzz/max_len.sh
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'target\tseconds\texecs\texec/s\texecs/cpu-s\n'
for t in "${targets[@]}"; do
  mkdir -p "$tmp/$t"
  /usr/bin/time -f '%U %S' -o "$tmp/time" "$bindir/fuzz_$t" "$tmp/$t" "build-fuzz/seeds/$t" -fork=1 -ignore_crashes=1 \
    -ignore_ooms=1 -ignore_timeouts=1 -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=20 \
    -max_len="$(max_len "$t")" -artifact_prefix="$tmp/crash-" >"$tmp/log" 2>&1 || true
  execs=$(grep -oE '^#[0-9]+' "$tmp/log" | tail -1 | tr -d '#')
  cpu=$(tail -1 "$tmp/time" | awk '{print $1 + $2}')  # time prefixes a line when the exit status is not 0
  awk -v t="$t" -v s="$secs" -v e="${execs:-0}" -v c="$cpu" \
    'BEGIN { printf "%s\t%d\t%d\t%.0f\t%.0f\n", t, s, e, e / s, (c > 0 ? e / c : 0) }'
done

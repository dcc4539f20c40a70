#!/usr/bin/env bash
# Builds the CPU tests with AddressSanitizer + UndefinedBehaviorSanitizer (no recovery: the first report fails
# the run) in build-asan/ and runs every loader/parser test plus a fast subset of the rest. A CI step
# (.ci/run). Measured cold (no ccache) on 2 shared cores, load average ~4: 14 min 43 s wall, 18 min 48 s CPU,
# of which the sanitized tests take ~32 s; with the normal build + tests (~7.5 min) .ci/run stays near 22 min.
# -g1 (line tables only): stack traces keep file:line while the debug info costs far less compile and link time
# than -g (the whole `scripts/test.sh` took 33 min here with -g on a shared machine; CI's limit is 30).
# MPI is left out (-DBMH_MPI=OFF: LeakSanitizer would report the MPI library's own allocations; tests/mpi runs in
# the normal build).
set -euo pipefail
cd "$(dirname "$0")/.."
# Loaders and parsers (all of them), then a fast subset that exercises the reference, evals and CLI.
tests=(test_checkpoint_safetensors test_checkpoint_torch test_checkpoint_dir test_config test_bad_input
       test_bad_input_catalogue test_hardening_units test_eval_tasks test_tokenizer_units test_cli_forward test_reference_ops
       test_flops test_eval_metrics test_batched_generate)
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DBMH_CUDA=OFF -DBMH_MPI=OFF -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1 -DNDEBUG" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-asan -j"$(nproc)" --target bmh "${tests[@]}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# gtest_discover_tests needs each binary to list its tests; run the binaries directly instead, two at a time.
printf '%s\n' "${tests[@]}" | xargs -P"$(nproc)" -I{} sh -c \
  'build-asan/tests/{} --gtest_brief=1 > build-asan/{}.log 2>&1 && echo "sanitized {}: ok" || { echo "sanitized {}: FAILED"; tail -50 build-asan/{}.log; exit 1; }'

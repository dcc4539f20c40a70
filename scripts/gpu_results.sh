#!/usr/bin/env bash
# Files a gpu_check run's output (the device tool's files_at folder, or ./gpu_check_out) under
# results/gpu/<date>-<device>-<full commit hash>/ and regenerates README's GPU table from the newest table.json.
#   scripts/gpu_results.sh BENCH_DIR [TESTS_DIR SANITIZE_DIR ...]   (every folder from the same commit's binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?usage: scripts/gpu_results.sh BENCH_DIR [MORE_DIRS ...]}
commit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["commit"])' "$src/table.json")
device=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["device"])' "$src/table.json" \
         | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-$//')
case "$commit" in *-dirty|unknown) echo "gpu_results: $commit is not a clean commit; not filed" >&2; exit 1 ;; esac
dest="results/gpu/$(date -u +%Y-%m-%d)-$device-$commit"
mkdir -p "$dest"
for d in "$@"; do
  for log in "$d"/gpu_check_*.log; do
    grep -q "binaries of commit $commit;" "$log" || { echo "gpu_results: $log is not from commit $commit" >&2; exit 1; }
  done
done
for d in "$@"; do cp "$d"/* "$dest"/; done
python3 scripts/readme_gpu_table.py
echo "$dest"

#!/usr/bin/env bash
# Files a gpu_check run's output (the device tool's files_at folder, or ./gpu_check_out) under
# results/gpu/<date>-<device>-<full commit hash>/ and regenerates README's GPU table from the newest table.json.
#   scripts/gpu_results.sh BENCH [TESTS SANITIZE ...]   (every one from the same commit's binaries)
# Each argument is a folder gpu_check wrote, or the gpu_check_<mode>.tgz it left in the device tool's $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${1:?usage: scripts/gpu_results.sh BENCH [MORE ...] (folders or gpu_check_<mode>.tgz archives)}"
args=()
for a in "$@"; do
  if [ -f "$a" ]; then
    case "$a" in *.tgz|*.tar.gz) ;; *) echo "gpu_results: $a is neither a folder nor a .tgz archive" >&2; exit 1 ;; esac
    x=$(mktemp -d)
    tar -xzf "$a" -C "$x" || { echo "gpu_results: cannot unpack $a" >&2; exit 1; }
    args+=("$x")
  else
    args+=("$a")
  fi
done
set -- "${args[@]}"
src=$1
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

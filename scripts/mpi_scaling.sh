#!/usr/bin/env bash
# bmh eval on one process and on N MPI ranks of this node (each rank its own GPU with --backend cuda): checks that
# both write the same results (metrics equal, every per-request log-likelihood and is_greedy byte-identical) and
# prints the scaling efficiency of scoring, model load excluded: t1 / (N * tN) with t = results.json
# bmh.scoring.seconds, plus each rank's busy seconds (bmh.scoring.ranks).
#   scripts/mpi_scaling.sh 2 --preset blackmamba-2.8b --backend cuda --dtype bf16 \
#       --tasks lambada_openai,hellaswag,piqa,winogrande,arc_easy,arc_challenge,openbookqa
# Extra arguments go to both runs. Output directories: $OUT (default a fresh temporary directory)/np1 and /npN.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: scripts/mpi_scaling.sh N bmh-eval-arguments...}
shift
# NVLink multicast stays off on the shared machines (issue 16).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
out=${OUT:-$(mktemp -d)}
root=()
if [ "$(id -u)" = 0 ]; then root=(--allow-run-as-root); fi
build/bmh eval "$@" --no-progress --out "$out/np1"
mpirun "${root[@]}" -np "$n" -x NCCL_NVLS_ENABLE -x TORCH_SYMM_MEM_DISABLE_MULTICAST -x NVSHMEM_DISABLE_NVLS \
  build/bmh eval "$@" --no-progress --out "$out/np$n"
/usr/bin/python3 - "$out/np1" "$out/np$n" "$n" <<'EOF'
import json, sys
import h5py
one, many, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
a, b = (json.load(open(d + "/results.json")) for d in (one, many))
same = a["results"] == b["results"]
fa, fb = h5py.File(one + "/requests.h5"), h5py.File(many + "/requests.h5")
requests = 0
for t in fa:
    if "requests" not in fa[t]:
        continue
    for d in ("requests/loglikelihood", "requests/is_greedy"):
        x, y = fa[t][d][()], fb[t][d][()]
        requests += len(x) if d.endswith("loglikelihood") else 0
        if x.tobytes() != y.tobytes():
            same = False
            print(f"{t}/{d}: differs")
t1, tn = a["bmh"]["scoring"]["seconds"], b["bmh"]["scoring"]["seconds"]
print(f"{requests} requests: results {'identical' if same else 'DIFFERENT'}; scoring {t1:.2f} s on 1 process, "
      f"{tn:.2f} s on {n} ranks: speed-up {t1 / tn:.2f}, efficiency {100 * t1 / (n * tn):.1f}%")
for r, s in enumerate(b["bmh"]["scoring"]["ranks"]):
    print(f"  rank {r}: {s['calls']} calls, {s['requests']} requests, {s['tokens']} tokens, "
          f"{s['busy_seconds']:.2f} s busy")
sys.exit(0 if same else 1)
EOF

#!/usr/bin/env bash
# Small trained checkpoints of every layout `bmh train` writes, for the one-time PyTorch check on the GPU machine
# (scripts/check_trained_checkpoints.py). Each is a tiny shape (d_model 64, byte vocabulary) trained for a few
# steps on the bundled tinyshakespeare on the CPU (seconds each), so its weights are trained, not initial. Beside
# each checkpoint: bmh_forward.safetensors, the logits `bmh forward` gives for OUT/inputs.safetensors (two byte
# sequences of real text), so the GPU machine needs no bmh binary. The optimizer state is dropped (not needed).
#
# OUT/peers/ gets the loaders' Python sources from the fetched mirrors (never committed; OUT is under the ignored
# build/ so the device tool can carry it): Zyphra/BlackMamba (HEAD, without csrc/) and state-spaces/mamba v2.3.2's
# mamba_ssm package. About 14 MB in all.
#
#   scripts/make_trained_checkpoints.sh [OUT]   (default build/trained_ckpts; BMH=path/to/bmh, default build/bmh;
#                                                MIRROR=/work/.mirror)
#   then on the GPU machine, from the repository root with OUT carried:
#   python3 scripts/check_trained_checkpoints.py --zyphra-src OUT/peers/zyphra --mamba-src OUT/peers/mamba \
#       OUT/*/checkpoint
set -euo pipefail
cd "$(dirname "$0")/.."
BMH=${BMH:-build/bmh}
OUT=${1:-build/trained_ckpts}
MIRROR=${MIRROR:-/work/.mirror}
TEXT=data/text/tinyshakespeare.input.txt
[ -x "$BMH" ] || { echo "make_trained_checkpoints: no bmh binary at $BMH (build it, or set BMH)" >&2; exit 2; }
rm -rf "$OUT" && mkdir -p "$OUT"

# inputs.safetensors: input_ids int64 [2, 24], the bytes of two lines of the text (stdlib only: no numpy here).
python3 - "$TEXT" "$OUT/inputs.safetensors" <<'EOF'
import json, struct, sys
text = open(sys.argv[1], "rb").read()
ids = list(text[1000:1024]) + list(text[5000:5024])
header = json.dumps({"input_ids": {"dtype": "I64", "shape": [2, 24], "data_offsets": [0, 8 * len(ids)]}}).encode()
header += b" " * (-len(header) % 8)
with open(sys.argv[2], "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + struct.pack(f"<{len(ids)}q", *ids))
EOF

common=(--text "$TEXT" --tokenizer bytes --seq-len 32 --batch 2 --steps 5 --warmup 1 --lr 3e-3
        --log-every 5 --eval-every 5 --eval-batches 1 --no-plots)
train() {
  local name=$1; shift
  echo "== $name: bmh train $*"
  "$BMH" train --out "$OUT/$name" "${common[@]}" "$@" | tail -n 2
  "$BMH" forward --model "$OUT/$name/checkpoint" --inputs "$OUT/inputs.safetensors" \
    --out "$OUT/$name/bmh_forward.safetensors" >/dev/null
  rm -f "$OUT/$name/checkpoint/optimizer.safetensors" "$OUT/$name/results.h5"
  echo "   layout: $(sed -n 's/.*"family": "\([^"]*\)".*/\1/p' "$OUT/$name/results.json" | head -n 1)"
}
train blackmamba-sinkhorn --preset tiny-blackmamba-50k --vocab 256 --routing sinkhorn
train blackmamba-top1 --preset tiny-blackmamba-50k --vocab 256 --routing top1
train mamba-ssm --preset tiny-mamba-50k --vocab 256
train hf-mamba --config tests/fixtures/mamba-tiny-hf --vocab 256
train gpt-neox --preset tiny-pythia-50k --vocab 256
train mixtral --preset tiny-mixtral-50k --vocab 256
train jamba --preset tiny-jamba-50k --vocab 256
train transformer-moe --preset tiny-transformer-moe-50k --vocab 256  # bmh layout: the check reports it skipped
mkdir -p "$OUT/peers/zyphra" "$OUT/peers/mamba"
for need in Zyphra+BlackMamba state-spaces+mamba; do
  [ -d "$MIRROR/$need/repo" ] || { echo "make_trained_checkpoints: no $MIRROR/$need/repo (fetch github:${need/+//})" >&2; exit 1; }
done
git --git-dir="$MIRROR/Zyphra+BlackMamba/repo" archive HEAD | tar -x -C "$OUT/peers/zyphra" --exclude=csrc
git --git-dir="$MIRROR/state-spaces+mamba/repo" archive v2.3.2 mamba_ssm | tar -x -C "$OUT/peers/mamba"
du -sh "$OUT"

#!/usr/bin/env bash
# Installs the Debian packages the harness builds and runs with (run as root on a fresh Debian 12 machine).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(
  build-essential cmake pkg-config
  libeigen3-dev libhdf5-dev nlohmann-json3-dev libcli11-dev libgtest-dev
  libzip-dev          # pytorch_model.bin is a zip archive
  libpcre2-dev        # GPT-2 pre-tokenizer regex with Unicode properties
  libopenmpi-dev openmpi-bin   # optional: mpirun -np N bmh eval|perplexity|routing (evals/distributed.h)
  libutf8proc-dev     # NFC normalization
  python3-numpy python3-h5py python3-matplotlib   # plots (scripts/plot_*.py, run with /usr/bin/python3)
  clang libclang-rt-14-dev   # only for the libFuzzer targets (scripts/fuzz.sh)
)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

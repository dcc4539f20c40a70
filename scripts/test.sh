#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs every test with ctest (GPU tests skip where no device is present),
# then builds the loaders' and a fast subset's tests with ASan + UBSan and runs them (scripts/sanitize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then scripts/setup.sh; fi
scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
scripts/sanitize.sh

#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs every test with ctest. GPU tests skip where no device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then scripts/setup.sh; fi
scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"

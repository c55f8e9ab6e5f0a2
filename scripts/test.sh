#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
ctest --preset release -j 2

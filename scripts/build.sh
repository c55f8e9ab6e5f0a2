#!/usr/bin/env bash
# Configures and builds one CMake preset (default: release) into build/<preset>. Further
# arguments go to the configure step (e.g. -DICLBENCH_TSAN_TBB_DIR=... for tsan).
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
shift || true
cmake --preset "$preset" "$@" >/dev/null
cmake --build --preset "$preset"

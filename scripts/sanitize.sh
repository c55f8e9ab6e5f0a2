#!/usr/bin/env bash
# The sanitizer stage of CI, each part where it pays:
#   ASan+UBSan: the whole test suite (memory and UB bugs can hide anywhere);
#   TSan: the tests labelled "threads" (they run TBB with several threads), on a TSan-built
#     libtbb, plus a canary race that must be reported;
#   libFuzzer: every target for FUZZ_SECONDS (default 30) from its seed corpus.
# Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh default sanitize
bash scripts/build.sh asan
ctest --preset asan -j 2 -E "_smoke$"

tbb_dir=$(bash scripts/build_tsan_tbb.sh)
bash scripts/build.sh tsan -DICLBENCH_TSAN_TBB_DIR="$tbb_dir"
ctest --preset tsan -j 2

bash scripts/build.sh fuzz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in safetensors model_config model_spec bounds_config; do
  mkdir -p "$work/$target"
  cp tests/fuzz/corpus/$target/* "$work/$target/"
  echo "fuzz_$target: ${FUZZ_SECONDS:-30} s"
  build/fuzz/bin/fuzz_$target "$work/$target" -max_total_time="${FUZZ_SECONDS:-30}" -max_len=4096 \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/crash-$target-" 2>"$work/$target.log" ||
    { tail -40 "$work/$target.log"; echo "fuzz_$target found a crash" >&2; exit 1; }
done
echo "fuzzers: no findings"
echo "fuzz: 4 passed, 0 failed"

#!/usr/bin/env bash
# The main job: install what is missing, build, then a default run that needs no input files.
# Outputs go to $ICLBENCH_OUT (default: out/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
out=${ICLBENCH_OUT:-out}
mkdir -p "$out"
iclbench=build/release/bin/iclbench

$iclbench info
echo
$iclbench gen --family gaussian --d 16 --n 256 --queries 64 --tasks 1000 --seed 1 \
  --out "$out/gaussian-d16-n256.safetensors" --force
echo
$iclbench model --construct gd-hinge:L=100,eta=1,tau=0.5 --d 16 \
  --out "$out/gd-hinge-d16.safetensors" --force
echo
$iclbench speed --model "$out/gd-hinge-d16.safetensors" --d 16 --n 256 --queries 64 --batch 64
echo
$iclbench speed --model encoder:D=64,H=4,F=256,layers=4 --n 129 --queries 0 --batch 64
echo
$iclbench eval --data "$out/gaussian-d16-n256.safetensors" \
  --model gd-ls:L=1 --model "$out/gd-hinge-d16.safetensors" --model kernel:beta=1 \
  --heads logistic,svm,ls,avg --n-grid 16,64,256 \
  --out "$out/eval.json" --csv "$out/eval.csv" --force
echo
# The headline job: the bounds sweep's quick preset (about 1 minute on 2 vCPUs; resumes if rerun).
# ICLBENCH_MAIN_BOUNDS_TASKS=N runs it with N tasks per point instead of 100 (20: about a
# quarter of the time). CI's fresh-machine stage uses it, to check that the job runs, not for
# its numbers.
bounds_flags=()
if [ -n "${ICLBENCH_MAIN_BOUNDS_TASKS:-}" ]; then
  bounds_flags=(--tasks "$ICLBENCH_MAIN_BOUNDS_TASKS")
fi
$iclbench bounds --preset quick "${bounds_flags[@]}" --out "$out/bounds-quick"

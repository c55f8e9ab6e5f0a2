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
# The trained transformer (results/models/garg-gaussian-d8.md: Garg et al.'s GPT-2 layout,
# meta-trained on gaussian tasks at d = 8 for contexts up to 64 pairs) against Garg et al.'s
# baselines: averaging, an ERM stand-in (svm with a large C: these contexts are separable),
# logistic regression and 3-NN. One interleaved prompt per query: 100 tasks x 32 queries per
# grid point keep this to seconds.
$iclbench eval --generate "--family gaussian --d 8 --n 64 --queries 32 --tasks 100" \
  --model results/models/garg-gaussian-d8.safetensors \
  --heads avg,svm:C=1000,logistic,knn:k=3 --n-grid 4,8,16,32,64 \
  --out "$out/eval-trained-d8.json" --csv "$out/eval-trained-d8.csv" --force
echo
# The headline job: the bounds sweep's quick preset (its estimate, printed first, is about 20 s on 2
# quiet vCPUs, about 42 CPU s; 65 s wall at load 14; longer on a busier machine; resumes if rerun).
# ICLBENCH_MAIN_BOUNDS_TASKS=N runs it with N tasks per point instead of 100 (20: about a
# quarter of the time). CI's fresh-machine stage uses it, to check that the job runs, not for
# its numbers.
bounds_flags=()
if [ -n "${ICLBENCH_MAIN_BOUNDS_TASKS:-}" ]; then
  bounds_flags=(--tasks "$ICLBENCH_MAIN_BOUNDS_TASKS")
fi
$iclbench bounds --preset quick "${bounds_flags[@]}" --out "$out/bounds-quick"

#!/usr/bin/env bash
# Side by side on the encoder shape (D = 64, H = 4, FFN 256, 4 layers, T = 129, 64 prompts):
# iclbench f32 and bf16, PyTorch (Debian's python3-torch on OpenBLAS), the Eigen reference; in
# prompts/s and as a ratio to PyTorch, for 1 and 2 threads.
# Installs python3-torch and OpenBLAS if missing (`setup.sh peers`, not in the default set-up:
# ~300 MB).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh default peers
iclbench=build/release/bin/iclbench
[ -x "$iclbench" ] || bash scripts/build.sh release >/dev/null
speed() {  # threads, extra flags -> prompts/s
  "$iclbench" --threads "$1" --quiet speed --model encoder:D=64,H=4,F=256,layers=4 --n 129 \
    --queries 0 --batch 64 --repeats "${REPEATS:-7}" --json "${@:2}" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["prompts_per_second"])'
}
# OpenBLAS is the BLAS PyTorch should use here; the probe's OPENBLAS_CORETYPE / L2 overrides
# slow a current OpenBLAS down, so they are cleared for this command only.
torch_json=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread \
  /usr/bin/python3 bench/peers/torch_encoder.py --threads 1,2 --repeats "${REPEATS:-7}" --json)
reference=$(REPEATS=1 speed 1 --reference)
printf "%-8s %-22s %12s %10s\n" threads engine prompts/s "vs torch"
for threads in 1 2; do
  torch=$(echo "$torch_json" | /usr/bin/python3 -c "import json,sys; print([r['prompts_per_second'] for r in json.load(sys.stdin)['results'] if r['threads']==$threads][0])")
  f32=$(speed "$threads")
  bf16=$(speed "$threads" --bf16)
  for row in "iclbench f32:$f32" "iclbench bf16:$bf16" "pytorch:$torch" "eigen reference (1t):$reference"; do
    name=${row%%:*}; value=${row##*:}
    printf "%-8s %-22s %12.1f %9.2fx\n" "$threads" "$name" "$value" "$(/usr/bin/python3 -c "print($value/$torch)")"
  done
done

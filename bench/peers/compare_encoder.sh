#!/usr/bin/env bash
# Side by side on the encoder shape (D = 64, H = 4, FFN 256, 4 layers, T = 129, 64 prompts):
# iclbench f32 and bf16, PyTorch (Debian's python3-torch on OpenBLAS) in its best configuration
# here, the Eigen reference; in prompts/s and as a ratio to PyTorch, for 1 and 2 threads.
#
# The fair peer: OpenBLAS (not Debian's default reference BLAS) picked for PyTorch's process only
# through LD_LIBRARY_PATH, with OPENBLAS_NUM_THREADS=1 (PyTorch's own threads do the parallel
# work; OpenBLAS's pool on top of them oversubscribes the 2 vCPUs), and at 2 threads the best of
# 2 intra-op threads, two single-thread processes on half the batch each and one thread on the
# whole batch (what a user with 2 threads can always run), each measured in fresh processes of
# its own after a warm-up (bench/peers/torch_encoder.py). The configuration that won, the shape,
# REPEATS and the 1-minute load average at the start and end are printed with the table.
# Installs python3-torch and OpenBLAS if missing (`setup.sh peers`, not in the default set-up:
# ~300 MB).
#
# usage: [REPEATS=7] bash bench/peers/compare_encoder.sh   (REPEATS: timed forwards per cell, 1..1000)
set -euo pipefail
usage="usage: [REPEATS=7] bash bench/peers/compare_encoder.sh  (REPEATS: timed forwards per cell, 1..1000; no arguments)"
# Arguments and REPEATS are checked before anything is installed, built or timed.
if [ $# -gt 0 ]; then
  case "$1" in
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "compare_encoder.sh: unknown argument (it takes none; --help for usage)" >&2; exit 2 ;;
  esac
fi
REPEATS=${REPEATS:-7}
if ! [[ $REPEATS =~ ^[1-9][0-9]{0,3}$ ]] || [ "$REPEATS" -gt 1000 ]; then
  echo "compare_encoder.sh: REPEATS must be a whole number from 1 to 1000" >&2
  exit 2
fi
cd "$(dirname "$0")/../.."
bash scripts/setup.sh default peers
iclbench=build/release/bin/iclbench
[ -x "$iclbench" ] || bash scripts/build.sh release >/dev/null
model=encoder:D=64,H=4,F=256,layers=4 tokens=129 batch=64  # torch_encoder.py's shape
speed() {  # threads, extra flags -> prompts/s
  "$iclbench" --threads "$1" --quiet speed --model "$model" --n "$tokens" \
    --queries 0 --batch "$batch" --repeats "$REPEATS" --json "${@:2}" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["prompts_per_second"])'
}
openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread
if [ ! -e "$openblas/libblas.so.3" ]; then
  echo "compare_encoder.sh: $openblas not found (setup.sh peers installs libopenblas0-pthread)" >&2
  exit 2
fi
# A CPU-type or cache-size override left in the environment would steer OpenBLAS away from the
# kernels it picks for this CPU, so they are cleared for this command only.
read -r load_start _ </proc/loadavg
torch_json=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
  LD_LIBRARY_PATH="$openblas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  /usr/bin/python3 bench/peers/torch_encoder.py --threads 1,2 --repeats "$REPEATS" --json)
echo "$torch_json" | /usr/bin/python3 -c '
import json, sys
info = json.load(sys.stdin)
print("pytorch %s, BLAS %s loaded from %s, OPENBLAS_NUM_THREADS=%s, %d inter-op thread(s)" % (
    info["torch"], info["blas"], ", ".join(info["blas_loaded"]) or "?", info["OPENBLAS_NUM_THREADS"],
    info["interop_threads"]))
for r in info["results"]:
    print("  %d thread(s): %s; best %s" % (r["threads"], ", ".join(
        "%s %.1f prompts/s" % (t["mode"], t["prompts_per_second"]) for t in r["tried"]), r["mode"]))'
reference=$(REPEATS=1 speed 1 --reference)
echo "model $model, batch $batch prompts x T = $tokens tokens, REPEATS=$REPEATS timed forwards per cell;" \
  "1-min load $load_start at the start"
printf "%-8s %-24s %12s %10s\n" threads engine prompts/s "vs torch"
for threads in 1 2; do
  read -r torch mode < <(echo "$torch_json" | /usr/bin/python3 -c "import json,sys; r=[r for r in json.load(sys.stdin)['results'] if r['threads']==$threads][0]; print(r['prompts_per_second'], r['mode'])")
  f32=$(speed "$threads")
  bf16=$(speed "$threads" --bf16)
  for row in "iclbench f32:$f32" "iclbench bf16:$bf16" "pytorch ($mode):$torch" "eigen reference (1t):$reference"; do
    name=${row%%:*}; value=${row##*:}
    printf "%-8s %-24s %12.1f %9.2fx\n" "$threads" "$name" "$value" "$(/usr/bin/python3 -c "print($value/$torch)")"
  done
done
read -r load_end _ </proc/loadavg
echo "1-min load $load_end at the end"

#!/usr/bin/env bash
# Runs one of the scripts in scripts/train/ with PyTorch on OpenBLAS and one BLAS thread:
#   bash scripts/train/run.sh train.py --run-dir DIR ...
# Debian's python3-torch calls whatever libblas.so.3 the system provides, by default the
# reference BLAS, which makes training many times slower. OpenBLAS (libopenblas0-pthread) is
# picked for this process only, through LD_LIBRARY_PATH, so the system's libblas.so.3 -- which
# LIBLINEAR and oneDNN also link -- stays as it is. One BLAS thread: PyTorch's own threads
# (train.py --threads) do the parallel work, and two pools on 2 vCPUs fight each other.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$(dirname "$0")/$1" ]; then
  echo "usage: bash scripts/train/run.sh SCRIPT.py [ARGS...], SCRIPT.py one of:" \
       "$(cd "$(dirname "$0")" && ls ./*.py | sed 's|^\./||' | tr '\n' ' ')" >&2
  exit 2
fi
openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread
if [ -e "$openblas/libblas.so.3" ]; then
  export LD_LIBRARY_PATH="$openblas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  echo "run.sh: $openblas not found (apt-get install libopenblas0-pthread): PyTorch falls back" \
       "to the reference BLAS and trains many times slower" >&2
fi
export OPENBLAS_NUM_THREADS=1
# A CPU-type or cache-size override left in the environment would steer OpenBLAS away from the
# kernels it picks for this CPU.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
exec /usr/bin/python3 "$(dirname "$0")/$1" "${@:2}"

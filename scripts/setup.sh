#!/usr/bin/env bash
# Installs the Debian 12 packages iclbench needs, by purpose. Idempotent: silent and quick when
# everything asked for is already installed. Run as root (or as a user with sudo).
#
#   bash scripts/setup.sh               the default purposes (build run test bench): what the
#                                       README's two commands (scripts/main.sh, scripts/test.sh)
#                                       and the benchmark gate need
#   bash scripts/setup.sh PURPOSE...    those purposes only; `default` names the four above. The
#                                       scripts that need more ask for it (sanitize.sh: sanitize,
#                                       bench/peers/compare_*: peers, scripts/train/run.sh:
#                                       train, fresh_machine_check.sh)
#
# Packages are installed with --no-install-recommends, so every package used must be listed here,
# including those a -dev package only recommends: a machine that happens to have one must not
# hide a missing line. scripts/fresh_machine_check.sh proves the default purposes on a freshly
# bootstrapped Debian 12. To add a package, add one line to the purpose that needs it, saying why.
set -euo pipefail

# The release build: compilers, CMake, and every library CMakeLists.txt finds (the release preset
# also builds the tests and the benchmarks).
build=(
  build-essential cmake ninja-build
  git                  # CMake asks `git rev-parse` for the revision that `iclbench info` prints
  libdnnl-dev
  ocl-icd-opencl-dev   # oneDNN's CMake package looks for OpenCL; libdnnl-dev only recommends it
  libtbb-dev libeigen3-dev librandom123-dev liblinear-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin   # MPI for `mpirun -n K iclbench bounds` (CMake's FindMPI runs its mpicxx wrapper)
)
# The main job (scripts/main.sh) beyond the binary: `bounds` draws its plots with matplotlib.
run=(
  python3 python3-matplotlib
)
# The test suite (scripts/test.sh runs ctest on everything) beyond the build.
test=(
  python3 python3-numpy   # tests/python/read_dataset_test.py: an independent reader, NumPy only
  python3-torch libopenblas0-pthread   # tests/python/train_test.py: the training scripts
  chromium                # tests/python/track_browser_test.py renders bench/track.py's dashboard
  openmpi-bin             # tests/python/mpi_bounds_test.py: mpirun, a 2-rank sweep against one process
)
# Training a model (scripts/train/, run through scripts/train/run.sh).
train=(
  python3 python3-numpy python3-matplotlib python3-torch
  libopenblas0-pthread   # run.sh picks it for PyTorch (Debian's default BLAS is the slow reference one)
)
# The benchmark regression gate (bench/gate.py).
bench=(
  python3 libbenchmark-tools   # compare.py's gbench module
  python3-scipy                # its U test
)
# CI's sanitizer stage (scripts/sanitize.sh).
sanitize=(
  clang libclang-rt-14-dev   # the fuzz preset: clang with its libFuzzer runtime
  dpkg-dev                   # scripts/build_tsan_tbb.sh unpacks Debian's oneTBB source package
)
# The PyTorch peers (bench/peers/compare_encoder.sh, compare_garg.py).
peers=(
  python3 python3-torch
  python3-numpy          # compare_garg.py reads the model and the prompts (scripts/train/safetensors_np.py)
  libopenblas0-pthread   # the BLAS the peer runs PyTorch on (Debian's default is the slow reference BLAS)
)
# CI's fresh-machine stage (scripts/fresh_machine_check.sh).
fresh_machine=(
  debootstrap
)

default_purposes=(build run test bench)
all_purposes=(build run test bench sanitize peers train fresh_machine)

purposes=()
for purpose in "${@:-default}"; do
  purpose=${purpose//-/_}
  if [ "$purpose" = default ]; then
    purposes+=("${default_purposes[@]}")
  elif [[ " ${all_purposes[*]} " == *" $purpose "* ]]; then
    purposes+=("$purpose")
  else
    echo "setup: unknown purpose '$purpose' (one of: default ${all_purposes[*]})" >&2
    exit 2
  fi
done
packages=()
for purpose in "${purposes[@]}"; do
  declare -n list=$purpose
  packages+=("${list[@]}")
  unset -n list
done

missing=()
for package in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ] &&
     [[ " ${missing[*]} " != *" $package "* ]]; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

# A minimal system has no sudo; root needs none.
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "setup: missing packages (${missing[*]}); run this as root or install sudo" >&2
    exit 1
  fi
  sudo=(sudo)
fi
echo "setup: installing ${missing[*]}" >&2
# Waits for another apt or dpkg (unattended upgrades on a new machine, a second set-up) to finish.
apt_options=(-qq -o DPkg::Lock::Timeout=600)
"${sudo[@]}" apt-get "${apt_options[@]}" update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_options[@]}" install -y \
  --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2

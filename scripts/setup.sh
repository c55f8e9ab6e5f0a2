#!/usr/bin/env bash
# Installs every Debian package iclbench needs to build, test and run. Idempotent: silent and
# quick when everything is already installed. Run as root (or with sudo available).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build git
  # libraries (see DESIGN.md, "The stack")
  libdnnl-dev libtbb-dev libeigen3-dev libbenchmark-dev libbenchmark-tools libgtest-dev
  librandom123-dev liblinear-dev nlohmann-json3-dev libcli11-dev
  # Python tooling runs on /usr/bin/python3 with Debian's packages only
  python3 python3-numpy python3-scipy python3-matplotlib
  chromium  # headless browser: the ctest that renders bench/track.py's dashboard
  # sanitizer stage of CI: clang with its libFuzzer runtime
  clang libclang-rt-14-dev
  # ThreadSanitizer stage: oneTBB rebuilt from Debian's source package (scripts/build_tsan_tbb.sh)
  dpkg-dev
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
echo "setup: done" >&2

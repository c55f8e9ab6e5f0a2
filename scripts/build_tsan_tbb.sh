#!/usr/bin/env bash
# Builds oneTBB with ThreadSanitizer from Debian's source package of the installed libtbb-dev, and
# prints the directory holding its libtbb.so.12.
#
# Why: Debian's libtbb is not instrumented, so TSan cannot see the synchronisation inside TBB's
# scheduler (a task spawned on one thread and run on another) and reports every hand-off as a
# race (124 false reports in the thread-budget test alone). With this library on
# LD_LIBRARY_PATH (same version and soname) those reports disappear and real races stay visible.
#
# Building takes ~25 s; the result is kept in ~/.cache/iclbench/ per Debian version and reused.
set -euo pipefail
# Its tools: CMake, Ninja and g++ (build), dpkg-source (sanitize); quiet when present.
bash "$(dirname "$0")/setup.sh" build sanitize >&2
version=$(dpkg-query -W -f='${Version}' libtbb-dev)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/iclbench/tbb-tsan-$version
if [ -e "$cache/lib/libtbb.so.12" ]; then
  echo "$cache/lib"
  exit 0
fi
echo "tsan: building oneTBB $version with -fsanitize=thread (once; cached in $cache)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial"
# A new machine usually has no deb-src lines, and this script leaves the machine's apt
# configuration alone: it writes deb-src lines of its own, for the Debian archives (mirror,
# suites) whose binary packages this machine's apt already uses, into a list of its own.
# Where apt knows none (its lists were never downloaded), Debian's own address.
. /etc/os-release
apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Target-Of: deb' \
    'Identifier: Packages' 2>/dev/null | sort -u |
  awk -v suites=" $VERSION_CODENAME $VERSION_CODENAME-updates $VERSION_CODENAME-security " \
    'index(suites, " " $2 " ") { print "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]", $0 }' \
    >"$work/src.list"
if [ ! -s "$work/src.list" ]; then
  cat >"$work/src.list" <<SOURCES
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $VERSION_CODENAME $VERSION_CODENAME-updates main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security $VERSION_CODENAME-security main
SOURCES
fi
apt_options=(-qq -o Dir::Etc::sourcelist="$work/src.list" -o Dir::Etc::sourceparts=-
             -o Dir::State::Lists="$work/lists")
# As root, apt would drop to the _apt user, which cannot write to this temporary directory.
if [ "$(id -u)" -eq 0 ]; then apt_options+=(-o APT::Sandbox::User=root); fi
apt-get "${apt_options[@]}" update >&2
(cd "$work" && apt-get "${apt_options[@]}" source --download-only "onetbb=$version" >"$work/source.log" 2>&1) ||
  { cat "$work/source.log" >&2; echo "tsan: could not download Debian's source of onetbb $version" >&2; exit 1; }
# apt-get has checked every file against the archive's signed index; the .dsc's own signature
# (the uploader's key, not installed here) adds nothing, so dpkg-source does not check it again.
dpkg-source --no-check -x "$work"/onetbb_*.dsc "$work/src" >/dev/null
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DTBB_SANITIZE=thread -DTBB_TEST=OFF \
  -DTBB_EXAMPLES=OFF -DTBB_STRICT=OFF -DTBBMALLOC_BUILD=OFF >/dev/null
cmake --build "$work/build" --target tbb >/dev/null
mkdir -p "$cache.partial/lib"
cp -a "$work"/build/*/libtbb.so* "$cache.partial/lib/"
mv "$cache.partial" "$cache"
echo "$cache/lib"

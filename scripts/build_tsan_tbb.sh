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
cat >"$work/src.sources" <<SOURCES
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_options=(-qq -o Dir::Etc::sourcelist="$work/src.sources" -o Dir::Etc::sourceparts=-
             -o Dir::State::Lists="$work/lists")
# As root, apt would drop to the _apt user, which cannot write to this temporary directory.
if [ "$(id -u)" -eq 0 ]; then apt_options+=(-o APT::Sandbox::User=root); fi
apt-get "${apt_options[@]}" update >&2
(cd "$work" && apt-get "${apt_options[@]}" source --download-only "onetbb=$version" >/dev/null 2>&1)
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

#!/usr/bin/env bash
# CI's fresh-machine stage: runs the README's two commands, exactly as written, in a clean
# checkout of the commit under test on a minimal Debian 12 made with
# `debootstrap --variant=minbase bookworm`, entered with chroot. It catches what no run on a
# developer's machine can: a package the project uses but its scripts do not install.
#
#   bash scripts/fresh_machine_check.sh      (as root; tests HEAD of this checkout, committed files only)
#
# The bare base system is cached as a tarball in ~/.cache/iclbench/ (rebuilt when 30 days old);
# the project's packages never are: installing them is what is being tested. The main job's
# last step, the bounds quick preset, runs with 20 tasks per point instead of 100 here
# (ICLBENCH_MAIN_BOUNDS_TASKS, read by scripts/main.sh; set it to override).
# Every mount is undone and the system removed on every exit path (failure, SIGINT, SIGTERM,
# SIGHUP; only SIGKILL cannot be caught: then `umount -R` the directory the log names);
# ICLBENCH_FRESH_KEEP=1 keeps the system (unmounted) for a look. Prints the step that failed
# and exits non-zero if any step fails.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "fresh-machine: needs root (debootstrap, mount, chroot)" >&2
  exit 2
fi
suite=bookworm
arch=$(dpkg --print-architecture)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/iclbench
base_tarball=$cache/debootstrap-$suite-minbase-$arch.tar.gz
commit=$(git -C "$repo" rev-parse HEAD)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  echo "fresh-machine: testing commit ${commit:0:12}; uncommitted changes are not part of it" >&2
fi

step="start"
start_seconds=$SECONDS
begin() {
  step=$1
  echo "== fresh-machine: $step ($((SECONDS - start_seconds)) s)"
}

# The mirrors this host's apt uses (its sources name them), so that the check needs no other
# network; deb.debian.org where the host names none.
debian_mirror() {  # pattern for the suite -> the archive's URI
  apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Target-Of: deb' 2>/dev/null |
    awk -v pattern="$1" '$2 ~ pattern { print $1; exit }'
}
mirror=$(debian_mirror "^$suite(-updates)?\$")
mirror=${mirror:-http://deb.debian.org/debian/}
security_mirror=$(debian_mirror "^$suite-security\$")
security_mirror=${security_mirror:-http://deb.debian.org/debian-security/}

work=$(mktemp -d "${TMPDIR:-/tmp}/iclbench-fresh.XXXXXX")
root=$work/root

mounts_under() {  # dir -> its mount points (and those below it), deepest first
  awk -v dir="$1" '$2 == dir || index($2, dir "/") == 1 { print $2 }' /proc/mounts | sort -r
}
stop_processes_inside() {  # every process whose root directory is the fresh system
  local signal pid pids
  for signal in TERM TERM TERM KILL; do
    pids=()
    for pid in /proc/[0-9]*; do
      [ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ] && pids+=("${pid#/proc/}")
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    kill "-$signal" "${pids[@]}" 2>/dev/null || true
    sleep 1
  done
}
cleanup() {
  local status=$? point
  # A second Ctrl-C must not stop the clean-up halfway, with the host's /dev still mounted.
  trap '' INT TERM HUP
  trap - EXIT
  stop_processes_inside
  for point in $(mounts_under "$work"); do
    umount "$point" 2>/dev/null || umount --lazy "$point" || true
  done
  if [ -n "$(mounts_under "$work")" ]; then
    echo "fresh-machine: still mounted, $work left in place:" $(mounts_under "$work") >&2
    status=1
  elif [ "${ICLBENCH_FRESH_KEEP:-0}" = 1 ]; then
    echo "fresh-machine: kept the system in $root" >&2
  else
    # --one-file-system: never descends into anything still mounted, whatever happened above.
    rm -rf --one-file-system "$work"
  fi
  if [ "$status" -eq 0 ]; then
    echo "fresh-machine: passed in $((SECONDS - start_seconds)) s"
  else
    echo "fresh-machine: FAILED at step: $step (exit $status, after $((SECONDS - start_seconds)) s)" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
for signal in INT:130 TERM:143 HUP:129; do
  trap "echo 'fresh-machine: SIG${signal%:*}, stopping' >&2; exit ${signal#*:}" "${signal%:*}"
done

begin "install debootstrap on this host"
bash "$repo/scripts/setup.sh" fresh-machine

if [ -z "$(find "$base_tarball" -mtime -30 2>/dev/null)" ]; then
  begin "debootstrap --variant=minbase $suite (cached afterwards in $base_tarball)"
  debootstrap --variant=minbase "$suite" "$work/base" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -30 "$work/debootstrap.log" >&2; exit 1; }
  # The host's name server and name belong to the host, not to the cached system.
  rm -f "$work/base/etc/resolv.conf" "$work/base/etc/hostname"
  mkdir -p "$cache"
  tar -C "$work/base" --numeric-owner --xattrs -czf "$base_tarball.partial" .
  mv "$base_tarball.partial" "$base_tarball"
  rm -rf --one-file-system "$work/base"
fi

begin "unpack the base system into $root"
mkdir "$root"
tar -C "$root" --numeric-owner --xattrs -xzf "$base_tarball"
# What a new Debian 12 machine has and a bootstrapped directory does not: the suite's updates and
# security archives, a name server, and a hosts file that names localhost.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
[ -s "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
  >"$root/etc/hosts"
# The system is thrown away afterwards, so dpkg need not fsync every file it unpacks (as in
# Debian's container images); this changes how fast packages install, never which.
echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/fresh-machine-check"
# A chroot shares the host's services: packages installed in it must not start daemons.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

begin "clone commit ${commit:0:12} into /root/iclbench"
git clone --quiet --no-local --no-checkout "$repo" "$root/root/iclbench"
git -C "$root/root/iclbench" checkout --quiet --detach "$commit"

begin "mount /proc, /sys, /dev, /dev/pts, /dev/shm"
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"         # hwloc (OpenMPI) and Chromium read the topology
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"  # POSIX shared memory, its own

inside() {  # command line -> runs it in the fresh system as root with a login's environment
  # In the background and waited for, so that a signal to this script stops it at once (bash
  # runs a trap only after a foreground child ends); the trap then stops every process inside.
  chroot "$root" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ICLBENCH_MAIN_BOUNDS_TASKS="${ICLBENCH_MAIN_BOUNDS_TASKS:-20}" \
    /bin/bash -c "cd /root/iclbench && $1" </dev/null &
  wait $!
}

begin "bash scripts/main.sh"
inside "bash scripts/main.sh"
begin "check the main job's report and plots"
# The quick preset has a regime B k grid again (issue 12), so regime_b.png is among its plots.
for file in report.md points.csv fits.json err_vs_n.png nstar_vs_d.png nstar_vs_eps.png regime_b.png; do
  [ -s "$root/root/iclbench/out/bounds-quick/$file" ] ||
    { echo "fresh-machine: the main job left no out/bounds-quick/$file" >&2; exit 1; }
done

begin "bash scripts/test.sh"
inside "bash scripts/test.sh"
step="done"

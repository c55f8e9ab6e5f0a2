#!/usr/bin/python3
"""Regression tracking across commits for the kernel benchmarks: asv's workflow (run,
continuous, find, publish) with the regression gate's statistics (bench/benchstats.py).

  track.py run REV...               build and measure commits: ranges A..B (A excluded, first
                                    parents of B) or single revisions; stored ones are skipped
  track.py continuous BASE HEAD     compare two commits; exit 1 on a confirmed regression
  track.py find REV... BENCHMARK    bisect the first commit at which BENCHMARK became slower
  track.py publish DIR              write a static HTML dashboard of every stored result

Each commit is checked out (detached) in one git worktree of the repository under the cache
directory and built there with CMake into one build directory that every commit reuses, so
only what a commit changed is recompiled; only the kernels_bench target is built, and the
binary is kept per (machine, commit) for later re-runs. ccache is used when it is on PATH
(--no-ccache to build without); it is never required. Every measurement runs the gate's set
(benchstats.GATE_FILTER: the calibration GEMM and the single-threaded kernels) with every
repetition randomly interleaved, in --rounds processes that share a commit's 9 repetitions
(default 9: one each, because on this host the repetitions of one process share its state:
one binary's softmax ran 24% apart between processes and within 3-5% inside each, so only
separate processes are independent samples for the U test). `run` builds all its commits first
and then measures them round by round (the first round in commit order, later ones in a fixed
shuffle), so that a slow phase or a drift of the host falls on a share of every commit rather
than on all of one or on the commit order. The processes' Google
Benchmark JSON, calibration kernel included, is stored as one JSON whose rows are tagged with
their process ("process_index"; each process is divided by its own calibration) in
RESULTS/<machine fingerprint>/<commit>.json, atomically; rounds done before an interruption
are kept under the cache and resumed. A commit that
does not build, predates bench/kernels_bench.cpp or the calibration kernel, or whose
benchmark process fails is stored with that status and a reason, not as an error of this
tool. A stored (machine, commit) is not measured again unless --force; a stored file that does
not validate is measured again with one notice line. One tool run at a time per cache (a lock).

Statistics (benchstats.py, shared with the gate): times divided by the calibration kernel's
median in the same process; a benchmark is slower when the U test gives p < 0.01 and the
normalised median is >= 10% higher. `continuous` and the boundary of `find` confirm a flagged
difference by running both commits' binaries again, their rounds alternating, in one window.
The dashboard's change points: binary segmentation with the same U test at every boundary
(Bonferroni-corrected for the boundaries tried, p < 0.01) and the same 10% minimum effect;
intervals are distribution-free 95% intervals of the median.

Exit codes: 0 success (continuous: no confirmed regression; find: a confirmed first slower
commit), 1 (continuous: a confirmed regression or a benchmark of BASE missing at HEAD without
--allow-missing; find: no slowdown between the ends, or a boundary that a fresh run did not
confirm), 2 unusable input (unknown revision, a commit that cannot be measured where a
measurement is needed, unusable stored JSON, a busy cache, bad flags), 130 interrupted.

Runs on /usr/bin/python3 with Debian's python3-scipy and python3-matplotlib; needs git,
cmake and a C++ compiler to build commits.
"""
import argparse
import contextlib
import fcntl
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchstats  # noqa: E402
benchstats.require("scipy")
from benchstats import CALIBRATION, GATE_FILTER, InputError, RunError, printable  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT = "iclbench-track-result"
FORMAT_VERSION = 1
BENCH_SOURCE = "bench/kernels_bench.cpp"
BENCH_TARGET = "kernels_bench"
STATUSES = ("ok", "build-failed", "no-benchmarks", "bench-failed")
LOG_TAIL_LINES = 30


def say(text):
    print("track: " + text, flush=True)


def notice(text):
    print("track: " + text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# git


def git(repo, *args, check=True):
    """stdout of `git -C repo ARGS`; InputError with git's first line if it fails and `check`."""
    process = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
    if check and process.returncode != 0:
        first = (process.stderr.strip().splitlines() or ["exit %d" % process.returncode])[0]
        raise InputError("git %s: %s" % (args[0], printable(first)))
    return process.stdout if process.returncode == 0 else None


def resolve(repo, rev):
    """The full hash of commit `rev`; InputError if it names none (or looks like an option)."""
    if not rev or rev.startswith("-") or "\n" in rev:
        raise InputError("%s: not a revision" % printable(repr(rev)))
    out = git(repo, "rev-parse", "--verify", "--quiet", rev + "^{commit}", check=False)
    if not out:
        raise InputError("%s: unknown revision in %s" % (printable(rev), printable(repo)))
    return out.strip()


def expand(repo, revs):
    """Commits named by `revs` in order: A..B is B's first-parent line back to A (A excluded,
    oldest first, as git rev-list A..B); anything else is one commit. Duplicates dropped."""
    commits = []
    for rev in revs:
        if "..." in rev:
            raise InputError("%s: symmetric ranges (A...B) have no order; use A..B" % printable(rev))
        if ".." in rev:
            start, end = rev.split("..", 1)
            a, b = resolve(repo, start or "HEAD"), resolve(repo, end or "HEAD")
            listed = git(repo, "rev-list", "--reverse", "--first-parent", "%s..%s" % (a, b)).split()
            if not listed:
                raise InputError("%s holds no commits" % printable(rev))
            commits += listed
        else:
            commits.append(resolve(repo, rev))
    seen = set()
    return [c for c in commits if not (c in seen or seen.add(c))]


def commit_info(repo, sha):
    fields = git(repo, "show", "-s", "--format=%H%x00%P%x00%ct%x00%an%x00%s", sha).rstrip("\n").split("\0")
    return {"commit": fields[0], "parents": fields[1].split(), "commit_time": int(fields[2]),
            "author": fields[3], "subject": fields[4]}


# ---------------------------------------------------------------------------------------------
# The machine


def machine_fingerprint():
    """(name, details) of this machine and toolchain: what makes timings comparable.

    Computed here, not by a built binary, because it must be the same for every commit,
    including commits whose binaries report less about themselves."""
    cpu, flags = "unknown", set()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and cpu == "unknown":
                    cpu = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    isa = next((f for f in ("amx_tile", "avx512_bf16", "avx512f", "avx2") if f in flags), "baseline")
    onednn = "unknown"
    with contextlib.suppress(OSError):
        with open("/usr/include/oneapi/dnnl/dnnl_version.h") as f:
            parts = dict(re.findall(r"#define DNNL_VERSION_(MAJOR|MINOR|PATCH)\s+(\d+)", f.read()))
            if len(parts) == 3:
                onednn = "%s.%s.%s" % (parts["MAJOR"], parts["MINOR"], parts["PATCH"])
    compiler = "unknown"
    cxx = os.environ.get("CXX") or "c++"
    with contextlib.suppress(OSError):
        text = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
        first = (text.splitlines() or [""])[0]
        version = re.findall(r"\d+\.\d+(?:\.\d+)?", first)
        compiler = ("clang" if "clang" in first.lower() else "gcc") + (version[-1] if version else "")
    details = {"cpu_model": cpu, "logical_cpus": os.cpu_count(), "isa": isa,
               "isa_flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_tile"}),
               "onednn_version": onednn, "compiler": compiler}
    name = "%s-%dcpu-%s-onednn%s-%s" % (cpu, os.cpu_count() or 0, isa, onednn, compiler)
    return re.sub(r"[^A-Za-z0-9.]+", "_", name).strip("_"), details


# ---------------------------------------------------------------------------------------------
# Stored results


def validate_record(record, source, sha=None):
    """`record` if it is a stored result this version can use (for `ok`, with a usable Google
    Benchmark run that has the calibration kernel); InputError naming `source` otherwise."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError("%s: not a %s file" % (source, FORMAT))
    if record.get("format_version") != FORMAT_VERSION:
        raise InputError("%s: format_version %s, this tool reads %d (measure again with --force)"
                         % (source, printable(repr(record.get("format_version"))), FORMAT_VERSION))
    commit = record.get("commit")
    if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", commit) or \
            (sha is not None and commit != sha):
        raise InputError("%s: commit %s does not match the file name" % (source, printable(repr(commit))))
    if record.get("status") not in STATUSES:
        raise InputError("%s: unknown status %s" % (source, printable(repr(record.get("status")))))
    for key, kind in (("subject", str), ("commit_time", int), ("parents", list)):
        if not isinstance(record.get(key), kind):
            raise InputError("%s: %s missing or not a %s" % (source, key, kind.__name__))
    if record["status"] == "ok":
        run = benchstats.parse_run(record.get("google_benchmark"), source)
        benchstats.normalised(run)
        record["_run"] = run
    return record


class Store:
    """RESULTS/<machine>/<commit>.json, and machine.json with the fingerprint's details."""

    def __init__(self, root, machine, details):
        self.directory = os.path.join(root, machine)
        self.machine, self.details = machine, details

    def path(self, sha):
        return os.path.join(self.directory, sha + ".json")

    def load(self, sha):
        """The stored record of `sha`, None if there is none; InputError if it is unusable."""
        path = self.path(sha)
        if not os.path.lexists(path):
            return None
        return validate_record(benchstats.read_json(path), path, sha)

    def save(self, record):
        files = {record["commit"] + ".json": {k: v for k, v in record.items() if not k.startswith("_")}}
        if not os.path.exists(os.path.join(self.directory, "machine.json")):
            files["machine.json"] = {"format": FORMAT + "-machine", "format_version": FORMAT_VERSION,
                                     "machine": self.machine, "details": self.details}
        benchstats.write_json_files(self.directory, files)


# ---------------------------------------------------------------------------------------------
# Building a commit


class BuildFailed(Exception):
    pass


class Builder:
    """One git worktree and one reused CMake build directory per repository, under the cache.

    CACHE/<repository>-<hash of its git directory>/
      worktree/   a `git worktree` of the repository, checked out detached at the commit at hand
      build/      the CMake build directory every commit reuses (incremental builds)
      bin/<machine>/<commit>/kernels_bench   each commit's binary, for re-runs without a build
      logs/<commit>.log                      configure and build output
      lock        held while a tool run uses this directory"""

    def __init__(self, repo, cache, machine, jobs, use_ccache):
        common = os.path.realpath(os.path.join(repo, git(repo, "rev-parse", "--git-common-dir").strip()))
        key = hashlib.sha1(common.encode()).hexdigest()[:12]
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.dirname(common)) or "repo")
        self.repo, self.common, self.machine, self.jobs = repo, common, machine, jobs
        self.base = os.path.join(cache, "%s-%s" % (name, key))
        self.worktree = os.path.join(self.base, "worktree")
        self.build_dir = os.path.join(self.base, "build")
        self.use_ccache = use_ccache

    @contextlib.contextmanager
    def locked(self):
        os.makedirs(self.base, exist_ok=True)
        with open(os.path.join(self.base, "lock"), "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                raise InputError("another track.py (pid %s) is using %s; wait for it to finish"
                                 % (printable(f.read().strip() or "?"), self.base)) from None
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            yield

    def binary_path(self, sha):
        return os.path.join(self.base, "bin", self.machine, sha, BENCH_TARGET)

    def kept(self, sha):
        path = self.binary_path(sha)
        return os.path.isfile(path) and os.access(path, os.X_OK)

    def ccache_arguments(self):
        """The compiler launcher, always explicit: a reused build directory keeps whatever the
        previous configure set, and CMake reads the environment's only on a first configure."""
        launcher = self.launcher()
        return ["-DCMAKE_CXX_COMPILER_LAUNCHER=" + ("" if launcher == "none" else launcher)]

    def launcher(self):
        """The compiler launcher of builds: the environment's CMAKE_CXX_COMPILER_LAUNCHER, else
        ccache if it is on PATH, else "none" (always with --no-ccache)."""
        if not self.use_ccache:
            return "none"
        return os.environ.get("CMAKE_CXX_COMPILER_LAUNCHER") or ("ccache" if shutil.which("ccache") else "none")

    def checkout(self, sha):
        if os.path.isdir(self.worktree):
            common = git(self.worktree, "rev-parse", "--git-common-dir", check=False)
            if common is None or os.path.realpath(os.path.join(self.worktree, common.strip())) != self.common:
                shutil.rmtree(self.worktree)
        if not os.path.isdir(self.worktree):
            git(self.repo, "worktree", "prune")
            git(self.repo, "worktree", "add", "--detach", "--force", "--quiet", self.worktree, sha)
        git(self.worktree, "checkout", "--detach", "--force", "--quiet", sha)
        git(self.worktree, "clean", "-ffdxq")

    def build(self, sha):
        """Path of `sha`'s kernels_bench, built now unless kept from before; BuildFailed if the
        commit does not build, or does not configure even in a fresh build directory."""
        kept = self.binary_path(sha)
        if self.kept(sha):
            return kept
        self.checkout(sha)
        os.makedirs(os.path.join(self.base, "logs"), exist_ok=True)
        log_path = os.path.join(self.base, "logs", sha + ".log")
        env = dict(os.environ)
        if not self.use_ccache:
            env.pop("CMAKE_CXX_COMPILER_LAUNCHER", None)
        with open(log_path, "w") as log:
            for attempt in (1, 2):
                configure = ["cmake", "-S", self.worktree, "-B", self.build_dir, "-DCMAKE_BUILD_TYPE=Release",
                             "-DICLBENCH_BUILD_TESTS=OFF", *self.ccache_arguments()]
                if not os.path.exists(os.path.join(self.build_dir, "CMakeCache.txt")) and shutil.which("ninja"):
                    configure += ["-G", "Ninja"]
                steps = [configure, ["cmake", "--build", self.build_dir, "--target", BENCH_TARGET,
                                     "--parallel", str(self.jobs)]]
                failed = None
                for step in steps:
                    log.write("$ %s\n" % " ".join(step))
                    log.flush()
                    if subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, env=env).returncode != 0:
                        failed = step
                        break
                if failed is not configure or attempt == 2:
                    break
                # A build directory configured by a very different commit can fail to configure
                # where a fresh one would not: retry once from scratch before blaming the
                # commit. (A compile error is the commit's: retrying it would cost a full build.)
                log.write("# configure failed: retrying in a fresh build directory\n")
                shutil.rmtree(self.build_dir, ignore_errors=True)
        if failed is not None:
            with open(log_path, errors="replace") as f:
                tail = f.read().splitlines()[-LOG_TAIL_LINES:]
            raise BuildFailed("%s failed (log: %s)" % ("configure" if failed is configure else "build", log_path),
                              "\n".join(tail))
        built = os.path.join(self.build_dir, "bin", BENCH_TARGET)
        if not os.path.isfile(built):
            found = [os.path.join(d, BENCH_TARGET) for d, _, files in os.walk(self.build_dir) if BENCH_TARGET in files]
            if not found:
                raise BuildFailed("the build made no %s binary" % BENCH_TARGET, "")
            built = found[0]
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=os.path.dirname(kept), prefix=".kernels_bench.tmp.")
        os.close(fd)
        try:
            shutil.copy2(built, temp)
            os.replace(temp, kept)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return kept


# ---------------------------------------------------------------------------------------------
# Measuring commits


class Tracker:
    """Measures commits: each in `rounds` processes that share its repetitions, every process
    dividing by its own calibration kernel. `run` interleaves the rounds over all its commits
    (asv's interleaved rounds), so that a slow phase of a shared host (a neighbour thrashing
    the cache hurts memory-bound kernels more than the compute-bound calibration GEMM) hits a
    share of every commit's repetitions instead of all of one commit's, and a process's own
    state (where its buffers landed) is one sample, not nine."""

    def __init__(self, args):
        self.repo = args.repo
        git(self.repo, "rev-parse", "--git-dir")
        if not shutil.which("cmake"):
            raise InputError("cmake not found on PATH (bash scripts/setup.sh installs it)")
        if args.rounds > args.repetitions:
            raise InputError("--rounds %d exceeds --repetitions %d" % (args.rounds, args.repetitions))
        self.machine, self.details = machine_fingerprint()
        self.store = Store(args.results, self.machine, self.details)
        self.builder = Builder(self.repo, args.cache, self.machine, args.jobs, not args.no_ccache)
        self.repetitions, self.rounds, self.min_time = args.repetitions, args.rounds, args.min_time
        self.settings = {"filter": GATE_FILTER, "repetitions": self.repetitions, "rounds": self.rounds,
                         "min_time": self.min_time}
        self.partial_dir = os.path.join(self.builder.base, "rounds", self.machine)
        self.costs = []  # (build seconds, benchmark seconds) of each commit measured now

    def per_round(self, round_index):
        """Repetitions of round `round_index`: the total shared as evenly as it goes."""
        return self.repetitions // self.rounds + (1 if round_index < self.repetitions % self.rounds else 0)

    def stored(self, sha, label):
        """The stored record of `sha`, or None (with a notice if the stored file is unusable)."""
        try:
            record = self.store.load(sha)
        except InputError as error:
            notice("stored result unusable, measuring again: %s" % error)
            return None
        if record is not None:
            say("%s%s stored (%s)" % (label, sha[:12], record["status"]))
        return record

    def prepare(self, sha, label):
        """(new record, binary) of `sha`, built now unless its binary is kept; binary is None
        for a commit that cannot be measured, whose record is then stored already."""
        record = commit_info(self.repo, sha)
        record.update({"format": FORMAT, "format_version": FORMAT_VERSION, "machine": self.machine,
                       "settings": self.settings, "slowdown_env": os.environ.get("ICLBENCH_BENCH_SLOWDOWN")})
        binary = None
        if git(self.repo, "cat-file", "-e", "%s:%s" % (sha, BENCH_SOURCE), check=False) is None:
            record.update(status="no-benchmarks", reason="no %s: predates the kernel benchmarks" % BENCH_SOURCE)
        else:
            kept = self.builder.kept(sha)
            if not kept:
                say("%s%s building" % (label, sha[:12]))
            start = time.monotonic()
            try:
                binary = self.builder.build(sha)
            except BuildFailed as failure:
                record.update(status="build-failed", reason=str(failure.args[0]), log_tail=failure.args[1])
            record["build_seconds"] = round(time.monotonic() - start, 1)
            record["binary_kept"] = kept
        if binary is None:
            self.finish(record, [], label)
        return record, binary

    def measure_round(self, sha, binary, round_index, label):
        """One process of `sha`'s binary: its JSON, or the RunError message."""
        say("%s%s round %d/%d: %d repetitions" % (label, sha[:12], round_index + 1, self.rounds,
                                                   self.per_round(round_index)))
        try:
            return benchstats.run_benchmarks(binary, GATE_FILTER, self.per_round(round_index), self.min_time)[0]
        except RunError as error:
            return str(error)

    def finish(self, record, runs, label, bench_seconds=0.0):
        """Stores `record` with the processes' JSON `runs` (or its failure) and returns it validated."""
        record["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if "status" not in record:
            failed = [r for r in runs if isinstance(r, str)]
            merged = None if failed else benchstats.merge_processes(runs)
            names = benchstats.parse_run(merged, "this run").samples if merged else {}
            if failed:
                record.update(status="bench-failed", reason=failed[0])
            elif CALIBRATION not in names:
                record.update(status="no-benchmarks",
                              reason="%s has no %s: predates the regression gate" % (BENCH_TARGET, CALIBRATION))
            elif len(names) < 2:
                record.update(status="no-benchmarks", reason="no gated benchmark besides the calibration kernel")
            else:
                record.update(status="ok", google_benchmark=merged)
            record["bench_seconds"] = round(bench_seconds, 1)
            self.costs.append((0.0 if record.get("binary_kept") else record.get("build_seconds", 0.0),
                               record["bench_seconds"]))
        self.store.save(record)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.partial_dir, record["commit"] + ".json"))
        built = "binary kept" if record.get("binary_kept") else "built in %.0f s" % record.get("build_seconds", 0)
        say("%s%s %s%s" % (label, record["commit"][:12], record["status"],
                           (": " + record["reason"]) if "reason" in record else
                           " (%s, measured in %.0f s)" % (built, bench_seconds)))
        return validate_record(record, self.store.path(record["commit"]), record["commit"])

    def measure(self, sha, force=False, label=""):
        """The record of `sha`: stored, or built and measured now in all rounds back to back."""
        record = None if force else self.stored(sha, label)
        if record is not None:
            return record
        record, binary = self.prepare(sha, label)
        if binary is None:
            return validate_record(record, self.store.path(sha), sha)
        start = time.monotonic()
        runs = [self.measure_round(sha, binary, k, label) for k in range(self.rounds)]
        return self.finish(record, runs, label, time.monotonic() - start)

    def measure_interleaved(self, commits, force):
        """Records of every commit of `commits`: stored ones as they are; the others built first
        (failures stored at once), then measured round by round over all of them. Rounds done
        before an interruption are kept under the cache and reused by the next run."""
        records, pending = {}, []
        for i, sha in enumerate(commits):
            label = "[%d/%d] " % (i + 1, len(commits))
            record = None if force else self.stored(sha, label)
            if record is None:
                record, binary = self.prepare(sha, label)
                if binary is not None:
                    pending.append((label, sha, record, binary, self.load_partial(sha, force, label)))
                    continue
            records[sha] = record
        for round_index in range(self.rounds):
            # The first round in commit order, later ones in a fixed shuffle: a drift of the
            # host over the run then spreads over all commits instead of following their order.
            order = list(pending)
            if round_index > 0:
                random.Random(round_index).shuffle(order)
            for label, sha, record, binary, partial in order:
                if sha in records:
                    continue
                if len(partial["runs"]) <= round_index:
                    start = time.monotonic()
                    partial["runs"].append(self.measure_round(sha, binary, round_index, label))
                    partial["bench_seconds"] += time.monotonic() - start
                    benchstats.write_json_files(self.partial_dir, {sha + ".json": partial})
                if len(partial["runs"]) == self.rounds or isinstance(partial["runs"][-1], str):
                    records[sha] = self.finish(record, partial["runs"], label, partial["bench_seconds"])
        return [records[sha] for sha in commits]

    def load_partial(self, sha, force, label):
        """The rounds of `sha` measured by an interrupted run with the same settings, if any."""
        path = os.path.join(self.partial_dir, sha + ".json")
        fresh = {"settings": self.settings, "runs": [], "bench_seconds": 0.0}
        if force or not os.path.exists(path):
            return fresh
        try:
            partial = benchstats.read_json(path)
            if partial.get("settings") != self.settings or not isinstance(partial.get("runs"), list):
                raise InputError("%s: other settings" % path)
            for run in partial["runs"]:
                benchstats.parse_run(run, path)
            say("%s%s resuming after %d round(s)" % (label, sha[:12], len(partial["runs"])))
            return {"settings": self.settings, "runs": partial["runs"][:self.rounds],
                    "bench_seconds": float(partial.get("bench_seconds", 0.0))}
        except (InputError, AttributeError, TypeError, ValueError) as error:
            notice("ignoring the rounds kept for %s: %s" % (sha[:12], printable(error)))
            return fresh

    def usable(self, sha, role):
        """The Run of `sha` (measuring it if needed); InputError if the commit cannot be measured."""
        record = self.measure(sha, label=role + " ")
        if record["status"] != "ok":
            raise InputError("%s %s cannot be compared: %s (%s)" % (role, sha[:12], record["status"], record["reason"]))
        return record["_run"]

    def fresh_pair(self, old_sha, new_sha):
        """Fresh Runs of both commits' binaries, their rounds alternating (old, new, old, new,
        ...) so that both see the same states of the host. The whole gated set runs, as in the
        first measurement: a kernel's time can depend on what ran before it in the process (the
        engine's bf16 softmax measured 17% apart between 7b37d01 and 01de259 in the full set and
        4% apart when run with the calibration kernel alone)."""
        binaries, runs = [], ([], [])
        for sha in (old_sha, new_sha):
            try:
                binaries.append(self.builder.build(sha))
            except BuildFailed as failure:
                raise InputError("%s no longer builds: %s" % (sha[:12], failure.args[0])) from None
        for round_index in range(self.rounds):
            for side, binary in enumerate(binaries):
                runs[side].append(benchstats.run_benchmarks(binary, GATE_FILTER, self.per_round(round_index),
                                                            self.min_time)[0])
        return [benchstats.parse_run(benchstats.merge_processes(r), sha[:12] + " (fresh)")
                for r, sha in zip(runs, (old_sha, new_sha))]


def print_rows(rows, heading):
    say(heading)
    print("\n".join(benchstats.table(rows)))


# ---------------------------------------------------------------------------------------------
# Commands


def cmd_run(args):
    commits = expand(args.repo, args.revs)
    tracker = Tracker(args)
    say("machine %s; %d commit(s); results in %s; builds in %s (compiler launcher: %s)" % (
        tracker.machine, len(commits), tracker.store.directory, tracker.builder.base,
        tracker.builder.launcher()))
    statuses = {}
    with tracker.builder.locked():
        for record in tracker.measure_interleaved(commits, args.force):
            statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    say("done: " + ", ".join("%d %s" % (n, s) for s, n in statuses.items()))
    if tracker.costs:
        builds = sorted(c[0] for c in tracker.costs)
        benches = sorted(c[1] for c in tracker.costs)
        say("cost per measured commit: build median %.0f s (max %.0f s), benchmarks median %.0f s" % (
            builds[len(builds) // 2], builds[-1], benches[len(benches) // 2]))
    return 0


def cmd_continuous(args):
    base, head = resolve(args.repo, args.base), resolve(args.repo, args.head)
    tracker = Tracker(args)
    with tracker.builder.locked():
        old, new = tracker.usable(base, "BASE"), tracker.usable(head, "HEAD")
        report = benchstats.compare(old, new)
        print_rows(report.rows, "%s -> %s (p < %g and >= %d%% after calibration)" % (
            base[:12], head[:12], benchstats.P_VALUE, 100 * benchstats.MIN_EFFECT))
        for name in report.removed:
            print("  %-42s MISSING at HEAD" % name)
        for name in report.added:
            print("  %-42s new at HEAD (not compared)" % name)
        flagged = {r.name for r in report.rows if r.regressed}
        confirmed = []
        if flagged:
            fresh_old, fresh_new = tracker.fresh_pair(base, head)
            again = benchstats.compare(fresh_old, fresh_new, names=flagged)
            print_rows(again.rows, "fresh runs of both, rounds alternating, on the flagged benchmarks")
            confirmed = [r.name for r in again.rows if r.regressed] + again.removed
    improved = [r.name for r in report.rows if r.improved]
    if improved:
        say("faster: %s" % ", ".join(improved))
    missing = bool(report.removed) and not args.allow_missing
    if report.removed:
        say("%s at HEAD: %s" % ("MISSING" if missing else "missing (allowed)", ", ".join(report.removed)))
    if confirmed:
        say("REGRESSION in %s" % ", ".join(confirmed))
    elif not missing:
        say("no confirmed regression")
    return 1 if confirmed or missing else 0


def cmd_find(args):
    commits = expand(args.repo, args.revs)
    if len(args.revs) == 1 and ".." in args.revs[0]:
        start = args.revs[0].split("..", 1)[0]
        commits.insert(0, resolve(args.repo, start or "HEAD"))
    if len(commits) < 2:
        raise InputError("find needs a range A..B or at least two revisions")
    name = args.benchmark
    tracker = Tracker(args)
    with tracker.builder.locked():
        base_times = benchstats.normalised(tracker.usable(commits[0], "good"))
        if name not in base_times:
            raise InputError("benchmark %s is not among the results of %s: %s" % (
                printable(name), commits[0][:12], ", ".join(sorted(base_times))))
        base_samples = base_times[name]
        samples = {0: base_samples}
        tested = []

        def slower(i, role=""):
            """True/False: is commit i slower than the first one; None if it cannot be measured."""
            record = tracker.measure(commits[i], label=role)
            times = benchstats.normalised(record["_run"]).get(name) if record["status"] == "ok" else None
            if times is None:
                tested.append((i, None, record.get("reason", "%s not measured" % name)))
                return None
            samples[i] = times
            d = benchstats.difference(name, base_samples, times)
            tested.append((i, d, None))
            return d.regressed

        last = len(commits) - 1
        head_slower = slower(last, "bad ")
        if head_slower is None:
            raise InputError("%s cannot be measured: %s" % (commits[last][:12], tested[-1][2]))
        if not head_slower:
            d = tested[-1][1]
            say("%s is not slower at %s than at %s (change %+.1f%%, p = %.2g): nothing to find" % (
                name, commits[last][:12], commits[0][:12], 100 * d.change, d.p))
            return 1
        lo, hi, skipped = 0, last, set()
        while True:
            candidates = [i for i in range(lo + 1, hi) if i not in skipped]
            if not candidates:
                break
            middle = (lo + hi) / 2
            mid = min(candidates, key=lambda i: (abs(i - middle), i))
            verdict = slower(mid, "bisect %d..%d: " % (lo, hi))
            if verdict is None:
                skipped.add(mid)
            elif verdict:
                hi = mid
            else:
                lo = mid
        say("commits tested (change of %s against %s):" % (name, commits[0][:12]))
        for i, d, reason in sorted(tested, key=lambda t: t[0]):
            detail = ("%+7.1f%%  p = %-8.2g %s" % (100 * d.change, d.p, "SLOWER" if d.regressed else "same")
                      if d else "not measured: " + reason)
            print("  %3d  %s  %s" % (i, commits[i][:12], detail))
        between = sorted(i for i in skipped if lo < i < hi)
        stored = benchstats.difference(name, samples[lo], samples[hi])
        fresh_old, fresh_new = tracker.fresh_pair(commits[lo], commits[hi])
        fresh = benchstats.compare(fresh_old, fresh_new, names={name})
        if not fresh.rows:
            raise InputError("%s is missing from a fresh run" % printable(name))
        confirm = fresh.rows[0]
    subject = commit_info(args.repo, commits[hi])["subject"]
    say("boundary %s -> %s: stored %+.1f%% (p = %.2g), fresh re-run %+.1f%% (p = %.2g)" % (
        commits[lo][:12], commits[hi][:12], 100 * stored.change, stored.p, 100 * confirm.change, confirm.p))
    if between:
        say("commits in between that could not be measured: %s" % " ".join(commits[i][:12] for i in between))
    if not confirm.regressed:
        say("NOT CONFIRMED: the fresh run of %s against %s does not show the slowdown" % (
            commits[hi][:12], commits[lo][:12]))
        return 1
    say("first slower commit%s: %s %s" % (" (or one of the unmeasured ones before it)" if between else "",
                                          commits[hi], printable(subject)))
    return 0


def ordered(repo, records):
    """`records` in commit order: topological (oldest first) if the repository knows every
    commit, else by commit time."""
    listed = git(repo, "rev-list", "--topo-order", "--reverse", *[r["commit"] for r in records], check=False)
    position = {sha: i for i, sha in enumerate(listed.split())} if listed else {}
    if all(r["commit"] in position for r in records):
        return sorted(records, key=lambda r: position[r["commit"]])
    notice("some stored commits are not in %s; ordering them by commit time" % printable(repo))
    return sorted(records, key=lambda r: (r["commit_time"], r["commit"]))


def load_machines(results, repo):
    """[(machine, details, records in commit order)] of every machine under `results`."""
    if not os.path.isdir(results):
        raise InputError("%s: no stored results; run `track.py run` first" % printable(results))
    machines = []
    for entry in sorted(os.listdir(results)):
        directory = os.path.join(results, entry)
        if entry.startswith(".") or not os.path.isdir(directory):
            continue
        details = {}
        with contextlib.suppress(InputError):
            machine = benchstats.read_json(os.path.join(directory, "machine.json"))
            if isinstance(machine, dict) and isinstance(machine.get("details"), dict):
                details = machine["details"]
        records = []
        for name in sorted(os.listdir(directory)):
            match = re.fullmatch(r"([0-9a-f]{40})\.json", name)
            if not match:
                continue
            path = os.path.join(directory, name)
            try:
                records.append(validate_record(benchstats.read_json(path), path, match.group(1)))
            except InputError as error:
                notice("skipping %s" % error)
        if records:
            machines.append((entry, details, ordered(repo, records)))
    if not machines:
        raise InputError("%s: no stored results; run `track.py run` first" % printable(results))
    return machines


def cmd_publish(args):
    benchstats.require("matplotlib")  # needed only here
    import track_site
    machines = load_machines(args.results, args.repo)
    out = track_site.publish(machines, args.dir, args.commit_url)
    total = 0
    for directory, _, files in sorted(os.walk(out)):
        for name in sorted(files):
            total += os.path.getsize(os.path.join(directory, name))
    say("published %d machine(s), %d commit(s) into %s (%d files, %.0f kB); open %s" % (
        len(machines), sum(len(m[2]) for m in machines), out, sum(len(f) for _, _, f in os.walk(out)),
        total / 1e3, os.path.join(out, "index.html")))
    return 0


# ---------------------------------------------------------------------------------------------


def positive_int(text):
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("%s is not an integer" % printable(text)) from None
    if value < 1:
        raise argparse.ArgumentTypeError("%s must be at least 1" % value)
    return value


def seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%s is not a number" % printable(text)) from None
    if not (0 < value <= 60):
        raise argparse.ArgumentTypeError("%s must be in (0, 60] seconds" % printable(text))
    return value


def main(argv=None):
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--repo", default=ROOT, help="git repository to track (default: this checkout)")
    common.add_argument("--results", default=os.path.join(ROOT, "results", "track"),
                        help="where results are stored, per machine and commit (default: results/track "
                             "in this checkout, ignored by git)")
    measure = argparse.ArgumentParser(add_help=False)
    measure.add_argument("--cache", default=os.path.join(cache_home, "iclbench", "track"),
                         help="worktree, build directory and binaries (default: %(default)s)")
    measure.add_argument("--repetitions", type=positive_int, default=9,
                         help="repetitions per benchmark and commit, over all rounds (>= %d; default %%(default)s)"
                              % benchstats.MIN_REPETITIONS)
    measure.add_argument("--rounds", type=positive_int, default=9,
                         help="processes that share a commit's repetitions; `run` interleaves them over its "
                              "commits (default %(default)s: one repetition per process)")
    measure.add_argument("--min-time", type=seconds, default=0.05, help="seconds per repetition (default %(default)s)")
    measure.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1, help="parallel compile jobs")
    measure.add_argument("--no-ccache", action="store_true", help="do not use ccache even if it is installed")

    parser = argparse.ArgumentParser(prog="track.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser("run", parents=[common, measure], help="build and measure commits",
                            description="Build and measure each commit of REV... (A..B ranges: B's first-parent "
                                        "line after A, oldest first; or single revisions) and store the results. "
                                        "Stored commits are skipped unless --force.")
    p.add_argument("revs", nargs="+", metavar="REV")
    p.add_argument("--force", action="store_true", help="measure stored commits again")
    p.set_defaults(function=cmd_run)
    p = commands.add_parser("continuous", parents=[common, measure], help="compare two commits",
                            description="Compare HEAD with BASE (measuring either if not stored) with the gate's "
                                        "statistics; flagged benchmarks are run again for both commits. Exit 1 on "
                                        "a confirmed regression or a benchmark of BASE missing at HEAD, 2 if either "
                                        "commit cannot be measured.")
    p.add_argument("base", metavar="BASE")
    p.add_argument("head", metavar="HEAD")
    p.add_argument("--allow-missing", action="store_true", help="a benchmark of BASE missing at HEAD is not a failure")
    p.set_defaults(function=cmd_continuous)
    p = commands.add_parser("find", parents=[common, measure], help="bisect the commit that made a benchmark slower",
                            description="Bisect the first commit at which BENCHMARK became slower than at the first "
                                        "commit: REV... is a range A..B (A is the good end) or a list of revisions "
                                        "oldest first. Commits are measured only as the bisection needs them "
                                        "(stored results are used); ones that cannot be measured are skipped. The "
                                        "boundary is confirmed by running both of its commits again.")
    p.add_argument("revs", nargs="+", metavar="REV")
    p.add_argument("benchmark", metavar="BENCHMARK", help="e.g. softmax/iclbench_f32")
    p.set_defaults(function=cmd_find)
    p = commands.add_parser("publish", parents=[common], help="write the HTML dashboard",
                            description="Write a static HTML site of every stored result into DIR: a summary page "
                                        "of the latest regressions and improvements per machine, and per benchmark "
                                        "the normalised time against commit order with intervals and change "
                                        "points. DIR must be absent, empty, or a site written by this command (it "
                                        "is then replaced as a whole).")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--commit-url", help="link commits to e.g. https://example.org/iclbench/commit/{sha}")
    p.set_defaults(function=cmd_publish)
    args = parser.parse_args(argv)
    if getattr(args, "repetitions", benchstats.MIN_REPETITIONS) < benchstats.MIN_REPETITIONS:
        parser.error("--repetitions must be >= %d for the U test to mean anything" % benchstats.MIN_REPETITIONS)
    for key in ("results", "cache", "dir", "repo"):
        if getattr(args, key, None) == "":
            parser.error("--%s must not be empty" % key)
    try:
        if not shutil.which("git"):
            raise InputError("git not found on PATH (bash scripts/setup.sh installs it)")
        return args.function(args)
    except (InputError, RunError) as error:
        print("track: %s" % error, file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # SIGINT, SIGTERM, SIGHUP: the child is killed, temp removed
        return benchstats.interrupted_exit_code(interrupt)


if __name__ == "__main__":
    benchstats.terminate_like_interrupt()
    benchstats.quiet_on_broken_pipe()
    sys.exit(main())

#!/usr/bin/python3
"""End-to-end tests of bench/track.py on a synthetic git history.

  track_test.py setup WORKDIR       make the history, `run` every commit (statuses, resume, Ctrl-C)
  track_test.py find WORKDIR        `find` names the planted commit, measuring only what it needs
  track_test.py continuous WORKDIR  exit codes 0 / 1 / 2 of `continuous`
  track_test.py publish WORKDIR     `publish` writes the site; change points where they were planted

The history is a tiny CMake project with the layout track.py builds (bench/kernels_bench.cpp,
target kernels_bench, binary in build/bin), a real Google Benchmark binary whose three
"kernels" are the same busy loop of multiply-adds run a fixed number of rounds:
calibration/gemm_f32_256 (the calibration kernel's name), softmax/iclbench_f32 and
layer_norm/onednn_f32 (names inside the gate's filter). Building it takes seconds, where
building iclbench at every commit would take minutes; everything track.py does to it (worktree,
incremental build, binary cache, Google Benchmark JSON, statistics, bisection) is the same.

  c0  README only                          -> no-benchmarks (predates bench/kernels_bench.cpp)
  c1  the benchmark                         -> ok
  c2  README                                -> ok
  c3  README                                -> ok
  c4  a syntax error in the work constants  -> build-failed
  c5  fixed                                 -> ok
  c6  PLANTED: softmax runs 40% more rounds -> ok, slower
  c7  README (a subject holding <script>)  -> ok
  c8  README                                -> ok

40%: far enough above the gate's 10% minimum effect that a busy shared host (the calibration
kernel divides its drift out) cannot hide it, small enough to be a realistic regression.
The same stages serve ctest: setup is a fixture the others require.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TRACK = os.path.join(HERE, "..", "..", "bench", "track.py")
PYTHON = "/usr/bin/python3"
PLANTED = 6
BROKEN = 4
# A commit subject the dashboard must show as text, never as markup or mathtext.
HOSTILE_SUBJECT = "c7 readme <script>alert(1)</script> & $x$"
# Short repetitions keep the test fast. 15 of them, one per process, not the 9 the statistics
# accept at least: each process divides by its own calibration run, and under CI's load (a
# neighbour's build on both vCPUs) a stalled calibration or benchmark run made two or three of 9
# samples overlap, so that the planted 40% came out at p = 0.01 or 0.042, not below the gate's
# 0.01, and `find`/`continuous` ended NOT CONFIRMED. With 15 the same overlap gives p < 0.001.
ROUNDS = 15  # one repetition per process
MEASURE = ["--repetitions", "15", "--rounds", str(ROUNDS), "--min-time", "0.02", "--jobs", "2"]

CMAKELISTS = """cmake_minimum_required(VERSION 3.16)
project(synthetic_history CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
find_package(benchmark REQUIRED)
add_executable(kernels_bench bench/kernels_bench.cpp)
target_link_libraries(kernels_bench PRIVATE benchmark::benchmark)
"""

BENCH = """#include <benchmark/benchmark.h>

#include <cstdint>

#include "work.hpp"

// A chain of dependent multiply-adds: its time is proportional to `rounds` on any host.
static void spin(benchmark::State& state, std::int64_t rounds) {
  for (auto _ : state) {
    std::uint64_t x = 1;
    for (std::int64_t i = 0; i < rounds; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      benchmark::DoNotOptimize(x);
    }
  }
}

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("calibration/gemm_f32_256", spin, kCalibrationRounds);
  benchmark::RegisterBenchmark("softmax/iclbench_f32", spin, kSoftmaxRounds);
  benchmark::RegisterBenchmark("layer_norm/onednn_f32", spin, kLayerNormRounds);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
"""

WORK = """#pragma once
#include <cstdint>
constexpr std::int64_t kCalibrationRounds = 20000;
constexpr std::int64_t kSoftmaxRounds = %s;
constexpr std::int64_t kLayerNormRounds = 15000;
"""


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org", GIT_CONFIG_NOSYSTEM="1", HOME=os.path.dirname(repo))
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True, env=env).stdout


def make_history(repo):
    """Creates the synthetic repository; returns its commits c0..c8, oldest first."""
    os.makedirs(os.path.join(repo, "bench"))
    git(repo, "init", "-q", "-b", "main")
    commits = []

    def commit(message, files):
        for path, text in files.items():
            with open(os.path.join(repo, path), "w") as f:
                f.write(text)
        git(repo, "add", "-A")
        # Distinct commit times, one minute apart, so that order never depends on timing.
        stamp = "2026-01-01T00:%02d:00Z" % len(commits)
        git(repo, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", message, "--date", stamp)
        commits.append(git(repo, "rev-parse", "HEAD").strip())

    commit("c0 readme", {"README": "synthetic history\n"})
    commit("c1 the benchmark", {"CMakeLists.txt": CMAKELISTS, "bench/kernels_bench.cpp": BENCH,
                                "bench/work.hpp": WORK % "20000"})
    commit("c2 readme", {"README": "synthetic history, 2\n"})
    commit("c3 readme", {"README": "synthetic history, 3\n"})
    commit("c4 broken", {"bench/work.hpp": WORK % "20000 +"})
    commit("c5 fixed", {"bench/work.hpp": WORK % "20000"})
    commit("c6 planted slowdown", {"bench/work.hpp": WORK % "28000"})
    commit(HOSTILE_SUBJECT, {"README": "synthetic history, 7\n"})
    commit("c8 readme", {"README": "synthetic history, 8\n"})
    return commits


def paths(workdir):
    return {"repo": os.path.join(workdir, "repo"), "results": os.path.join(workdir, "results"),
            "cache": os.path.join(workdir, "cache"), "commits": os.path.join(workdir, "commits.json")}


def track(workdir, *args, results=None, check_exit=None):
    p = paths(workdir)
    command = [PYTHON, TRACK, args[0], "--repo", p["repo"], "--results", results or p["results"]]
    if args[0] != "publish":
        command += ["--cache", p["cache"], *MEASURE]
    command += args[1:]
    start = time.monotonic()
    process = subprocess.run(command, capture_output=True, text=True)
    print("$ track.py %s  -> exit %d in %.0f s" % (" ".join(args), process.returncode, time.monotonic() - start))
    print(process.stdout + process.stderr)
    if check_exit is not None:
        check(process.returncode == check_exit, "expected exit %d" % check_exit)
    return process


def stored(results, sha):
    directories = [d for d in os.listdir(results) if os.path.isdir(os.path.join(results, d))]
    check(len(directories) == 1, "one machine directory expected in %s: %s" % (results, directories))
    path = os.path.join(results, directories[0], sha + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def stage_setup(workdir):
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    p = paths(workdir)
    commits = make_history(p["repo"])
    with open(p["commits"], "w") as f:
        json.dump(commits, f)

    # Ctrl-C in the last round (the rounds interleaved over c1, c2, c3), right after the first
    # commit is stored: exit 130, that commit stored, the others not, nothing half-written; the
    # next run resumes the others from the rounds they had, all but the last.
    command = [PYTHON, TRACK, "run", "--repo", p["repo"], "--results", p["results"], "--cache", p["cache"],
               *MEASURE, *commits[1:4]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    seen, first = [], None
    for line in process.stdout:
        seen.append(line)
        match = re.search(r"\] ([0-9a-f]{12}) ok \(", line)
        if match:
            first = match.group(1)
            os.killpg(process.pid, signal.SIGINT)
            break
    rest = process.communicate(timeout=300)[0]
    print("".join(seen) + rest)
    check(process.returncode == 130, "Ctrl-C: exit %s, expected 130" % process.returncode)
    done = [sha for sha in commits[1:4] if sha.startswith(first or "-")]
    others = [sha for sha in commits[1:4] if sha not in done]
    check(len(done) == 1 and stored(p["results"], done[0]) is not None, "Ctrl-C: the finished commit was not stored")
    check(all(stored(p["results"], sha) is None for sha in others), "Ctrl-C: an unfinished commit was stored")
    leftovers = [n for _, _, files in os.walk(workdir) for n in files if ".tmp." in n]
    check(not leftovers, "Ctrl-C left temporary files: %s" % leftovers)

    # The whole history: the range c0..c8 excludes c0, so c0 is named on its own.
    out = track(workdir, "run", commits[0], "%s..%s" % (commits[0], commits[-1]), check_exit=0).stdout
    check(re.search(r"\] %s stored \(ok\)" % done[0][:12], out), "the finished commit was not taken from the store")
    for sha in others:
        check(re.search(r"%s resuming after %d round\(s\)" % (sha[:12], ROUNDS - 1), out),
              "%s did not resume its rounds" % sha[:12])
        check(re.findall(r"%s round (\d+)/" % sha[:12], out) == [str(ROUNDS)],
              "%s measured more than its last round again" % sha[:12])
    expected = {0: "no-benchmarks", BROKEN: "build-failed"}
    for i, sha in enumerate(commits):
        record = stored(p["results"], sha)
        check(record is not None, "c%d not stored" % i)
        check(record["status"] == expected.get(i, "ok"), "c%d: status %s, expected %s"
              % (i, record["status"], expected.get(i, "ok")))
        if record["status"] == "ok":
            names = {b["name"] for b in record["google_benchmark"]["benchmarks"] if b.get("run_type") == "iteration"}
            check(names == {"calibration/gemm_f32_256", "softmax/iclbench_f32", "layer_norm/onednn_f32"},
                  "c%d: benchmarks %s" % (i, sorted(names)))
    check("predates" in stored(p["results"], commits[0])["reason"], "c0's reason does not say it predates")
    check("syntax" in stored(p["results"], commits[BROKEN])["log_tail"] or
          "error" in stored(p["results"], commits[BROKEN])["log_tail"], "c4's log tail has no compiler error")

    # Resume: nothing is measured again, no file is rewritten.
    before = {n: os.stat(os.path.join(d, n)).st_mtime_ns for d, _, files in os.walk(p["results"]) for n in files}
    out = track(workdir, "run", "%s..%s" % (commits[0], commits[-1]), check_exit=0).stdout
    check("building" not in out and "round" not in out and out.count(" stored (") == 8, "a second run measured again")
    after = {n: os.stat(os.path.join(d, n)).st_mtime_ns for d, _, files in os.walk(p["results"]) for n in files}
    check(before == after, "a second run rewrote stored files")

    # A stored file that does not validate is measured again, with a notice.
    victim = os.path.join(p["results"], os.listdir(p["results"])[0], commits[2] + ".json")
    with open(victim, "w") as f:
        f.write('{"format": "iclbench-track-result", "format_version": 1, "commit": "%s"' % commits[2])
    process = track(workdir, "run", commits[2], check_exit=0)
    check("unusable" in process.stderr and stored(p["results"], commits[2])["status"] == "ok",
          "a truncated stored file was not measured again")
    # Bad input: one line on stderr, exit 2.
    for revs in (["no-such-revision"], ["--", "-n1"], ["%s...%s" % (commits[1], commits[2])],
                 ["%s..%s" % (commits[2], commits[2])]):
        process = track(workdir, "run", *revs)
        check(process.returncode == 2 and len(process.stderr.strip().splitlines()) == 1,
              "run %s: exit %d, expected 2 with one line" % (revs, process.returncode))
    print("PASS setup")


def load_commits(workdir):
    with open(paths(workdir)["commits"]) as f:
        return json.load(f)


def stage_find(workdir):
    commits = load_commits(workdir)
    fresh = os.path.join(workdir, "find-results")
    shutil.rmtree(fresh, ignore_errors=True)
    # Nothing stored: find measures only the commits the bisection visits (binaries are kept
    # in the cache, so this measures without rebuilding).
    process = track(workdir, "find", "%s..%s" % (commits[1], commits[-1]), "softmax/iclbench_f32",
                    results=fresh, check_exit=0)
    last = process.stdout.strip().splitlines()[-1]
    check(last.startswith("track: first slower commit: %s" % commits[PLANTED]),
          "find named %r, expected c%d %s" % (last, PLANTED, commits[PLANTED]))
    measured = [n[:-5] for d, _, files in os.walk(fresh) for n in files if re.fullmatch(r"[0-9a-f]{40}\.json", n)]
    check(len(measured) < len(commits) - 1, "find measured %d of %d commits" % (len(measured), len(commits) - 1))
    check(commits[BROKEN] not in measured or stored(fresh, commits[BROKEN])["status"] == "build-failed",
          "the broken commit was not recorded as such")
    # With every commit stored it names the same one, and in list form too.
    process = track(workdir, "find", *commits[1:], "softmax/iclbench_f32", check_exit=0)
    check(commits[PLANTED] in process.stdout.strip().splitlines()[-1], "find over a list missed the planted commit")
    # A benchmark that did not change: nothing to find, exit 1.
    track(workdir, "find", "%s..%s" % (commits[1], commits[-1]), "layer_norm/onednn_f32", check_exit=1)
    # Unknown benchmark, and a good end that cannot be measured: exit 2.
    process = track(workdir, "find", "%s..%s" % (commits[1], commits[-1]), "softmax/renamed", check_exit=2)
    check("softmax/iclbench_f32" in process.stderr, "the known benchmarks are not listed")
    track(workdir, "find", "%s..%s" % (commits[0], commits[-1]), "softmax/iclbench_f32", check_exit=2)
    print("PASS find")


def stage_continuous(workdir):
    commits = load_commits(workdir)
    process = track(workdir, "continuous", commits[PLANTED - 1], commits[PLANTED], check_exit=1)
    check("REGRESSION in softmax/iclbench_f32" in process.stdout, "the planted regression was not reported")
    check("layer_norm/onednn_f32" not in process.stdout.split("REGRESSION")[-1], "layer_norm reported as regressed")
    process = track(workdir, "continuous", commits[PLANTED], commits[PLANTED - 1], check_exit=0)
    check("faster: softmax/iclbench_f32" in process.stdout, "the reverse comparison does not report it faster")
    track(workdir, "continuous", commits[1], commits[3], check_exit=0)
    process = track(workdir, "continuous", commits[3], commits[BROKEN], check_exit=2)
    check("build-failed" in process.stderr, "the unusable commit's status is not named")
    track(workdir, "continuous", commits[0], commits[1], check_exit=2)
    print("PASS continuous")


def stage_publish(workdir):
    commits = load_commits(workdir)
    site = os.path.join(workdir, "site")
    shutil.rmtree(site, ignore_errors=True)
    track(workdir, "publish", site, check_exit=0)
    machine = [d for d in os.listdir(site) if os.path.isdir(os.path.join(site, d))]
    check(len(machine) == 1, "one machine directory expected: %s" % machine)
    pages = os.listdir(os.path.join(site, machine[0]))
    softmax = [n for n in pages if n.startswith("softmax_iclbench_f32")]
    layer_norm = [n for n in pages if n.startswith("layer_norm_onednn_f32")]
    check(len(softmax) == 1 and len(layer_norm) == 1 and "commits.html" in pages, "pages: %s" % pages)
    with open(os.path.join(site, machine[0], softmax[0])) as f:
        text = f.read()
    links = set(re.findall(r'href="commits\.html#([0-9a-f]{40})"', text.split("<h2>Change points")[1].split("<h2>")[0]))
    check(links == {commits[PLANTED]}, "softmax change points link to %s, expected only c%d" % (links, PLANTED))
    with open(os.path.join(site, machine[0], layer_norm[0])) as f:
        check("No change point." in f.read(), "layer_norm has a change point")
    with open(os.path.join(site, "index.html")) as f:
        index = f.read()
    latest = index.split("Latest regressions and improvements")[1].split("<h3>")[0]
    check(commits[PLANTED][:12] in latest and "softmax/iclbench_f32" in latest and "layer_norm" not in latest,
          "the summary's latest changes are not the planted one")
    with open(os.path.join(site, machine[0], "commits.html")) as f:
        text = f.read()
    check("<script" not in text and "c7 readme &lt;script&gt;alert(1)&lt;/script&gt; &amp; $x$" in text,
          "the hostile commit subject is not escaped")
    # Publishing again replaces the site; a directory that is not a site is refused.
    track(workdir, "publish", site, check_exit=0)
    other = os.path.join(workdir, "not-a-site")
    os.makedirs(other, exist_ok=True)
    with open(os.path.join(other, "mine.txt"), "w") as f:
        f.write("keep me\n")
    track(workdir, "publish", other, check_exit=2)
    check(os.listdir(other) == ["mine.txt"], "publish touched a directory that is not a site")
    print("PASS publish")


if __name__ == "__main__":
    stages = {"setup": stage_setup, "find": stage_find, "continuous": stage_continuous, "publish": stage_publish}
    if len(sys.argv) != 3 or sys.argv[1] not in stages:
        print("usage: track_test.py %s WORKDIR" % "|".join(stages))
        sys.exit(2)
    stages[sys.argv[1]](os.path.abspath(sys.argv[2]))

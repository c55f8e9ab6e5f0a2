#!/usr/bin/python3
"""bench/gate.py on Google Benchmark JSON it did not write (issue 15, item 13).

  gate_input_test.py BUILD_DIR WORKDIR

Each case writes a baseline and a new run (tests/python/gb_json.py) and runs
`gate.py compare BASELINE NEW`: the first step of `gate.py check` on two files. Cases:
  renamed      a benchmark renamed and 30% slower: exit 1, the old name listed as missing, the
               new one as new (before: the row was dropped and the gate passed);
               with --allow-missing: exit 0, both still listed
  added        (sibling) a new benchmark only: exit 0, listed as new
  units        the new run in us (before: every row dropped) and one with the calibration kernel
               in another unit than the rest (before: every benchmark "regressed"): exit 0
  units+slow   a 30% slowdown in a run written in ms: exit 1, only that benchmark
  unusable     exit 2 and exactly one line on stderr, for every way a file can be unusable,
               including a FIFO (which must not block), a repetition_index twice (counted as
               10 samples before), a name holding a newline, a time
               written as a 400-digit integer (OverflowError before) and lists nested 100000
               deep (RecursionError before)
  closed stdout  `gate.py compare A B | head`-like: ended by SIGPIPE, nothing on stderr (a
               BrokenPipeError traceback before)
  check        `gate.py check --baseline <unusable>` exits 2 on the baseline before it runs
               any benchmark, and appends nothing to the history
  slowdown     kernels_bench's ICLBENCH_BENCH_SLOWDOWN: malformed, or naming no benchmark of the
               run (unknown or filtered out): one line, exit 2 at start-up
  no run_type  aggregates told by aggregate_name (before: listed as new benchmarks)
  arguments    flags after the subcommand; every argument error one line and exit 2, including a
               flag the subcommand does not take, an empty path and a non-finite number
  signals      SIGTERM, SIGHUP and SIGINT to `gate.py record` while its benchmark runs (a stub
               build directory whose kernels_bench sleeps): exit 128 + signal, the benchmark
               process killed, no iclbench-bench-* temporary directory left (before, SIGTERM
               left the benchmark running with parent 1 and its out.json behind)
"""
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GATE = os.path.join(HERE, "..", "..", "bench", "gate.py")
PYTHON = "/usr/bin/python3"
sys.path.insert(0, HERE)
from gb_json import GATED, run_json, write  # noqa: E402

failures = []


def gate(*args, timeout=60):
    process = subprocess.run([PYTHON, GATE, *args], capture_output=True, text=True, timeout=timeout)
    return process.returncode, process.stdout, process.stderr


def expect(case, condition, detail):
    print("%-28s %s" % (case, "ok" if condition else "FAILED: " + detail))
    if not condition:
        failures.append(case)


def rows(stdout):
    """{benchmark: verdict} of the table gate.py printed."""
    table = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[-1] in ("ok", "REGRESSED", "improved"):
            table[parts[0]] = parts[-1]
    return table


STUB_ICLBENCH = """#!/usr/bin/python3
import json
print(json.dumps({"cpu_model": "stub", "logical_cpus": 1, "onednn_isa": "none", "onednn_version": "0",
                  "tbb_version": "0", "compiler": "none", "git_revision": "0"}))
"""
# Writes its pid where the test looks for it, then sleeps: a benchmark that has not finished.
STUB_BENCH = """#!/usr/bin/python3
import os, time
with open(os.environ["GATE_TEST_PID"], "w") as f:
    f.write(str(os.getpid()))
time.sleep(120)
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def signals(work):
    build = os.path.join(work, "stub_build")
    os.makedirs(os.path.join(build, "bin"), exist_ok=True)
    for name, text in (("iclbench", STUB_ICLBENCH), ("kernels_bench", STUB_BENCH), ("forward_bench", STUB_BENCH)):
        path = os.path.join(build, "bin", name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, stat.S_IRWXU)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        case = "signals: %s" % signal.Signals(signum).name
        temp = tempfile.mkdtemp(dir=work, prefix="signal_tmp_")
        pid_file = os.path.join(temp, "pid")
        env = dict(os.environ, TMPDIR=temp, GATE_TEST_PID=pid_file)
        # The stub's results would be recorded under results/baselines/stub-*; it never finishes.
        process = subprocess.Popen([PYTHON, GATE, "record", "--build", build], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(pid_file) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        time.sleep(0.2)  # the pid written, not yet read
        try:
            child = int(open(pid_file).read())
        except (OSError, ValueError):
            process.kill()
            out, err = process.communicate()
            expect(case, False, "the stub benchmark never started: %s%s" % (out, err))
            continue
        process.send_signal(signum)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            expect(case, False, "gate.py did not end")
            continue
        time.sleep(0.2)
        left = [n for n in os.listdir(temp) if n.startswith("iclbench-bench-")]
        orphan = alive(child)
        if orphan:
            os.kill(child, signal.SIGKILL)
        expect(case, process.returncode == 128 + signum and not orphan and not left and "Traceback" not in err,
               "exit %d, benchmark %s, left %s, stderr %r" % (process.returncode, "still running" if orphan
                                                              else "ended", left, err))


def slowdown_switch(build):
    """kernels_bench's ICLBENCH_BENCH_SLOWDOWN: every malformed value, and a name that selects no
    benchmark of the run, is one line and exit 2 at start-up (before: stod's abort, exit 134, or
    silently nothing slowed, so the gate's self-test passed without a slowdown). Only plain
    decimals are numbers here (strtod once took a hex fraction, an exponent and a sign)."""
    binary = os.path.join(build, "bin", "kernels_bench")
    target = "softmax/iclbench_f32"
    cases = [(target + ":", None), ("foo", None), (target + ":nan", None), (target + ":-1", None),
             (target + ":0", None), (target + ":inf", None), (target + ":11", None), (target + ":0.3x", None),
             (target + ":0x1p-1", None), (target + ":3e-1", None), (target + ":+0.3", None),
             (target + ":0.3.1", None), (target + ":.", None),
             (":0.3", None), ("no_such_benchmark:0.3", None), (target + ":0.3", "^calibration/"),
             (target + ":0.3", "-softmax")]
    for value, bench_filter in cases:
        command = [binary, "--benchmark_list_tests=true"] + (["--benchmark_filter=" + bench_filter]
                                                            if bench_filter else [])
        process = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                 env=dict(os.environ, ICLBENCH_BENCH_SLOWDOWN=value))
        lines = process.stderr.strip().splitlines()
        expect("slowdown %r%s" % (value, " filter " + bench_filter if bench_filter else ""),
               process.returncode == 2 and len(lines) == 1 and "ICLBENCH_BENCH_SLOWDOWN" in lines[0],
               "exit %d, stderr %r" % (process.returncode, process.stderr))
    for value in (target + ":0.3", ""):  # usable, and set but empty (off)
        process = subprocess.run([binary, "--benchmark_list_tests=true", "--benchmark_filter=" + target],
                                 capture_output=True, text=True, timeout=120,
                                 env=dict(os.environ, ICLBENCH_BENCH_SLOWDOWN=value))
        expect("slowdown %r" % value, process.returncode == 0 and target in process.stdout and not process.stderr,
               "exit %d, stderr %r" % (process.returncode, process.stderr))


def main():
    build, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    base = write(os.path.join(work, "base.json"), run_json(GATED, seed=1))

    # Renamed and 30% slower.
    renamed = dict(GATED)
    renamed["softmax/iclbench_f32_v2"] = renamed.pop("softmax/iclbench_f32") * 1.3
    new = write(os.path.join(work, "renamed.json"), run_json(renamed, seed=2))
    code, out, err = gate("compare", base, new)
    expect("renamed", code == 1 and "MISSING softmax/iclbench_f32 " in out and
           "softmax/iclbench_f32_v2" in out and "new (not in the baseline" in out,
           "exit %d\n%s%s" % (code, out, err))
    code, out, err = gate("compare", base, new, "--allow-missing")
    expect("renamed --allow-missing", code == 0 and "softmax/iclbench_f32" in out and
           "softmax/iclbench_f32_v2" in out and "allowed by --allow-missing" in out, "exit %d\n%s%s" % (code, out, err))

    # Flags after the subcommand and before its files (before: "unrecognized arguments: NEW").
    code, out, err = gate("compare", "--allow-missing", base, new)
    expect("compare --allow-missing OLD NEW", code == 0 and "allowed by --allow-missing" in out,
           "exit %d\n%s%s" % (code, out, err))
    # Every argument error is one line and exit 2 (before: the usage and the error, 5 lines), and
    # nothing runs: flags that mean nothing to the subcommand, empty paths, non-finite numbers.
    for arguments in (["compare", "--min-time", "nan", base, new], ["compare", "--repetitions", "3", base, new],
                      ["compare", base], ["compare", base, new, "--baseline", base], ["bogus"], [],
                      ["check", "--baseline", ""], ["check", "--build", ""], ["check", "--history", ""],
                      ["check", "--min-time", "nan"], ["check", "--min-time", "inf"], ["check", "--min-time", "0"],
                      ["check", "--repetitions", "3"], ["record", "--repetitions", "x"],
                      ["record", "--baseline", base], ["record", "--allow-missing"]):
        code, out, err = gate(*arguments)
        lines = err.strip().splitlines()
        expect("arguments %s" % " ".join(os.path.basename(a) for a in arguments)[:60],
               code == 2 and len(lines) == 1 and lines[0].startswith("gate: ") and not out,
               "exit %d, stdout %r, stderr %r" % (code, out, err))

    # Without run_type (another writer): the aggregates, named by aggregate_name, are not benchmarks.
    plain = run_json(GATED, seed=7)
    for entry in plain["benchmarks"]:
        entry.pop("run_type")
    code, out, err = gate("compare", base, write(os.path.join(work, "no_run_type.json"), plain))
    expect("no run_type", code == 0 and "new (not in" not in out and set(rows(out)) == set(GATED) - {
        "calibration/gemm_f32_256"}, "exit %d\n%s%s" % (code, out, err))

    # Sibling: a benchmark added, none removed.
    added = dict(GATED, **{"attention/av_mix/onednn_f32": 20e-6})
    code, out, err = gate("compare", base, write(os.path.join(work, "added.json"), run_json(added, seed=3)))
    expect("added", code == 0 and "attention/av_mix/onednn_f32" in out and "MISSING" not in out,
           "exit %d\n%s%s" % (code, out, err))

    # Units: the same times written in us, and a calibration kernel in another unit than the rest.
    compared = set(GATED) - {"calibration/gemm_f32_256"}
    for case, units in (("units: all us", {n: "us" for n in GATED}),
                        ("units: calibration in us", {"calibration/gemm_f32_256": "us"}),
                        ("units: kernels in s", {n: "s" for n in compared})):
        path = write(os.path.join(work, case.replace(" ", "_").replace(":", "") + ".json"),
                     run_json(GATED, seed=4, units=units))
        code, out, err = gate("compare", base, path)
        table = rows(out)
        expect(case, code == 0 and set(table) == compared and set(table.values()) == {"ok"},
               "exit %d, rows %s\n%s%s" % (code, table, out, err))

    slower = dict(GATED, **{"softmax/iclbench_f32": GATED["softmax/iclbench_f32"] * 1.3})
    path = write(os.path.join(work, "slow_ms.json"), run_json(slower, seed=5, units={n: "ms" for n in GATED}))
    code, out, err = gate("compare", base, path)
    table = rows(out)
    expect("units+slow", code == 1 and table.get("softmax/iclbench_f32") == "REGRESSED" and
           sum(v == "REGRESSED" for v in table.values()) == 1, "exit %d, rows %s\n%s" % (code, table, out))

    # Unusable inputs: exit 2, one line.
    good = run_json(GATED, seed=6)
    unusable = {}

    def variant(name, change):
        data = run_json(GATED, seed=6)
        change(data)
        unusable[name] = write(os.path.join(work, "bad_" + name + ".json"), data)

    for name, text in (("not_json", b"kernels.json\n"), ("truncated", open(base, "rb").read()[:500]),
                       ("empty", b""), ("not_utf8", b'{"benchmarks": "\xff"}'), ("list", b"[1, 2]")):
        unusable[name] = os.path.join(work, "bad_" + name + ".json")
        with open(unusable[name], "wb") as f:
            f.write(text)
    variant("benchmarks_not_list", lambda d: d.update(benchmarks=3))
    variant("aggregates_only", lambda d: d.update(benchmarks=[b for b in d["benchmarks"]
                                                               if b["run_type"] == "aggregate"]))
    variant("error_occurred", lambda d: d["benchmarks"][12].update(error_occurred=True, error_message="oom"))
    variant("unknown_unit", lambda d: d["benchmarks"][12].update(time_unit="fortnights"))
    variant("nan_time", lambda d: d["benchmarks"][12].update(cpu_time=float("nan")))
    variant("negative_time", lambda d: d["benchmarks"][12].update(cpu_time=-1.0))
    variant("huge_int_time", lambda d: d["benchmarks"][12].update(cpu_time=10 ** 400))
    variant("string_time", lambda d: d["benchmarks"][12].update(cpu_time="12"))
    variant("repetition_twice", lambda d: d["benchmarks"].insert(13, dict(d["benchmarks"][12])))
    # Written as 1.0 or "1" a repetition number dodged the duplicate check; a real_time of 400
    # digits (inf) passed while only cpu_time was checked.
    for name, value in (("float_repetition", 1.0), ("string_repetition", "1"), ("negative_repetition", -1)):
        variant(name, lambda d, value=value: d["benchmarks"][12].update(repetition_index=value))
    variant("huge_int_real_time", lambda d: d["benchmarks"][12].update(real_time=10 ** 400))
    variant("no_name", lambda d: d["benchmarks"][12].pop("name"))
    variant("newline_name", lambda d: d["benchmarks"][12].update(name="soft\nmax", error_occurred=True))
    variant("no_calibration", lambda d: d.update(benchmarks=[b for b in d["benchmarks"]
                                                              if not b["name"].startswith("calibration/")]))
    unusable["deep"] = os.path.join(work, "bad_deep.json")
    with open(unusable["deep"], "wb") as f:
        f.write(b'{"benchmarks": ' + b"[" * 100000 + b"]" * 100000 + b"}")
    few = run_json(GATED, seed=6, repetitions=3)
    unusable["three_repetitions"] = write(os.path.join(work, "bad_three_repetitions.json"), few)
    unusable["directory"] = work
    unusable["missing"] = os.path.join(work, "does-not-exist.json")
    fifo = os.path.join(work, "fifo.json")
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    unusable["fifo"] = fifo
    good_path = write(os.path.join(work, "good.json"), good)
    for name, path in unusable.items():
        for order in ((path, good_path), (good_path, path)):
            try:
                code, out, err = gate("compare", *order, timeout=30)
            except subprocess.TimeoutExpired:
                expect("unusable " + name, False, "blocked")
                continue
            lines = err.strip().splitlines()
            expect("unusable %s (%s)" % (name, "base" if order[0] == path else "new"),
                   code == 2 and len(lines) == 1 and lines[0].startswith("gate: ") and "Traceback" not in err,
                   "exit %d, stderr %r" % (code, err))

    # check: an unusable baseline stops the gate before any benchmark runs.
    history = os.path.join(work, "history.jsonl")
    for path in (unusable["truncated"], unusable["no_calibration"]):
        code, out, err = gate("check", "--build", build, "--baseline", path, "--history", history, timeout=120)
        expect("check with " + os.path.basename(path),
               code == 2 and err.startswith("gate: " + path) and len(err.strip().splitlines()) == 1 and
               not os.path.exists(history), "exit %d, stderr %r" % (code, err))

    # A reader that closed the pipe (`| head`): ended by SIGPIPE like cat, no traceback.
    read_end, write_end = os.pipe()
    os.close(read_end)
    process = subprocess.run([PYTHON, GATE, "compare", base, base], stdout=write_end, stderr=subprocess.PIPE,
                             text=True, timeout=60)
    os.close(write_end)
    expect("closed stdout", process.returncode == -signal.SIGPIPE and not process.stderr,
           "exit %d, stderr %r" % (process.returncode, process.stderr))

    signals(work)
    slowdown_switch(build)

    if failures:
        print("FAILED: %d case(s): %s" % (len(failures), ", ".join(failures)))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

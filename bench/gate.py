#!/usr/bin/python3
"""Regression gate for the kernel benchmarks.

  gate.py record [--binary B]          run the gate set, store it as the baseline of this machine
  gate.py check  [--binary B]          run it again and compare; exit 1 on a confirmed regression

The gate set is kernels_bench's single-threaded oneDNN kernels, the engine's own kernels (softmax,
fused attention on the icl and causal masks, the GELU pass alone and after the MLP's up projection;
f32 and bf16 where they have both) and a calibration GEMM, with
--benchmark_repetitions (>= 9) and random interleaving. Baselines live in
results/baselines/<machine fingerprint>/kernels.json (Google Benchmark JSON with every
repetition) next to fingerprint.json.

A benchmark counts as regressed only if, after dividing every time by the calibration kernel's
median time in the same process (host drift cancels), Google Benchmark's compare.py U test
(Mann-Whitney, two-sided) gives p < 0.01 AND the normalised median is at least 10% slower.
Flagged benchmarks are run once more; only those that regress again fail the gate. Every check
appends one JSON line to results/gate_history.jsonl.

For information only (never gated: two threads on a shared 2-vCPU host are too noisy to test),
the gate also runs forward_bench's whole forwards with 1 and 2 threads, and the encoder with the
unfused attention ops at 1 thread (INFO_FILTER), stores them
next to the baseline as forward.json, and reports each one's median change and the 2-thread
speed-up in the table and the history line.

Runs on /usr/bin/python3 with Debian's libbenchmark-tools (compare.py's gbench) and python3-scipy.
"""
import argparse
import copy
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, "/usr/share/benchmark")
from gbench import report  # noqa: E402  (Debian's libbenchmark-tools)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GATE_FILTER = (r"^(calibration/|projection/.*/onednn_f32|attention/.*/onednn_f32|softmax/(onednn|iclbench)"
               r"|layer_norm/onednn|attention/core(_causal)?/iclbench_|projection/mlp_up_gelu/iclbench_"
               r"|gelu/iclbench_f32)")
INFO_FILTER = r"^BM_(Encoder|EncoderUnfused|GdHinge)/"
INFO_REPETITIONS = 3
CALIBRATION = "calibration/gemm_f32_256"
P_VALUE = 0.01
MIN_SLOWDOWN = 0.10


def fingerprint(iclbench):
    info = json.loads(subprocess.run([iclbench, "--threads", "1", "info", "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    keys = ["cpu_model", "logical_cpus", "onednn_isa", "onednn_version", "tbb_version", "compiler"]
    fp = {k: info[k] for k in keys}
    fp["git_revision"] = info["git_revision"]
    name = "-".join(str(info[k]) for k in ["cpu_model", "logical_cpus", "onednn_isa", "onednn_version"])
    return fp, re.sub(r"[^A-Za-z0-9.]+", "_", name).strip("_")


def run(binary, repetitions, min_time, bench_filter):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    try:
        subprocess.run([binary, "--benchmark_filter=" + bench_filter,
                        "--benchmark_repetitions=%d" % repetitions,
                        "--benchmark_enable_random_interleaving=true",
                        "--benchmark_min_time=%g" % min_time,
                        "--benchmark_out=" + path, "--benchmark_out_format=json"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with open(path) as f:
            return json.load(f)
    finally:
        os.unlink(path)


def iterations(result):
    return [b for b in result["benchmarks"] if b.get("run_type") == "iteration"]


def times(result, name):
    return [b["real_time"] for b in iterations(result) if b["name"] == name]


def normalised(result):
    """A copy whose times are divided by the calibration kernel's median time (x 1e6)."""
    calibration = statistics.median(times(result, CALIBRATION))
    copy_ = copy.deepcopy(result)
    copy_["benchmarks"] = [b for b in iterations(copy_) if b["name"] != CALIBRATION]
    for b in copy_["benchmarks"]:
        b["real_time"] = b["real_time"] / calibration * 1e6
        b["cpu_time"] = b["cpu_time"] / calibration * 1e6
    return copy_


def compare(baseline, current):
    rows = []
    for entry in report.get_difference_report(normalised(baseline), normalised(current), utest=True):
        if entry["name"] == "OVERALL_GEOMEAN" or entry["run_type"] == "aggregate":
            continue
        old = statistics.median(m["real_time"] for m in entry["measurements"])
        new = statistics.median(m["real_time_other"] for m in entry["measurements"])
        p = entry["utest"].get("time_pvalue", 1.0) if entry["utest"] else 1.0
        change = new / old - 1
        rows.append({"name": entry["name"], "change": change, "p": p,
                     "regressed": p < P_VALUE and change >= MIN_SLOWDOWN})
    return rows


def medians(result):
    names = sorted({b["name"] for b in iterations(result)})
    return {n: statistics.median(times(result, n)) for n in names}


def info_rows(baseline, current):
    """Median change of every informational benchmark, and the 2-thread speed-ups."""
    old = medians(baseline) if baseline else {}
    new = medians(current)
    rows = []
    for name, value in new.items():
        row = {"name": name, "ms": value, "change": (value / old[name] - 1) if name in old else None}
        one_thread = name.replace("threads:2", "threads:1")
        if "threads:2" in name and one_thread in new:
            row["speedup_2_threads"] = new[one_thread] / value
        rows.append(row)
    return rows


def print_info(rows):
    print("gate: for information, not gated (forward_bench, %d repetitions)" % INFO_REPETITIONS)
    print("  %-42s %9s %9s  %s" % ("benchmark", "ms", "change", "2-thread speed-up"))
    for r in rows:
        change = "%+8.1f%%" % (100 * r["change"]) if r["change"] is not None else "%9s" % "new"
        speedup = "%.2fx" % r["speedup_2_threads"] if "speedup_2_threads" in r else ""
        print("  %-42s %9.2f %s  %s" % (r["name"], r["ms"], change, speedup))


def print_table(rows, title):
    print(title)
    print("  %-42s %9s %9s  %s" % ("benchmark", "change", "p", "verdict"))
    for r in rows:
        print("  %-42s %+8.1f%% %9.2g  %s" % (r["name"], 100 * r["change"], r["p"],
                                             "REGRESSED" if r["regressed"] else "ok"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["record", "check"])
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--repetitions", type=int, default=9)
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per repetition")
    parser.add_argument("--baseline", help="baseline JSON (default: this machine's)")
    parser.add_argument("--history", default=os.path.join(ROOT, "results", "gate_history.jsonl"))
    args = parser.parse_args()
    if args.repetitions < 9:
        parser.error("--repetitions must be >= 9 for the U test to mean anything")
    binary = os.path.join(args.build, "bin", "kernels_bench")
    forward_binary = os.path.join(args.build, "bin", "forward_bench")
    iclbench = os.path.join(args.build, "bin", "iclbench")
    for path in (binary, forward_binary, iclbench):
        if not os.path.exists(path):
            print("gate: %s not found; build first (bash scripts/build.sh)" % path, file=sys.stderr)
            return 2
    fp, fp_name = fingerprint(iclbench)
    directory = os.path.join(ROOT, "results", "baselines", fp_name)
    baseline_path = args.baseline or os.path.join(directory, "kernels.json")

    current = run(binary, args.repetitions, args.min_time, GATE_FILTER)
    info = run(forward_binary, INFO_REPETITIONS, 0.2, INFO_FILTER)
    if args.mode == "record":
        os.makedirs(directory, exist_ok=True)
        print_info(info_rows(None, info))
        for name, content in (("kernels.json", current), ("forward.json", info), ("fingerprint.json", fp)):
            temp = os.path.join(directory, "." + name + ".tmp")
            with open(temp, "w") as f:
                json.dump(content, f, indent=1)
            os.replace(temp, os.path.join(directory, name))
        print("gate: baseline recorded in %s" % directory)
        return 0

    if not os.path.exists(baseline_path):
        print("gate: no baseline for this machine (%s); run `gate.py record` first" % baseline_path,
              file=sys.stderr)
        return 2
    with open(baseline_path) as f:
        baseline = json.load(f)
    info_baseline_path = os.path.join(os.path.dirname(baseline_path), "forward.json")
    info_baseline = None
    if os.path.exists(info_baseline_path):
        with open(info_baseline_path) as f:
            info_baseline = json.load(f)
    information = info_rows(info_baseline, info)
    print_info(information)
    rows = compare(baseline, current)
    print_table(rows, "gate: against %s (p < %g and >= %d%% slower after calibration)"
                % (os.path.relpath(baseline_path, ROOT), P_VALUE, 100 * MIN_SLOWDOWN))
    flagged = [r["name"] for r in rows if r["regressed"]]
    confirmed = []
    if flagged:
        rerun_filter = "^(" + "|".join(re.escape(n) for n in flagged + [CALIBRATION]) + ")$"
        again = compare(baseline, run(binary, args.repetitions, args.min_time, rerun_filter))
        print_table(again, "gate: re-run of the flagged benchmarks")
        confirmed = [r["name"] for r in again if r["regressed"]]
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_revision": fp["git_revision"],
              "baseline": os.path.relpath(baseline_path, ROOT), "flagged": flagged, "confirmed": confirmed,
              "changes": {r["name"]: round(r["change"], 4) for r in rows},
              "information": {r["name"]: {k: (round(v, 4) if isinstance(v, float) else v)
                                          for k, v in r.items() if k != "name"} for r in information},
              "slowdown_env": os.environ.get("ICLBENCH_BENCH_SLOWDOWN")}
    os.makedirs(os.path.dirname(args.history), exist_ok=True)
    with open(args.history, "a") as f:
        f.write(json.dumps(record) + "\n")
    if confirmed:
        print("gate: REGRESSION in %s" % ", ".join(confirmed))
        return 1
    print("gate: no regression")
    return 0


if __name__ == "__main__":
    sys.exit(main())

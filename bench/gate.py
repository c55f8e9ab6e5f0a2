#!/usr/bin/python3
"""Regression gate for the kernel benchmarks.

  gate.py record [--build DIR]             run the gate set, store it as this machine's baseline
  gate.py check  [--build DIR]             run it again and compare; exit 1 on a confirmed regression
  gate.py compare BASELINE.json NEW.json   compare two Google Benchmark JSON files (no re-run)

The gate set is kernels_bench's single-threaded oneDNN kernels, the engine's own kernels (softmax,
fused attention on the icl and causal masks, the GELU pass alone and after the MLP's up projection;
f32 and bf16 where they have both) and a calibration GEMM, with
--benchmark_repetitions (>= 9) and random interleaving. Baselines live in
results/baselines/<machine fingerprint>/kernels.json (Google Benchmark JSON with every
repetition) next to fingerprint.json.

A benchmark counts as regressed only if, after dividing every time (CPU time: the gated
kernels are single-threaded, and on a busy shared host wall-clock time mostly measures the
wait for a CPU) by the calibration kernel's median time in the same process (host drift
cancels), the two-sided Mann-Whitney U test (the one compare.py runs) gives p < 0.01 AND the
normalised median is at least 10% slower. The set is then run once more; only flagged
benchmarks that regress again fail the gate. Every check appends one JSON line to
results/gate_history.jsonl. The statistics live in bench/benchstats.py, which bench/track.py
shares.

Benchmarks are matched by name, every time converted from its own time_unit first. A benchmark
of the baseline that this run lacks (renamed, removed, filtered out) fails the check unless
--allow-missing; new ones are listed. Exit codes: 0 no regression, 1 a confirmed regression
or a missing benchmark, 2 unusable input (a baseline that is not Google Benchmark JSON with
every repetition and the calibration kernel, a missing binary, a benchmark process that failed);
128 + the signal on SIGINT, SIGTERM or SIGHUP (the running benchmark is killed, its temporary
output removed).

For information only (never gated: two threads on a shared 2-vCPU host are too noisy to test),
the gate also runs forward_bench's whole forwards with 1 and 2 threads, and the encoder with the
unfused attention ops at 1 thread (INFO_FILTER), stores them
next to the baseline as forward.json, and reports each one's median change and the 2-thread
speed-up in the table and the history line.

Runs on /usr/bin/python3 with Debian's python3-scipy.
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchstats  # noqa: E402
benchstats.require("scipy")
from benchstats import GATE_FILTER, MIN_EFFECT, P_VALUE, InputError, RunError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFO_FILTER = r"^BM_(Encoder|EncoderUnfused|GdHinge)/"
INFO_REPETITIONS = 3


def fingerprint(iclbench):
    info = json.loads(subprocess.run([iclbench, "--threads", "1", "info", "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    keys = ["cpu_model", "logical_cpus", "onednn_isa", "onednn_version", "tbb_version", "compiler"]
    fp = {k: info[k] for k in keys}
    fp["git_revision"] = info["git_revision"]
    name = "-".join(str(info[k]) for k in ["cpu_model", "logical_cpus", "onednn_isa", "onednn_version"])
    return fp, re.sub(r"[^A-Za-z0-9.]+", "_", name).strip("_")


def info_rows(baseline, current):
    """Median (ms) and change of every informational benchmark, and the 2-thread speed-ups."""
    old = {n: statistics.median(t) for n, t in baseline.samples.items()} if baseline else {}
    new = {n: statistics.median(t) for n, t in current.samples.items()}
    rows = []
    for name, value in new.items():
        row = {"name": name, "ms": value * 1e3, "change": (value / old[name] - 1) if name in old else None}
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


def print_report(report, title):
    print(title)
    print("\n".join(benchstats.table(report.rows)))
    for name in report.removed:
        print("  %-42s %9s %9s  MISSING from this run (in the baseline)" % (name, "", ""))
    for name in report.added:
        print("  %-42s %9s %9s  new (not in the baseline, not compared)" % (name, "", ""))


def missing_verdict(report, allow_missing):
    """True if benchmarks of the baseline are missing and that fails the gate."""
    if not report.removed:
        return False
    if allow_missing:
        print("gate: %d benchmark(s) of the baseline missing, allowed by --allow-missing: %s"
              % (len(report.removed), ", ".join(report.removed)))
        return False
    print("gate: MISSING %s from this run (renamed or removed? record a new baseline, or pass "
          "--allow-missing)" % ", ".join(report.removed))
    return True


def title(baseline_source):
    return "gate: against %s (p < %g and >= %d%% slower after calibration)" % (
        baseline_source, P_VALUE, 100 * MIN_EFFECT)


def compare_files(args):
    """`gate.py compare`: the first step of the check on two stored files, without the re-run."""
    baseline, current = benchstats.load_run(args.baseline), benchstats.load_run(args.current)
    report = benchstats.compare(baseline, current)
    print_report(report, title(benchstats.printable(args.baseline)))
    missing = missing_verdict(report, args.allow_missing)
    regressed = [r.name for r in report.rows if r.regressed]
    if regressed:
        print("gate: REGRESSION in %s (not confirmed by a re-run: compare has no binary)" % ", ".join(regressed))
    elif not missing:
        print("gate: no regression")
    return 1 if regressed or missing else 0


class Parser(argparse.ArgumentParser):
    """argparse with every error as one line on stderr and exit 2 (not the usage and the error)."""

    def error(self, message):
        self.exit(2, "gate: %s (--help for usage)\n" % benchstats.printable(message, 300))


def path_argument(text):
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return text


def repetitions_argument(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if value < benchstats.MIN_REPETITIONS:
        raise argparse.ArgumentTypeError("must be >= %d for the U test to mean anything" % benchstats.MIN_REPETITIONS)
    return value


def seconds_argument(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < 1e3):  # also refuses nan and inf
        raise argparse.ArgumentTypeError("%r is not a number of seconds in (0, 1000)" % text)
    return value


def parse_arguments(argv=None):
    """Each subcommand takes only the flags that mean something to it, before or after its files."""
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True, metavar="{record,check,compare}")
    record = modes.add_parser("record", help="run the gate set, store it as this machine's baseline")
    check = modes.add_parser("check", help="run it again and compare; exit 1 on a confirmed regression")
    compare = modes.add_parser("compare", help="compare two Google Benchmark JSON files (no re-run)")
    for sub in (record, check):
        sub.add_argument("--build", type=path_argument, default=os.path.join(ROOT, "build", "release"))
        sub.add_argument("--repetitions", type=repetitions_argument, default=9)
        sub.add_argument("--min-time", type=seconds_argument, default=0.05, help="seconds per repetition")
    check.add_argument("--baseline", type=path_argument, help="baseline JSON (default: this machine's)")
    check.add_argument("--history", type=path_argument, default=os.path.join(ROOT, "results", "gate_history.jsonl"))
    compare.add_argument("baseline", metavar="BASELINE.json")
    compare.add_argument("current", metavar="NEW.json")
    for sub in (check, compare):
        sub.add_argument("--allow-missing", action="store_true",
                         help="a benchmark of the baseline that this run lacks does not fail the check")
    return parser.parse_args(argv)


def main():
    args = parse_arguments()
    if args.mode == "compare":
        return compare_files(args)
    args.baseline = getattr(args, "baseline", None)
    args.allow_missing = getattr(args, "allow_missing", False)
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

    # Decide on the inputs before spending minutes on benchmarks.
    baseline = info_baseline = None
    if args.mode == "check":
        if args.baseline is None and not os.path.exists(baseline_path):
            print("gate: no baseline for this machine (%s); run `gate.py record` first" % baseline_path,
                  file=sys.stderr)
            return 2
        baseline = benchstats.load_run(baseline_path)
        benchstats.normalised(baseline)  # a baseline without the calibration kernel is unusable
        info_baseline_path = os.path.join(os.path.dirname(baseline_path), "forward.json")
        if os.path.exists(info_baseline_path):
            try:
                info_baseline = benchstats.load_run(info_baseline_path, time_field="real_time")
            except InputError as error:
                print("gate: ignoring the informational baseline: %s" % error)

    current_json, current = benchstats.run_benchmarks(binary, GATE_FILTER, args.repetitions, args.min_time)
    benchstats.normalised(current)
    info_json, info = benchstats.run_benchmarks(forward_binary, INFO_FILTER, INFO_REPETITIONS, 0.2,
                                                time_field="real_time")
    if args.mode == "record":
        print_info(info_rows(None, info))
        benchstats.write_json_files(directory, {"kernels.json": current_json, "forward.json": info_json,
                                                "fingerprint.json": fp})
        print("gate: baseline recorded in %s" % directory)
        return 0

    information = info_rows(info_baseline, info)
    print_info(information)
    baseline_shown = os.path.relpath(os.path.abspath(baseline_path), ROOT)
    report = benchstats.compare(baseline, current)
    print_report(report, title(baseline_shown))
    missing = missing_verdict(report, args.allow_missing)
    flagged = [r.name for r in report.rows if r.regressed]
    confirmed = []
    if flagged:
        # The whole set again, not just the flagged ones: a kernel's time can depend on what ran
        # before it in the process (see track.py's fresh_pair), and the baseline ran them all.
        _, again = benchstats.run_benchmarks(binary, GATE_FILTER, args.repetitions, args.min_time)
        again_report = benchstats.compare(baseline, again, names=set(flagged))
        print_report(again_report, "gate: re-run, compared on the flagged benchmarks")
        confirmed = [r.name for r in again_report.rows if r.regressed]
        # A flagged benchmark that the re-run lacks cannot be cleared by it.
        confirmed += again_report.removed
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_revision": fp["git_revision"],
              "baseline": baseline_shown, "flagged": flagged, "confirmed": confirmed,
              "missing": report.removed, "added": report.added, "allow_missing": args.allow_missing,
              "changes": {r.name: round(r.change, 4) for r in report.rows},
              "information": {r["name"]: {k: (round(v, 4) if isinstance(v, float) else v)
                                          for k, v in r.items() if k != "name"} for r in information},
              "slowdown_env": os.environ.get("ICLBENCH_BENCH_SLOWDOWN")}
    os.makedirs(os.path.dirname(os.path.abspath(args.history)), exist_ok=True)
    with open(args.history, "a") as f:
        f.write(json.dumps(record) + "\n")
    if confirmed:
        print("gate: REGRESSION in %s" % ", ".join(confirmed))
    elif not missing:
        print("gate: no regression")
    return 1 if confirmed or missing else 0


if __name__ == "__main__":
    benchstats.terminate_like_interrupt()
    benchstats.quiet_on_broken_pipe()
    try:
        sys.exit(main())
    except (InputError, RunError) as error:
        print("gate: %s" % error, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:  # SIGINT, SIGTERM, SIGHUP: the benchmark is killed, temp removed
        sys.exit(benchstats.interrupted_exit_code(interrupt))

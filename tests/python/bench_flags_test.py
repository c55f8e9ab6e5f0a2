#!/usr/bin/python3
"""A benchmark binary's (forward_bench, kernels_bench) Google Benchmark 1.7 flags on bad input:
one line on stderr and exit 2, before any benchmark runs (bench_common.hpp,
check_benchmark_flags). Before: --benchmark_min_time=nan ran for ever, --benchmark_repetitions=-1
aborted (std::length_error), --benchmark_format=xml printed the help with exit 0, and a value
1.7 cannot parse ("0.5s", the suffix of 1.8) or an unknown flag was exit 1.

  bench_flags_test.py BINARY
"""
import os
import subprocess
import sys
import tempfile

failures = []


def expect(case, condition, detail):
    print("%-52s %s" % (case, "ok" if condition else "FAILED: " + detail))
    if not condition:
        failures.append(case)


def run(binary, arguments, env=None):
    """-> (exit code, stdout, stderr) of `binary`, or None if it ran past the timeout (a hang)."""
    try:
        process = subprocess.run([binary] + arguments, capture_output=True, text=True, errors="replace",
                                 timeout=120, env=dict(os.environ, **(env or {})))
    except subprocess.TimeoutExpired:
        return None
    return process.returncode, process.stdout, process.stderr


def refused(binary, arguments, needle, env=None):
    case = " ".join(arguments) + (" with %s" % " ".join("%s=%s" % kv for kv in env.items()) if env else "")
    result = run(binary, arguments, env)
    if result is None:
        expect(case, False, "still running after 120 s")
        return
    code, out, err = result
    lines = err.strip().splitlines()
    name = os.path.basename(binary)
    # "Failed to match" and "Could not compile" are Google Benchmark's own lines.
    expect(case, code == 2 and len(lines) == 1 and needle in lines[0] and
           (lines[0].startswith(name + ": ") or needle.startswith(("Failed", "Could not"))) and not out.strip(),
           "exit %d, stderr %r, stdout %r" % (code, err, out[:200]))


def main():
    binary = sys.argv[1]
    # A benchmark that exists in both binaries' lists is not needed: --benchmark_list_tests runs nothing.
    listing = ["--benchmark_list_tests=true"]
    with tempfile.TemporaryDirectory(prefix="iclbench-bench-flags-") as directory:
        cases = [
            (["--benchmark_min_time=nan"], "must be seconds in (0, 3600]"),
            (["--benchmark_min_time=inf"], "must be seconds"),
            (["--benchmark_min_time=0"], "must be seconds"),
            (["--benchmark_min_time=-1"], "must be seconds"),
            (["--benchmark_min_time=3601"], "must be seconds"),
            (["--benchmark_min_time=1e400"], "must be seconds"),
            (["--benchmark_min_time=0.5s"], "no 's' or 'x' suffix"),
            (["--benchmark_min_time=0x1p-3"], "must be seconds"),
            (["--benchmark_min_time="], "must be seconds"),
            (["--benchmark_min_time"], "needs a value"),
            (["--benchmark_min_warmup_time=-0.1"], "must be seconds in [0, 3600]"),
            (["--benchmark_min_warmup_time=nan"], "must be seconds in [0, 3600]"),
            (["--benchmark_repetitions=-1"], "must be an integer in [1, 1000]"),
            (["--benchmark_repetitions=0"], "must be an integer in [1, 1000]"),
            (["--benchmark_repetitions=1001"], "must be an integer in [1, 1000]"),
            (["--benchmark_repetitions=2.5"], "must be an integer in [1, 1000]"),
            (["--benchmark_repetitions=99999999999"], "must be an integer in [1, 1000]"),
            (["--v=-1"], "must be an integer >= 0"),
            (["--benchmark_list_tests=maybe"], "must be true or false"),
            (["--benchmark_format=xml"], "must be console, json or csv"),
            (["--benchmark_out_format="], "must be console, json or csv"),
            (["--benchmark_color="], "must be auto, true or false"),
            (["--benchmark_time_unit=h"], "must be ns, us, ms or s"),
            (["--benchmark_context=key"], "KEY=VALUE"),
            (["--benchmark_out=" + directory], "is no file that can be written"),
            (["--benchmark_out=" + os.path.join(directory, "missing", "out.json")], "is no file that can be written"),
            (["--bogus"], "unknown flag --bogus"),
            (["--benchmark_min_time=0.01", "positional"], "unknown flag positional"),
            (["-benchmark_min_time=0.01"], "unknown flag"),
            (listing + ["--benchmark_filter=("], "Could not compile benchmark re"),
            (listing + ["--benchmark_filter=^no_such_benchmark$"], "Failed to match any benchmarks"),
        ]
        for arguments, needle in cases:
            refused(binary, arguments, needle)
        # The environment's defaults of the flags (Google Benchmark reads BENCHMARK_MIN_TIME etc.).
        refused(binary, listing, "environment variable BENCHMARK_MIN_TIME=nan", {"BENCHMARK_MIN_TIME": "nan"})
        refused(binary, listing, "environment variable BENCHMARK_REPETITIONS=-1", {"BENCHMARK_REPETITIONS": "-1"})
        # A flag on the command line replaces the environment's value: then that value is not used.
        result = run(binary, listing + ["--benchmark_min_time=0.01"], {"BENCHMARK_MIN_TIME": "nan"})
        expect("flag over BENCHMARK_MIN_TIME=nan", result is not None and result[0] == 0,
               "result %r" % (result,))

        # --help wins over a bad flag, as Google Benchmark's own parser lets it.
        for arguments in (["--help"], ["--benchmark_min_time=nan", "--help"]):
            result = run(binary, arguments)
            expect(" ".join(arguments), result is not None and result[0] == 0 and "--benchmark_min_time" in result[1],
                   "result %r" % (result,))
        # Every flag with a good value: accepted, the list printed, nothing on stderr.
        out = os.path.join(directory, "out.json")
        good = listing + ["--benchmark_min_time=0.5", "--benchmark_min_warmup_time=0", "--benchmark_repetitions=3",
                          "--benchmark_enable_random_interleaving", "--benchmark_report_aggregates_only=false",
                          "--benchmark_display_aggregates_only=no", "--benchmark_format=console",
                          "--benchmark_out=" + out, "--benchmark_out_format=json", "--benchmark_color=false",
                          "--benchmark_counters_tabular=true", "--benchmark_context=a=1,b=2",
                          "--benchmark_time_unit=ms", "--v=0"]
        result = run(binary, good)
        expect("every flag, good values", result is not None and result[0] == 0 and result[1].strip() and
               not result[2].strip(), "result %r" % (result,))

    if failures:
        print("FAILED: %d case(s): %s" % (len(failures), ", ".join(failures)))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

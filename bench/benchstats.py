"""Statistics shared by the regression gate (gate.py) and the tracker (track.py).

Reading Google Benchmark JSON, including files this suite did not write:
  * every time is converted to seconds from its own entry's `time_unit` before anything else,
    so a run written with --benchmark_time_unit=ms (or a benchmark that sets ->Unit())
    compares with one in ns, and the calibration kernel may use another unit than the rest;
  * benchmarks are matched by name; a name in only one of two runs is reported as added or
    removed, never silently dropped;
  * anything that cannot be compared (not a regular file, not UTF-8 JSON, JSON nested too
    deeply for the parser, no "benchmarks" list, aggregates only, a benchmark that reported an
    error, an unknown unit, a time that is not a positive finite number (or an integer too
    large for a float), a repetition_index twice, no calibration kernel, fewer than
    MIN_REPETITIONS repetitions) raises InputError, whose message is one line naming the file and the entry.

The decision: each time (CPU time of the single-threaded kernels, see TIME_FIELD) is divided
by the median time of the calibration kernel (a fixed f32 GEMM) from the same process, which
cancels drift of the host's speed between two processes. A benchmark is slower when the
two-sided Mann-Whitney U test on those normalised repetitions (the call compare.py makes,
scipy.stats.mannwhitneyu) gives p < P_VALUE = 0.01 AND its normalised median is at least
MIN_EFFECT = 10% higher;
faster, symmetrically in ratio, when p < 0.01 and the median is at most 1/1.1 of the old one.

Change points across commits (the tracker's dashboard): binary segmentation with the same U
test and minimum effect at every boundary, Bonferroni-corrected; see change_points().
"""
import functools
import json
import math
import os
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from debian_python import require  # noqa: E402,F401  (gate.py and track.py call benchstats.require)

# The gated set: kernels_bench's single-threaded oneDNN kernels on the encoder shape, the engine's
# own softmax, and the calibration kernel.
GATE_FILTER = (r"^(calibration/|projection/.*/onednn_f32|attention/.*/onednn_f32|softmax/(onednn|iclbench)"
               r"|layer_norm/(onednn|iclbench)|attention/core(_causal)?/iclbench_|projection/mlp_up_gelu/iclbench_"
               r"|gelu/iclbench_f32|icl_linear_attention/.*/iclbench_|icl_mlp/.*/iclbench_)")
CALIBRATION = "calibration/gemm_f32_256"
P_VALUE = 0.01
MIN_EFFECT = 0.10
# Below 9 repetitions a side the U test's p-values are too coarse to mean much (compare.py's
# UTEST_OPTIMAL_REPETITIONS); 9 against 9 reach p = 4.1e-4 at best (scipy's normal
# approximation with continuity correction, which compare.py gets too).
MIN_REPETITIONS = 9
UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
# The gated kernels run on one thread, so the time that matters is the CPU time of their
# process: wall-clock time also counts the time the process waited for a CPU. On this shared
# 2-vCPU host at load 16 the repetitions' IQR/median (after calibration, median over the gated
# set) was 16.6% in real time and 6.2% in CPU time; at load 1 both were 1.2%. Multi-threaded
# benchmarks (the gate's informational forwards) must use real time.
TIME_FIELD = "cpu_time"


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, like SIGINT's KeyboardInterrupt, so that
    the same unwinding runs: subprocess.run kills its child (a benchmark would otherwise go on
    running with parent 1) and temporary directories are removed. `code` is 128 + the signal."""

    def __init__(self, signum):
        super().__init__("signal %d" % signum)
        self.code = 128 + signum


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def terminate_like_interrupt():
    """Makes SIGTERM and SIGHUP raise Terminated (a KeyboardInterrupt) instead of ending the
    process on the spot."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_terminated)


def quiet_on_broken_pipe():
    """Makes a closed standard output (`gate.py compare A B | head -1`) end the process quietly
    by SIGPIPE, as it ends cat or grep, instead of a BrokenPipeError traceback. Nothing is lost:
    the output is a report, and the tools write their files before they print the last lines."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def interrupted_exit_code(error):
    """The exit status for a KeyboardInterrupt `error`: 128 + its signal (130 for SIGINT)."""
    return getattr(error, "code", 130)


class InputError(Exception):
    """Input that cannot be used; the message is one line that names the file and the entry."""


def printable(text, limit=120):
    """`text` with control characters escaped and cut to `limit` characters, for one-line messages."""
    text = str(text)
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return out if len(out) <= limit else out[:limit] + "..."


def read_json(path):
    """The parsed JSON of the regular file at `path`; InputError otherwise.

    Opened non-blocking and checked with fstat, so a FIFO or a device is refused instead of
    blocking the reader."""
    shown = printable(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise InputError("%s: %s" % (shown, error.strerror)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError("%s: not a regular file" % shown)
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read()
    except OSError as error:
        raise InputError("%s: %s" % (shown, error.strerror)) from None
    finally:
        os.close(fd)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError("%s: not UTF-8 text" % shown) from None
    except ValueError as error:
        raise InputError("%s: not JSON (%s)" % (shown, printable(error))) from None
    except RecursionError:
        raise InputError("%s: JSON nested too deeply" % shown) from None


def write_json_files(directory, contents):
    """Writes each name -> JSON of `contents` into `directory`, all or nothing as far as a file
    system allows: every file is staged under a temporary name first, then all are renamed."""
    os.makedirs(directory, exist_ok=True)
    staged = []
    try:
        for name, content in contents.items():
            fd, temp = tempfile.mkstemp(dir=directory, prefix="." + name + ".tmp.")
            staged.append((temp, os.path.join(directory, name)))
            with os.fdopen(fd, "w") as f:
                json.dump(content, f, indent=1)
                f.write("\n")
        for temp, final in staged:
            os.replace(temp, final)
    finally:
        for temp, _ in staged:
            if os.path.exists(temp):
                os.unlink(temp)


@dataclass
class Run:
    """Repetitions from one or more Google Benchmark processes: time per iteration in seconds."""
    source: str
    processes: dict  # process index -> {name: [seconds, ...] in file order}
    context: dict = field(default_factory=dict)

    @property
    def samples(self):
        """{name: [seconds, ...]} of all processes together."""
        merged = {}
        for process in self.processes.values():
            for name, times in process.items():
                merged.setdefault(name, []).extend(times)
        return merged


def parse_run(data, source, time_field=TIME_FIELD):
    """A Run of `time_field` (cpu_time or real_time) from parsed Google Benchmark JSON `data`;
    `source` names it in messages."""
    source = printable(source)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise InputError('%s: not Google Benchmark JSON (no "benchmarks" list)' % source)
    processes = {}
    seen = set()  # (process, name, repetition_index)
    for index, entry in enumerate(data["benchmarks"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise InputError("%s: benchmarks[%d] has no name" % (source, index))
        where = "%s: %s" % (source, printable(entry["name"]))
        if entry.get("error_occurred"):
            raise InputError("%s reported an error: %s" % (where, printable(entry.get("error_message", ""))))
        # Aggregates (mean, median, stddev) are recomputed here from the repetitions. A writer
        # that leaves out run_type still names an aggregate's statistic in aggregate_name.
        if entry.get("run_type", "iteration") != "iteration" or "aggregate_name" in entry:
            continue
        unit = entry.get("time_unit")
        if unit not in UNIT_SECONDS:
            raise InputError("%s: unknown time_unit %s (expected ns, us, ms or s)" % (where, printable(repr(unit))))
        # The time compared, and the other one where the writer gave it: neither may be
        # non-finite (a time of hundreds of digits is an overflow to inf, not a measurement).
        times = {}
        for field in dict.fromkeys((time_field, "cpu_time", "real_time")):
            if field != time_field and field not in entry:
                continue
            value = written = entry.get(field)
            if isinstance(value, int) and not isinstance(value, bool):
                try:
                    value = float(value)
                except OverflowError:  # an integer of hundreds of digits
                    value = math.inf
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise InputError("%s: %s %s is not a positive finite number" % (where, field, printable(repr(written), 40)))
            times[field] = value
        value = times[time_field]
        process = entry.get("process_index", 0)
        if isinstance(process, bool) or not isinstance(process, int) or process < 0:
            raise InputError("%s: process_index %s is not a process number" % (where, printable(repr(process))))
        repetition = entry.get("repetition_index")
        if "repetition_index" in entry and (isinstance(repetition, bool) or not isinstance(repetition, int) or repetition < 0):
            # 1.0, "1" or true would dodge the duplicate check below (it compares the values).
            raise InputError("%s: repetition_index %s is not a repetition number" % (where, printable(repr(repetition), 20)))
        if repetition is not None:
            # The same repetition twice (a file concatenated with itself, a merge gone wrong)
            # would count as independent samples and shrink the U test's p-value.
            if (process, entry["name"], repetition) in seen:
                raise InputError("%s: repetition_index %s appears twice%s" % (
                    where, printable(repr(repetition), 20), " in process %d" % process if process else ""))
            seen.add((process, entry["name"], repetition))
        processes.setdefault(process, {}).setdefault(entry["name"], []).append(value * UNIT_SECONDS[unit])
    if not processes:
        raise InputError("%s: no repetitions, only aggregates or nothing (record with every repetition, "
                         "without --benchmark_report_aggregates_only)" % source)
    context = data.get("context") if isinstance(data.get("context"), dict) else {}
    return Run(source, processes, context)


def load_run(path, time_field=TIME_FIELD):
    """parse_run of the file at `path`."""
    return parse_run(read_json(path), path, time_field)


class RunError(Exception):
    """A benchmark process that failed; the message is one line."""


def run_benchmarks(binary, bench_filter, repetitions, min_time, env=None, time_field=TIME_FIELD):
    """(JSON, Run) of `binary` run on `bench_filter` with every repetition kept, randomly
    interleaved (so slow phases of a shared host spread over all benchmarks alike)."""
    with tempfile.TemporaryDirectory(prefix="iclbench-bench-") as directory:
        path = os.path.join(directory, "out.json")
        process = subprocess.run([binary, "--benchmark_filter=" + bench_filter,
                                  "--benchmark_repetitions=%d" % repetitions,
                                  "--benchmark_enable_random_interleaving=true",
                                  "--benchmark_min_time=%g" % min_time,
                                  "--benchmark_out=" + path, "--benchmark_out_format=json"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        if process.returncode != 0:
            lines = process.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RunError("%s exited with %d%s" % (printable(binary), process.returncode,
                                                     (": " + printable(lines[-1])) if lines else ""))
        try:
            data = read_json(path)
            return data, parse_run(data, binary, time_field)
        except InputError as error:
            raise RunError(str(error)) from None


def merge_processes(runs):
    """One Google Benchmark JSON of several processes' runs (each a parsed JSON): the first's
    context with "processes": P, and every row of every run tagged with its "process_index"
    (an extra key that compare.py ignores), so that each process keeps its own calibration."""
    merged = {"context": dict(runs[0].get("context") or {}, processes=len(runs)), "benchmarks": []}
    for index, data in enumerate(runs):
        merged["benchmarks"] += [dict(row, process_index=index) for row in data["benchmarks"]]
    return merged


def normalised(run):
    """{name: [time / median calibration time of the same process]} of every benchmark but the
    calibration kernel, the processes' repetitions one after the other."""
    out = {}
    for index, process in sorted(run.processes.items()):
        calibration = process.get(CALIBRATION)
        if not calibration:
            raise InputError("%s: no %s%s, the calibration kernel every time is divided by" % (
                run.source, CALIBRATION, " in process %d" % index if len(run.processes) > 1 else ""))
        scale = statistics.median(calibration)
        for name, times in process.items():
            if name != CALIBRATION:
                out.setdefault(name, []).extend(t / scale for t in times)
    return out


def u_test(old, new):
    """Two-sided Mann-Whitney U p-value of two samples (as compare.py computes it); 1 if all tie."""
    from scipy.stats import mannwhitneyu  # imported when needed: it takes seconds on a busy host
    p = mannwhitneyu(old, new, alternative="two-sided").pvalue
    return 1.0 if math.isnan(p) else float(p)


@dataclass
class Difference:
    """One benchmark in two runs: the change of the normalised median and the U test's p."""
    name: str
    change: float  # median(new) / median(old) - 1
    p: float
    repetitions: tuple  # (old, new)

    @property
    def regressed(self):
        return self.p < P_VALUE and self.change >= MIN_EFFECT

    @property
    def improved(self):
        return self.p < P_VALUE and 1 + self.change <= 1 / (1 + MIN_EFFECT)

    @property
    def verdict(self):
        return "REGRESSED" if self.regressed else "improved" if self.improved else "ok"


def difference(name, old, new):
    """The Difference of normalised samples `old` and `new` of benchmark `name`."""
    return Difference(name, statistics.median(new) / statistics.median(old) - 1, u_test(old, new),
                      (len(old), len(new)))


def table(rows):
    """Lines of a table of Differences: benchmark, change, p, verdict."""
    return (["  %-42s %9s %9s  %s" % ("benchmark", "change", "p", "verdict")] +
            ["  %-42s %+8.1f%% %9.2g  %s" % (r.name, 100 * r.change, r.p, r.verdict) for r in rows])


@dataclass
class Report:
    rows: list  # Difference of every benchmark in both runs, in the base run's order
    added: list  # names only in the new run
    removed: list  # names only in the base run


def compare(base, new, names=None):
    """Compares two Runs benchmark by benchmark (all of them, or only `names`).

    Raises InputError if either has no calibration kernel or a compared benchmark has fewer
    than MIN_REPETITIONS repetitions."""
    old_times, new_times = normalised(base), normalised(new)
    if names is not None:
        old_times = {n: t for n, t in old_times.items() if n in names}
        new_times = {n: t for n, t in new_times.items() if n in names}
    rows = []
    for name, old in old_times.items():
        if name not in new_times:
            continue
        for run, times in ((base, old), (new, new_times[name])):
            if len(times) < MIN_REPETITIONS:
                raise InputError("%s: %s has %d repetitions; the U test needs at least %d"
                                 % (run.source, printable(name), len(times), MIN_REPETITIONS))
        rows.append(difference(name, old, new_times[name]))
    return Report(rows, [n for n in new_times if n not in old_times], [n for n in old_times if n not in new_times])


@functools.lru_cache(maxsize=None)
def _median_interval_rank(n, level):
    """(k, coverage) of median_interval for n samples."""
    from scipy.stats import binom
    best = 1
    for k in range(1, (n + 1) // 2 + 1):
        if binom.cdf(n - k, n, 0.5) - binom.cdf(k - 1, n, 0.5) >= level:
            best = k
    return best, float(binom.cdf(n - best, n, 0.5) - binom.cdf(best - 1, n, 0.5))


def median_interval(values, level=0.95):
    """(low, high, coverage): a distribution-free interval for the median from order statistics.

    The narrowest symmetric pair (x_(k), x_(n+1-k)) whose coverage P(k <= B <= n-k),
    B ~ Binomial(n, 1/2), is at least `level` (the number of samples below the median is
    Binomial(n, 1/2) for any continuous distribution). With n = 9 that is (x_(2), x_(8)) at
    96.1%. Below n = 6 no pair reaches 95%; (min, max) is returned with its actual coverage."""
    xs = sorted(values)
    best, coverage = _median_interval_rank(len(xs), level)
    return xs[best - 1], xs[len(xs) - best], coverage


@dataclass
class ChangePoint:
    index: int  # the first group after the step (the commit that introduced it)
    change: float  # median of the segment after / median of the segment before - 1
    p: float  # the U test's p-value at this boundary, times the number of boundaries tried


def change_points(groups, p_value=P_VALUE, min_effect=MIN_EFFECT):
    """Steps in a series of sample groups (one group of normalised repetitions per commit).

    Binary segmentation (Scott & Knott 1974; Vostrikova 1981) with the gate's test: within a
    segment of m groups, every one of the m - 1 boundaries splits it into the samples before
    and after; a boundary qualifies if the U test between the two sides, Bonferroni-corrected
    for the m - 1 boundaries tried, gives p < `p_value`, and the two sides' medians differ by
    at least `min_effect` in ratio, either way (the gate's minimum effect). The qualifying
    boundary with the smallest p is a change point, and both halves are searched again.

    Each boundary's own test standardises by its own sample sizes, so a step at the last
    commit (9 repetitions against all the others) is found as readily as one in the middle;
    Pettitt's statistic, the maximum of the unstandardised U over boundaries, could not reach
    p < 0.01 there for 10 commits of 9 repetitions. The test treats the samples as
    independent: the tracker measures each repetition in its own process, interleaved with the
    other commits' (repetitions inside one process share its state and are not independent);
    slower drifts of the host are what the minimum effect is there to ignore. Returned in
    commit order."""
    found = []

    def search(lo, hi):
        if hi - lo < 2:
            return
        best = None
        for split in range(lo + 1, hi):
            before = [x for g in groups[lo:split] for x in g]
            after = [x for g in groups[split:hi] for x in g]
            ratio = statistics.median(after) / statistics.median(before)
            if max(ratio, 1 / ratio) < 1 + min_effect:
                continue
            p = min(1.0, u_test(before, after) * (hi - lo - 1))
            if p < p_value and (best is None or p < best.p):
                best = ChangePoint(split, ratio - 1, p)
        if best is None:
            return
        found.append(best)
        search(lo, best.index)
        search(best.index, hi)

    search(0, len(groups))
    return sorted(found, key=lambda c: c.index)

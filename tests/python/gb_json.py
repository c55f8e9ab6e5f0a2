"""Google Benchmark JSON for the tests of bench/benchstats.py and bench/gate.py, as written by
Google Benchmark 1.7 with --benchmark_repetitions (iteration rows, then mean/median/stddev/cv
aggregates per benchmark), from seeded noise so that every run of a test sees the same bytes."""
import json
import math
import random

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def run_json(medians, repetitions=9, seed=1, noise=0.02, units=None):
    """`medians`: {name: seconds}; `units`: {name: time_unit} (default ns). Each repetition is
    the median times exp(noise * N(0, 1)); real and CPU time are equal (one thread, idle host)."""
    rng = random.Random(seed)
    units = units or {}
    benchmarks = []
    for name, seconds in medians.items():
        unit = units.get(name, "ns")
        values = [seconds * math.exp(noise * rng.gauss(0, 1)) / UNIT[unit] for _ in range(repetitions)]
        for index, value in enumerate(values):
            benchmarks.append({"name": name, "family_index": 0, "per_family_instance_index": 0, "run_name": name,
                               "run_type": "iteration", "repetitions": repetitions, "repetition_index": index,
                               "threads": 1, "iterations": 1000, "real_time": value, "cpu_time": value,
                               "time_unit": unit})
        mean = sum(values) / len(values)
        for aggregate, value in (("mean", mean), ("median", sorted(values)[len(values) // 2]),
                                 ("stddev", math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)))):
            benchmarks.append({"name": name + "_" + aggregate, "run_name": name, "run_type": "aggregate",
                               "repetitions": repetitions, "threads": 1, "aggregate_name": aggregate,
                               "aggregate_unit": "time", "iterations": repetitions, "real_time": value,
                               "cpu_time": value, "time_unit": unit})
    return {"context": {"date": "2026-01-01T00:00:00+00:00", "num_cpus": 2, "library_build_type": "release"},
            "benchmarks": benchmarks}


# The gated set's names with plausible medians (seconds); the calibration kernel first.
GATED = {"calibration/gemm_f32_256": 170e-6, "projection/qkv_projection/onednn_f32": 9e-6,
         "attention/qk_scores/onednn_f32": 21e-6, "softmax/iclbench_f32": 22e-6, "layer_norm/onednn_f32": 2.5e-6}


def write(path, data):
    with open(path, "w") as f:
        json.dump(data, f)
    return path

#!/usr/bin/python3
"""Projects the makespan of `mpirun -n K iclbench bounds` from per-point costs (docs/DESIGN.md,
"Sweeps over MPI").

The policy simulated is the one runtime::Cluster::run_units() runs: units in order of decreasing
estimated cost, each to the next rank that is free (rank 0 included). Each rank is assumed to be
one host like the measuring machine, so a point's cost there is its measured cost here.

Costs: `iclbench bounds ... --plan` gives each point's model estimate (estimate_point_seconds);
a measured 1-process run of another sweep calibrates it. Its points are computed one after another
in sweep order, so the gap between consecutive points/*.json modification times is each point's
wall time (the first point's from the run's start time, given). The ratio measured / estimated per
point gives a scale (their median) and a spread: the projection draws each point's true cost as
estimate x a ratio resampled from the measured ones, schedules by the estimates, and reports the
median and 90th percentile of the makespan over the draws, beside the lower bound
max(total / K, largest point).

usage: mpi_projection.py TARGET_PLAN.json CALIBRATION_PLAN.json CALIBRATION_RUN_DIR START_EPOCH_SECONDS
       [--ranks 1,2,8,64] [--draws 1000] [--split M]
  --split M: also simulate each point cut into M equal (point, task-range) units (not built: how
             much such units would gain).
"""
import argparse
import heapq
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian_python  # noqa: E402
debian_python.require("numpy")
import numpy as np  # noqa: E402


def list_schedule(estimates, costs, ranks):
    """Makespan: units in decreasing-estimate order, each to the rank that frees up first."""
    order = sorted(range(len(estimates)), key=lambda i: -estimates[i])
    free_at = [0.0] * ranks
    heapq.heapify(free_at)
    for i in order:
        start = heapq.heappop(free_at)
        heapq.heappush(free_at, start + costs[i])
    return max(free_at)


def measured_point_seconds(run_dir, start, ids):
    times = {i: os.stat(os.path.join(run_dir, "points", i + ".json")).st_mtime for i in ids}
    seconds, previous = {}, start
    for i in ids:  # sweep order: the order the 1-process run computed them in
        seconds[i] = times[i] - previous
        previous = times[i]
    return seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target_plan")
    parser.add_argument("calibration_plan")
    parser.add_argument("calibration_run")
    parser.add_argument("start", type=float)
    parser.add_argument("--ranks", default="1,2,8,64")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--split", type=int, default=0)
    args = parser.parse_args()

    with open(args.target_plan) as f:
        target = json.load(f)
    with open(args.calibration_plan) as f:
        calibration = json.load(f)
    ids = list(calibration)  # the plan lists points in sweep order
    measured = measured_point_seconds(args.calibration_run, args.start, ids)
    ratios = np.array([measured[i] / calibration[i] for i in ids])
    scale = float(np.median(ratios))
    print(f"calibration: {len(ids)} points, measured/estimated median {scale:.3g} "
          f"(range {ratios.min():.3g} .. {ratios.max():.3g})")
    for i in ids:
        print(f"  {i:>12}  estimated {calibration[i]:9.2f} s  measured {measured[i]:8.2f} s")

    estimates = np.array([target[i] * scale for i in target])
    total = estimates.sum()
    print(f"target: {len(estimates)} points, {total / 3600:.2f} h of work (calibrated), "
          f"largest point {estimates.max() / 3600:.2f} h ({max(target, key=target.get)})")
    rng = np.random.default_rng(17)
    draws = [estimates * rng.choice(ratios / scale, size=len(estimates)) for _ in range(args.draws)]

    def project(label, est, draw_list):
        print(f"\n{label}")
        print("| K | makespan, costs = estimates (h) | makespan median / p90 over draws (h) "
              "| lower bound max(total/K, largest) (h) | efficiency total/(K makespan) |")
        print("|---|---|---|---|---|")
        for k in [int(x) for x in args.ranks.split(",")]:
            exact = list_schedule(est, est, k)
            spans = np.array([list_schedule(est, d, k) for d in draw_list])
            bound = max(est.sum() / k, est.max())
            print(f"| {k} | {exact / 3600:.2f} | {np.median(spans) / 3600:.2f} / "
                  f"{np.percentile(spans, 90) / 3600:.2f} | {bound / 3600:.2f} | "
                  f"{est.sum() / (k * exact):.2f} |")

    project("units = points (as built)", estimates, draws)
    if args.split > 1:
        m = args.split
        split = np.repeat(estimates / m, m)
        project(f"units = (point, 1/{m} of its tasks) (not built)", split,
                [np.repeat(d / m, m) for d in draws])


if __name__ == "__main__":
    main()

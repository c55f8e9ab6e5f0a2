#!/usr/bin/python3
"""CPU time of a training schedule, from measured per-stage rates: for every curriculum stage (a
distinct number of pairs per prompt) it times a few of train.py's own training steps at that
stage's shape, then sums (steps of the stage) x (measured CPU seconds per step) over the whole
schedule. A schedule's full run on a loaded, shared machine takes hours of wall time, while a
step's CPU time hardly depends on the load; this gives the schedule's cost from short runs.

usage: run.sh stage_cost.py [train.py's schedule and model flags] [--threads 1]
                            [--steps-per-stage 30] [--steps-last-stage 200]
                            [--checkpoint RUN_DIR/checkpoint.pt] [--stages all|last] [--json]

The defaults are the shipped model's configuration (results/models/garg-gaussian-d8.md). Each
stage is timed on the steps it really has in the schedule (its first --steps-per-stage steps:
their batches, (seed, step) -> sample_batch, and learning rates), after 2 untimed warm-up steps,
from the initial weights (from scratch) or from a checkpoint's weights and Adam state
(--checkpoint: the cost does not depend on the weights' values, which this checks). The stage
of the longest prompts holds most of the schedule (7,000 of 10,000 steps when shipped), so it
gets --steps-last-stage steps. Run through run.sh (OpenBLAS, OPENBLAS_NUM_THREADS=1), at normal
priority (`nice -n 0`). CPU seconds are process_time(): with 2 torch threads they include
OpenMP's spin-waiting, so they bound the work from above; wall seconds are printed beside them
and depend on the machine's load.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_io  # noqa: E402
cli_io.require("numpy", "torch")
import torch  # noqa: E402
import garg_model  # noqa: E402
import train  # noqa: E402

SHIPPED = ["--run-dir", "unused", "--seed", "1", "--d", "8", "--n-points", "65", "--points-curriculum", "5:4:200",
           "--dims-curriculum", "2:1:200", "--n-embd", "64", "--n-layer", "4", "--n-head", "2", "--steps", "10000",
           "--batch", "64", "--lr", "0.001", "--warmup", "200", "--final-lr-fraction", "0.1", "--bf16"]


def stages(args):
    """[(pairs, first step, steps)] of the schedule, one per distinct pairs-per-prompt run."""
    found = []
    for step in range(args.steps):
        n = train.schedule_at(args.points_curriculum, args.n_points, step)
        if found and found[-1][0] == n:
            found[-1][2] += 1
        else:
            found.append([n, step, 1])
    return [tuple(s) for s in found]


def time_stage(args, model, optimizer, first, steps):
    """-> (CPU seconds per step, wall seconds per step) over `steps` steps from `first`."""
    n = train.schedule_at(args.points_curriculum, args.n_points, first)
    batches = []
    for step in range(first, first + steps + 2):
        dims = train.schedule_at(args.dims_curriculum, args.d, step)
        batches.append((step, train.sample_batch(args.seed, step, args.batch, n, args.d, dims)))
    model.train()
    for step, (x, y) in batches[:2]:  # warm-up: oneDNN primitives for this shape
        train.train_step(model, optimizer, x, y, args.bf16)
    cpu, wall = time.process_time(), time.perf_counter()
    for step, (x, y) in batches[2:]:
        for group in optimizer.param_groups:
            group["lr"] = train.lr_at(args, step)
        train.train_step(model, optimizer, x, y, args.bf16)
    return (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps


def main(argv):
    p = cli_io.Parser(prog="stage_cost.py", description=__doc__.split("\n\n")[0], add_help=False, allow_abbrev=False)
    p.add_argument("--steps-per-stage", type=cli_io.positive_int, default=30)
    p.add_argument("--steps-last-stage", type=cli_io.positive_int, default=200)
    p.add_argument("--checkpoint", default="")
    p.add_argument("--stages", choices=("all", "last"), default="all")
    p.add_argument("--json", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    own, rest = p.parse_known_args(argv)
    if own.help:
        print(__doc__)
        return 0
    # train.py's own parser and defaults, then the shipped configuration, then the user's flags.
    args = train.parse_args(SHIPPED + [a for a in rest])
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = garg_model.GargTransformer(args.d, args.n_points, args.n_embd, args.n_layer, args.n_head)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    if own.checkpoint:
        try:  # a damaged file, a FIFO or another pickle: one line, not a traceback or a hang
            state, _ = train.load_checkpoint(own.checkpoint)
        except train.CheckpointError as error:
            print("stage_cost.py: %s" % error, file=sys.stderr)
            return 2
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    schedule = stages(args)
    measured = schedule if own.stages == "all" else schedule[-1:]
    load_before = os.getloadavg()[0]
    rows = []
    for index, (n, first, steps) in enumerate(measured):
        timed = min(steps, own.steps_last_stage if (n, first, steps) == schedule[-1] else own.steps_per_stage)
        cpu, wall = time_stage(args, model, optimizer, first, timed)
        rows.append({"pairs": n, "first_step": first, "steps_in_schedule": steps, "steps_timed": timed,
                     "cpu_seconds_per_step": cpu, "wall_seconds_per_step": wall,
                     "schedule_cpu_seconds": cpu * steps})
        print("stage %d/%d: %d pairs, steps %d..%d: %d timed, %.4f CPU s/step, %.4f wall s/step, load %.1f"
              % (index + 1, len(measured), n, first, first + steps - 1, timed, cpu, wall, os.getloadavg()[0]),
              file=sys.stderr, flush=True)
    total = sum(r["schedule_cpu_seconds"] for r in rows)
    report = {"threads": args.threads, "bf16": args.bf16, "batch": args.batch, "steps": args.steps,
              "checkpoint": own.checkpoint or None, "stages": own.stages, "torch": torch.__version__,
              "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
              "load_before": load_before, "load_after": os.getloadavg()[0], "rows": rows,
              "schedule_cpu_seconds": total if own.stages == "all" else None}
    if own.json:
        print(json.dumps(report))
        return 0
    print("| pairs | steps in schedule | steps timed | CPU s/step | wall s/step | CPU s in schedule |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| %d | %d (%d..%d) | %d | %.4f | %.4f | %.0f |" % (
            r["pairs"], r["steps_in_schedule"], r["first_step"], r["first_step"] + r["steps_in_schedule"] - 1,
            r["steps_timed"], r["cpu_seconds_per_step"], r["wall_seconds_per_step"], r["schedule_cpu_seconds"]))
    if own.stages == "all":
        print("whole schedule: %.0f CPU s (%.1f min) at %d torch thread(s); load %.1f -> %.1f"
              % (total, total / 60, args.threads, report["load_before"], report["load_after"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""Training steps/s of the garg-gpt2 model under BLAS and thread settings.

usage: speed.py [--rounds 3] [--seconds 10] [--n-points 65] [--n-embd 64] [--n-layer 4] [--n-head 2]
                [--batch 64] [--json]

Each setting runs in its own process (the BLAS is chosen when the process starts): a few warm-up
steps, then training steps at the full prompt length for --seconds (at least 2 steps). The
settings run in turn, --rounds times, so that a change in the machine's load hits all of them
alike; the table gives each one's median steps/s, its median CPU seconds per step (the work,
whatever the load), and the 1-minute load average before and after.

Inference speed against the C++ engine is not measured here: bench/peers/compare_garg.py times
both on the same weights and prompts, with PyTorch in its best configuration
(bench/peers/torch_garg.py). The training scripts' cost over a whole schedule: stage_cost.py.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_io  # noqa: E402
# Checked in the parent too, before --help, like every other tool: the parent itself only starts
# children, but without numpy or torch none of them could measure anything.
cli_io.require("numpy", "torch")

OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread"

# name, environment changes (None = remove), torch threads, bf16
SETTINGS = [
    ("reference BLAS, torch 2 threads", {"LD_LIBRARY_PATH": None}, 2, False),
    ("OpenBLAS 2 threads, torch 2 threads", {"LD_LIBRARY_PATH": OPENBLAS, "OPENBLAS_NUM_THREADS": None}, 2, False),
    ("OpenBLAS 1 thread, torch 2 threads", {"LD_LIBRARY_PATH": OPENBLAS, "OPENBLAS_NUM_THREADS": "1"}, 2, False),
    ("OpenBLAS 1 thread, torch 2 threads, OMP_WAIT_POLICY=passive",
     {"LD_LIBRARY_PATH": OPENBLAS, "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive"}, 2, False),
    ("OpenBLAS 1 thread, torch 1 thread", {"LD_LIBRARY_PATH": OPENBLAS, "OPENBLAS_NUM_THREADS": "1"}, 1, False),
    ("OpenBLAS 1 thread + CORETYPE=Haswell, torch 1 thread",
     {"LD_LIBRARY_PATH": OPENBLAS, "OPENBLAS_NUM_THREADS": "1", "OPENBLAS_CORETYPE": "Haswell"}, 1, False),
    ("bf16 autocast, OpenBLAS 1 thread, torch 2 threads", {"LD_LIBRARY_PATH": OPENBLAS, "OPENBLAS_NUM_THREADS": "1"}, 2,
     True),
    ("bf16 autocast, OpenBLAS 1 thread, torch 1 thread", {"LD_LIBRARY_PATH": OPENBLAS, "OPENBLAS_NUM_THREADS": "1"}, 1,
     True),
]


def child(args):
    """Runs in the measured process; prints one JSON line."""
    cli_io.require("numpy", "torch")
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import garg_model
    import train
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = garg_model.GargTransformer(8, args.n_points, args.n_embd, args.n_layer, args.n_head)
    x, y = train.sample_batch(0, 0, args.batch, args.n_points, 8, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def work():
        train.train_step(model, optimizer, x, y, args.bf16)
    for _ in range(2):
        work()
    count, wall, cpu = 0, time.perf_counter(), time.process_time()
    while count < 2 or time.perf_counter() - wall < args.seconds:
        work()
        count += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"per_second": count / wall, "cpu_seconds_per_item": cpu / count}))


def main(argv):
    p = cli_io.Parser(prog="speed.py", description=__doc__.split("\n\n")[0])
    count = cli_io.positive_int
    p.add_argument("--rounds", type=count, default=3)
    p.add_argument("--seconds", type=cli_io.finite_float, default=10)
    p.add_argument("--n-points", type=count, default=65)
    p.add_argument("--n-embd", type=count, default=64)
    p.add_argument("--n-layer", type=count, default=4)
    p.add_argument("--n-head", type=count, default=2)
    p.add_argument("--batch", type=count, default=64)
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=count, default=1, help=argparse.SUPPRESS)
    p.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.seconds < 0:
        p.error("argument --seconds: %r: must be >= 0" % args.seconds)
    if args.n_embd % args.n_head:
        p.error("--n-embd %d is not a multiple of --n-head %d" % (args.n_embd, args.n_head))
    if args.child:
        child(args)
        return 0
    if not os.path.exists(os.path.join(OPENBLAS, "libblas.so.3")):
        print("speed.py: %s not found (apt-get install libopenblas0-pthread)" % OPENBLAS, file=sys.stderr)
        return 2
    settings = SETTINGS
    shape = ["--n-points", str(args.n_points), "--n-embd", str(args.n_embd), "--n-layer", str(args.n_layer),
             "--n-head", str(args.n_head), "--batch", str(args.batch), "--seconds", str(args.seconds)]
    results = {name: [] for name, *_ in settings}
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, changes, threads, bf16 in settings:
            env = dict(os.environ)
            for key, value in changes.items():
                if value is None:
                    env.pop(key, None)
                else:
                    env[key] = value
            if "OPENBLAS_CORETYPE" not in changes:
                env.pop("OPENBLAS_CORETYPE", None)
                env.pop("OPENBLAS_L2_SIZE", None)
            command = [sys.executable, os.path.abspath(__file__), "--child", "--threads", str(threads)] + shape
            command += ["--bf16"] if bf16 else []
            run = subprocess.run(command, env=env, capture_output=True, text=True)
            if run.returncode != 0:  # the child's one line (e.g. a python3 without torch) or its traceback's last
                lines = run.stderr.strip().splitlines()
                print(lines[-1] if lines else "speed.py: a measuring process exited %d" % run.returncode,
                      file=sys.stderr)
                return 2 if run.returncode == 2 else 1
            results[name].append(json.loads(run.stdout.splitlines()[-1]))
    load_after = os.getloadavg()[0]
    unit = "steps/s"
    rows = [{"setting": name, unit: statistics.median(r["per_second"] for r in runs),
             "cpu_seconds": statistics.median(r["cpu_seconds_per_item"] for r in runs),
             "all": [round(r["per_second"], 4) for r in runs]} for name, runs in results.items()]
    if args.json:
        print(json.dumps({"shape": shape, "load_before": load_before,
                          "load_after": load_after, "rows": rows}))
        return 0
    print("training step, n_points %d, D %d, %d layers, %d heads, batch %d; median of %d rounds; load %.1f -> %.1f"
          % (args.n_points, args.n_embd, args.n_layer, args.n_head, args.batch, args.rounds, load_before, load_after))
    print("| setting | %s | CPU s per step | every round |" % unit)
    print("|---|---|---|---|")
    for row in rows:
        print("| %s | %.3f | %.4f | %s |" % (row["setting"], row[unit], row["cpu_seconds"], row["all"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

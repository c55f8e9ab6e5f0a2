#!/usr/bin/python3
"""PyTorch peer: the same encoder shape as `iclbench speed --model encoder:D=64,H=4,F=256,layers=4
--n 129 --queries 0 --batch 64`: pre-LN (norm_first), GELU, dropout 0, 4 layers, D = 64, 4 heads,
FFN 256, 64 prompts of 129 tokens, random weights, eval mode, inference_mode.

usage: torch_encoder.py [--threads 1,2] [--repeats 7] [--json]

For each thread count it runs every configuration that uses that many cores and reports the best
(the fair peer is PyTorch at its best on this machine):
  intra-op    one process, torch.set_num_threads(threads), the whole batch;
  processes   `threads` processes of one torch thread each, each on its share of the batch,
              started together (a barrier) and timed until the last one finishes.
BLAS: run it with OpenBLAS and OPENBLAS_NUM_THREADS=1 (bench/peers/compare_encoder.sh does):
Debian's default reference BLAS makes PyTorch several times slower, and OpenBLAS's own thread
pool on top of PyTorch's oversubscribes the 2 vCPUs. The configuration it ran under is printed.
"""
import argparse
import json
import multiprocessing
import os
import statistics
import time

import torch

PROMPTS, TOKENS, WIDTH = 64, 129, 64


def build_model():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=WIDTH, nhead=4, dim_feedforward=256, dropout=0.0,
                                             activation="gelu", norm_first=True, batch_first=True)
    return torch.nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False).eval()


def time_forwards(model, x, repeats, before=None, after=None):
    """Seconds of each of `repeats` forwards after one warm-up; before/after run around each."""
    seconds = []
    with torch.inference_mode():
        model(x)  # warm-up
        for _ in range(repeats):
            if before:
                before()
            start = time.perf_counter()
            model(x)
            if after:
                after()
            seconds.append(time.perf_counter() - start)
    return seconds


def intra_op(threads, repeats):
    torch.set_num_threads(threads)
    return time_forwards(build_model(), torch.randn(PROMPTS, TOKENS, WIDTH), repeats)


def process_worker(rank, count, repeats, barrier, out):
    torch.set_num_threads(1)
    share = PROMPTS // count + (1 if rank < PROMPTS % count else 0)
    torch.manual_seed(1 + rank)
    x = torch.randn(share, TOKENS, WIDTH)
    # Both barriers: a repeat starts when every process is ready and ends when the last is done.
    seconds = time_forwards(build_model(), x, repeats, barrier.wait, barrier.wait)
    if rank == 0:
        out.put(seconds)


def processes(count, repeats):
    context = multiprocessing.get_context("spawn")  # no torch thread pool inherited
    barrier = context.Barrier(count)
    out = context.Queue()
    workers = [context.Process(target=process_worker, args=(rank, count, repeats, barrier, out))
               for rank in range(count)]
    for worker in workers:
        worker.start()
    seconds = out.get()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError("a worker process failed")
    return seconds


def blas_info():
    config = torch.__config__.show()
    return config.split("BLAS_INFO=")[1].split(",")[0] if "BLAS_INFO=" in config else "unknown"


def loaded_blas():
    """The BLAS library this process really loaded (what LD_LIBRARY_PATH picked)."""
    try:
        with open("/proc/self/maps") as maps:
            names = {line.split()[-1] for line in maps if "blas" in line.split()[-1]}
        return sorted(names)
    except OSError:
        return []


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        candidates = [("intra-op", intra_op(threads, args.repeats))]
        if threads > 1:
            candidates.append(("processes", processes(threads, args.repeats)))
        tried = []
        for mode, seconds in candidates:
            median = statistics.median(seconds)
            tried.append({"mode": mode, "seconds_median": median, "prompts_per_second": PROMPTS / median})
        best = max(tried, key=lambda r: r["prompts_per_second"])
        results.append({"threads": threads, "mode": best["mode"], "seconds_median": best["seconds_median"],
                        "prompts_per_second": best["prompts_per_second"], "tried": tried})
    info = {"torch": torch.__version__, "blas": blas_info(), "blas_loaded": loaded_blas(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
            "interop_threads": torch.get_num_interop_threads(), "results": results}
    if args.json:
        print(json.dumps(info))
        return
    print("pytorch %s, BLAS %s (loaded: %s), OPENBLAS_NUM_THREADS=%s" % (
        info["torch"], info["blas"], ", ".join(info["blas_loaded"]) or "none", info["OPENBLAS_NUM_THREADS"]))
    for r in results:
        tried = ", ".join("%s %.1f" % (t["mode"], t["prompts_per_second"]) for t in r["tried"])
        print("threads=%d: best %s %.1f prompts/s (tried: %s)" % (r["threads"], r["mode"], r["prompts_per_second"], tried))


if __name__ == "__main__":
    main()

"""What every PyTorch peer in bench/peers/ shares: timing a forward after a warm-up, the
selection of the best configuration (each measured in fresh processes), the "two single-thread
processes on half the batch each" and "one thread on the whole batch" configurations, and the
BLAS the process really loaded.

A peer runs under OpenBLAS with OPENBLAS_NUM_THREADS=1 (its compare_*.sh selects it through
LD_LIBRARY_PATH): Debian's default reference BLAS makes PyTorch several times slower, and
OpenBLAS's own thread pool on top of PyTorch's oversubscribes the 2 vCPUs.
"""
import argparse
import concurrent.futures
import multiprocessing
import os
import queue
import statistics
import sys
import time

sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "train"))
from cli_io import Parser, positive_int, require  # noqa: E402,F401  (the peers use them as peer_common's)

require("torch")  # before this module's own import of it: the peers import this module first
import torch  # noqa: E402


# Warm-up: every cell runs forwards under torch.inference_mode (the grad mode of the timing)
# until WARM_UP_MIN have run and the last two took times within WARM_UP_AGREEMENT of each other,
# or WARM_UP_MAX have run. torch.jit's profiling executor profiles the first call and runs its
# specialised graph from the second, so three calls cover it; two equal times in a row say the
# caches and thread pools have settled. The cap keeps a loaded machine, where consecutive times
# rarely agree, from warming up for ever.
WARM_UP_MIN, WARM_UP_MAX, WARM_UP_AGREEMENT = 3, 20, 0.10


def warmed_up(seconds):
    """True once a warm-up with these forward times (seconds, in order) may stop."""
    if len(seconds) >= WARM_UP_MAX:
        return True
    if len(seconds) < WARM_UP_MIN:
        return False
    previous, last = seconds[-2:]
    return abs(last - previous) <= WARM_UP_AGREEMENT * min(last, previous)


def _seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def time_forwards(forward, repeats, before=None, after=None):
    """-> (warm-up forwards, seconds of each of `repeats` timed calls of forward()), all under
    torch.inference_mode (no autograd records); the warm-up follows warmed_up(). before/after
    run around each timed call (not the warm-up's), inside its time."""
    warm_up = []
    with torch.inference_mode():
        while not warmed_up(warm_up):
            warm_up.append(_seconds(forward))

        def timed():
            if before:
                before()
            forward()
            if after:
                after()
        return len(warm_up), [_seconds(timed) for _ in range(repeats)]


def batch_share(prompts, count, rank):
    """[first, end) of the prompts process `rank` of `count` works on."""
    base, extra = divmod(prompts, count)
    first = rank * base + min(rank, extra)
    return first, first + base + (1 if rank < extra else 0)


def in_fresh_process(function, *args):
    """function(*args) in a spawned process of its own -> its return value; its exception (also
    SystemExit) is raised here. A fresh process inherits no torch thread pool, JIT cache or
    allocator state from what this process ran before: timed one after another in one process,
    PyTorch variants slowed each other (the jit variant ran at ~90 prompts/s after eager and
    functional, ~570 alone). function must be module-level (the spawned process imports it)."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _intra_op_worker(make_forward, args, threads, repeats):
    torch.set_num_threads(threads)
    return time_forwards(make_forward(*args), repeats)


def _processes_worker(make_forward, args, rank, count, repeats, barrier, out):
    torch.set_num_threads(1)
    forward = make_forward(*args, share=(count, rank))
    # Each warms up on its own (their warm-ups may differ in length), then both barriers: a
    # repeat starts when every process is ready and ends when the last is done.
    result = time_forwards(forward, repeats, barrier.wait, barrier.wait)
    if rank == 0:
        out.put(result)


def processes(make_forward, args, count, repeats):
    """(warm-up forwards, seconds per repeat) of `count` fresh processes, each with one torch
    thread running make_forward(*args, share=(count, rank))() on its share of the batch, started
    together and timed until the last one finishes; the warm-up is rank 0's."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    out = context.Queue()
    workers = [context.Process(target=_processes_worker, args=(make_forward, args, rank, count, repeats, barrier, out))
               for rank in range(count)]
    for worker in workers:
        worker.start()
    while True:  # a worker that failed (its error is on stderr) leaves the others at a barrier
        try:
            result = out.get(timeout=1)
            break
        except queue.Empty:
            if any(worker.exitcode not in (None, 0) for worker in workers):
                for worker in workers:
                    worker.terminate()
                    worker.join()
                raise SystemExit("peer_common.processes: a worker process failed")
    for worker in workers:
        worker.join()
    return result


def select(make_forward, variants, modes, threads, repeats, prompts):
    """-> for each thread count in `threads`: the best cell and every cell tried. A cell is a
    variant (name -> the args of make_forward(*args, share=...)) in a mode: intra-op (one fresh
    process of `threads` torch threads on the whole batch) or, at 2 threads or more, processes
    (`threads` fresh single-thread processes on a share each) and single-thread (one fresh
    process of one torch thread on the whole batch, the other cores idle: a user with `threads`
    cores can always run that, so it is a candidate too; on a loaded host PyTorch at 2 threads
    once ran at 271 prompts/s against 813 at 1). Every cell runs in processes of its own, so the
    order of the cells changes nothing."""
    results = []
    for count in threads:
        tried = []
        for mode in modes:
            if mode in ("processes", "single-thread") and count == 1:  # both are intra-op at 1 thread
                continue
            for variant, args in variants.items():
                if mode == "processes":
                    warm_up, seconds = processes(make_forward, args, count, repeats)
                else:
                    torch_threads = 1 if mode == "single-thread" else count
                    warm_up, seconds = in_fresh_process(_intra_op_worker, make_forward, args, torch_threads, repeats)
                median = statistics.median(seconds)
                tried.append({"variant": variant, "mode": mode, "warm_up": warm_up, "seconds_median": median,
                              "prompts_per_second": prompts / median})
        if tried:
            best = max(tried, key=lambda r: r["prompts_per_second"])
            results.append(dict(best, threads=count, tried=tried))
    return results


def thread_counts(text):
    """argparse type of --threads: "1,2" -> [1, 2], each an integer >= 1 in decimal digits."""
    try:
        counts = [positive_int(t) for t in text.split(",")]
    except argparse.ArgumentTypeError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("%r is not a comma-separated list of thread counts >= 1" % text)
    return counts


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


def configuration():
    """What the measurements ran under, for the printed header and --json."""
    return {"torch": torch.__version__, "blas": blas_info(), "blas_loaded": loaded_blas(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available()}

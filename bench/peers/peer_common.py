"""What every PyTorch peer in bench/peers/ shares: timing a forward, the "two single-thread
processes on half the batch each" configuration, and the BLAS the process really loaded.

A peer runs under OpenBLAS with OPENBLAS_NUM_THREADS=1 (its compare_*.sh selects it through
LD_LIBRARY_PATH): Debian's default reference BLAS makes PyTorch several times slower, and
OpenBLAS's own thread pool on top of PyTorch's oversubscribes the 2 vCPUs.
"""
import multiprocessing
import os
import time

import torch


def time_forwards(forward, repeats, before=None, after=None):
    """Seconds of each of `repeats` calls of forward() after one warm-up, under
    torch.inference_mode (no autograd records); before/after run around each, untimed."""
    seconds = []
    with torch.inference_mode():
        forward()  # warm-up (and the JIT's profiling runs are done by the caller)
        for _ in range(repeats):
            if before:
                before()
            start = time.perf_counter()
            forward()
            if after:
                after()
            seconds.append(time.perf_counter() - start)
    return seconds


def batch_share(prompts, count, rank):
    """[first, end) of the prompts process `rank` of `count` works on."""
    base, extra = divmod(prompts, count)
    first = rank * base + min(rank, extra)
    return first, first + base + (1 if rank < extra else 0)


def _process_worker(make_forward, args, rank, count, repeats, barrier, out):
    torch.set_num_threads(1)
    forward = make_forward(*args, share=(count, rank))
    # Both barriers: a repeat starts when every process is ready and ends when the last is done.
    seconds = time_forwards(forward, repeats, barrier.wait, barrier.wait)
    if rank == 0:
        out.put(seconds)


def processes(make_forward, args, count, repeats):
    """Seconds per repeat of `count` processes, each with one torch thread running
    make_forward(*args, share=(count, rank))() on its share of the batch, started together and
    timed until the last one finishes. make_forward must be a module-level function (spawned
    processes import it); it returns the forward to time."""
    context = multiprocessing.get_context("spawn")  # no torch thread pool inherited
    barrier = context.Barrier(count)
    out = context.Queue()
    workers = [context.Process(target=_process_worker, args=(make_forward, args, rank, count, repeats, barrier, out))
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


def configuration():
    """What the measurements ran under, for the printed header and --json."""
    return {"torch": torch.__version__, "blas": blas_info(), "blas_loaded": loaded_blas(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available()}

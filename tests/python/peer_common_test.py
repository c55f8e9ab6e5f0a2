#!/usr/bin/python3
"""Unit tests of bench/peers/peer_common.py, the PyTorch peers' shared timing and selection:

  * warmed_up's stopping rule on exact series;
  * select() runs every cell in processes of its own (a forward built twice in one process
    fails) and warms up and times under torch.inference_mode (a forward run outside it fails);
    at 2 threads one torch thread on the whole batch is a candidate too, and wins when fastest;
  * in_fresh_process raises the child's exception here, processes() a failed worker's;
    batch_share and thread_counts.
"""
import argparse
import os
import sys
import time
import unittest

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "peers"))
import peer_common  # noqa: E402

BUILT = []  # the forwards this process built (each spawned process starts with none)


def make_forward(seconds, share=(1, 0)):
    """A forward that sleeps `seconds` and fails if this process built one before or if it runs
    with autograd recording (not under inference_mode)."""
    if BUILT:
        raise RuntimeError("process %d built a second forward" % os.getpid())
    BUILT.append(share)

    def forward():
        if not torch.is_inference_mode_enabled():
            raise RuntimeError("forward outside torch.inference_mode")
        time.sleep(seconds)
    return forward


def one_thread_is_fastest(share=(1, 0)):
    """A forward as PyTorch ran on a loaded host (271 prompts/s at 2 threads, 813 at 1):
    here 10 times faster on one torch thread over the whole batch than on 2 intra-op threads or in
    two processes on half the batch each."""
    return make_forward(0.01 if torch.get_num_threads() == 1 and share == (1, 0) else 0.1, share)


def fails(message):
    raise SystemExit(message)


def fails_on_rank_1(share):
    if share[1] == 1:
        raise SystemExit("rank 1 fails on purpose (peer_common_test.py)")
    return lambda: None


class WarmedUp(unittest.TestCase):
    def test_rule(self):
        self.assertFalse(peer_common.warmed_up([]))
        self.assertFalse(peer_common.warmed_up([1.0, 1.0]))  # fewer than WARM_UP_MIN
        self.assertTrue(peer_common.warmed_up([5.0, 1.0, 1.0]))
        self.assertTrue(peer_common.warmed_up([5.0, 1.0, 1.09]))  # within 10% of the smaller: agree
        self.assertFalse(peer_common.warmed_up([5.0, 1.0, 1.11]))
        self.assertFalse(peer_common.warmed_up([5.0, 1.11, 1.0]))
        self.assertFalse(peer_common.warmed_up([1.0, 1.0, 5.0]))  # only the last two count
        noisy = [1.0, 2.0] * peer_common.WARM_UP_MAX
        self.assertFalse(peer_common.warmed_up(noisy[:peer_common.WARM_UP_MAX - 1]))
        self.assertTrue(peer_common.warmed_up(noisy[:peer_common.WARM_UP_MAX]))  # the cap


class Select(unittest.TestCase):
    def test_every_cell_fresh_under_inference_mode(self):
        # 10 and 100 ms: a tenth of the rate, far outside the noise of a sleep on a loaded
        # machine, so the best is "fast" in both thread counts.
        results = peer_common.select(make_forward, {"slow": (0.1,), "fast": (0.01,)},
                                     ("intra-op", "processes"), [1, 2], 3, 64)
        self.assertEqual([r["threads"] for r in results], [1, 2])
        self.assertEqual([(t["variant"], t["mode"]) for t in results[0]["tried"]],
                         [("slow", "intra-op"), ("fast", "intra-op")])
        self.assertEqual(len(results[1]["tried"]), 4)
        for r in results:
            self.assertEqual(r["variant"], "fast")
            self.assertEqual(r["prompts_per_second"], max(t["prompts_per_second"] for t in r["tried"]))
            for t in r["tried"]:
                self.assertGreaterEqual(t["warm_up"], peer_common.WARM_UP_MIN)
                self.assertLessEqual(t["warm_up"], peer_common.WARM_UP_MAX)
                self.assertAlmostEqual(t["prompts_per_second"], 64 / t["seconds_median"])
        self.assertEqual(BUILT, [])  # nothing ran here

    def test_one_thread_on_the_whole_batch_is_a_candidate(self):
        # A user with 2 threads can run PyTorch on 1: the best at 2 threads was 3x slower without it.
        results = peer_common.select(one_thread_is_fastest, {"only": ()},
                                     ("intra-op", "processes", "single-thread"), [1, 2], 3, 64)
        self.assertEqual([t["mode"] for t in results[0]["tried"]], ["intra-op"])  # all the same at 1
        self.assertEqual([t["mode"] for t in results[1]["tried"]], ["intra-op", "processes", "single-thread"])
        self.assertEqual(results[1]["mode"], "single-thread")
        self.assertEqual(BUILT, [])


class Helpers(unittest.TestCase):
    def test_fresh_process_raises_here(self):
        with self.assertRaisesRegex(SystemExit, "from the child"):
            peer_common.in_fresh_process(fails, "from the child")

    def test_failed_worker_is_an_error(self):
        # Rank 1 fails while rank 0 waits at the first barrier: an error, not a hang.
        with self.assertRaisesRegex(SystemExit, "a worker process failed"):
            peer_common.processes(fails_on_rank_1, (), 2, 3)

    def test_batch_share(self):
        for prompts in (1, 63, 64, 65):
            for count in (1, 2, 3):
                shares = [peer_common.batch_share(prompts, count, rank) for rank in range(count)]
                self.assertEqual(shares[0][0], 0)
                self.assertEqual(shares[-1][1], prompts)
                for (_, end), (first, _) in zip(shares, shares[1:]):
                    self.assertEqual(end, first)
                sizes = [end - first for first, end in shares]
                self.assertLessEqual(max(sizes) - min(sizes), 1)

    def test_thread_counts(self):
        self.assertEqual(peer_common.thread_counts("1,2"), [1, 2])
        # Decimal digits only: int() would take " 1", "+2" and "1_0".
        for bad in ("", "0", "1,x", "2,-1", "1,,2", " 1,2", "1, 2", "+1", "1_0", "\u0661"):
            with self.assertRaises(argparse.ArgumentTypeError):
                peer_common.thread_counts(bad)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/python3
"""Unit tests of bench/benchstats.py, each fast path against a slow twin or an exact value.

  * u_test against compare.py's own calc_utest (Debian's libbenchmark-tools);
  * the median interval's coverage against a count of subsets, and against a simulation;
  * change points on seeded series with planted steps (and none);
  * compare(): units converted, names matched, added and removed listed.
"""
import math
import os
import random
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
sys.path.insert(0, HERE)
import benchstats  # noqa: E402
from gb_json import GATED, run_json  # noqa: E402


def series(rng, medians, repetitions=9, noise=0.03):
    """One group per commit: `repetitions` samples of median * exp(noise * N(0, 1))."""
    return [[m * math.exp(noise * rng.gauss(0, 1)) for _ in range(repetitions)] for m in medians]


class UTest(unittest.TestCase):
    def test_matches_compare_py(self):
        sys.path.insert(0, "/usr/share/benchmark")
        from gbench import report
        rng = random.Random(3)
        for shift in (1.0, 1.05, 1.3):
            old = [rng.lognormvariate(0, 0.05) for _ in range(9)]
            new = [shift * rng.lognormvariate(0, 0.05) for _ in range(11)]
            _, _, expected = report.calc_utest([old, new], [old, new])
            self.assertAlmostEqual(benchstats.u_test(old, new), expected, places=12)

    def test_all_tied_is_one(self):
        self.assertEqual(benchstats.u_test([1.0] * 9, [1.0] * 9), 1.0)


class MedianInterval(unittest.TestCase):
    def test_coverage_counts_subsets(self):
        for n in range(1, 31):
            low, high, coverage = benchstats.median_interval(list(range(n)))
            k = low + 1  # the interval is (x_(k), x_(n+1-k))
            self.assertEqual(high, n - k)
            # P(k <= B <= n - k) for B ~ Binomial(n, 1/2), by counting subsets.
            exact = sum(math.comb(n, j) for j in range(k, n - k + 1)) / 2 ** n
            self.assertAlmostEqual(coverage, exact, places=12)
            if n >= 6:
                self.assertGreaterEqual(exact, 0.95)
                wider = sum(math.comb(n, j) for j in range(k + 1, n - k)) / 2 ** n
                self.assertLess(wider, 0.95, "not the narrowest interval at n = %d" % n)
        self.assertEqual(benchstats.median_interval([5, 1, 9, 3, 7, 2, 8, 4, 6])[:2], (2, 8))

    def test_coverage_by_simulation(self):
        # Exponential samples (skewed): the interval of 9 must hold the true median ln 2 with
        # probability 0.9609; over 20000 trials the standard error is 0.0014, so 0.006 is > 4 sigma.
        rng = random.Random(11)
        trials = 20000
        hits = 0
        for _ in range(trials):
            low, high, _ = benchstats.median_interval([rng.expovariate(1.0) for _ in range(9)])
            hits += low <= math.log(2) <= high
        self.assertAlmostEqual(hits / trials, 0.9609375, delta=0.006)


class ChangePoints(unittest.TestCase):
    def test_one_step(self):
        for seed in range(10):
            groups = series(random.Random(seed), [1.0] * 6 + [1.3] * 6)
            found = benchstats.change_points(groups)
            self.assertEqual([c.index for c in found], [6], "seed %d" % seed)
            self.assertAlmostEqual(found[0].change, 0.3, delta=0.05)

    def test_step_at_the_last_commit(self):
        for seed in range(10):
            groups = series(random.Random(seed), [1.0] * 9 + [1.3])
            self.assertEqual([c.index for c in benchstats.change_points(groups)], [9], "seed %d" % seed)

    def test_up_then_down(self):
        for seed in range(10):
            groups = series(random.Random(seed), [1.0] * 4 + [1.25] * 5 + [0.9] * 4)
            found = benchstats.change_points(groups)
            self.assertEqual([c.index for c in found], [4, 9], "seed %d" % seed)
            self.assertGreater(found[0].change, 0)
            self.assertLess(found[1].change, 0)

    def test_no_step(self):
        for seed in range(20):
            self.assertEqual(benchstats.change_points(series(random.Random(seed), [1.0] * 12)), [], "seed %d" % seed)

    def test_false_positive_rate_without_the_effect_threshold(self):
        # With no minimum effect only the corrected p-value stands between noise and a change
        # point: over 300 step-free series of 12 independent groups the rate must stay near
        # the nominal 1% or below (Bonferroni is conservative). Without the correction the best
        # of 11 boundaries passes p < 0.01 several times as often. Expected count <= 3; the
        # bound 9 is > 3 standard deviations above it.
        rng = random.Random(17)
        hits = sum(bool(benchstats.change_points(series(rng, [1.0] * 12), min_effect=0.0)) for _ in range(300))
        self.assertLessEqual(hits, 9)

    def test_step_below_the_minimum_effect(self):
        # 5% is real (the U test sees it) but below the gate's 10%: not a change point.
        for seed in range(10):
            groups = series(random.Random(seed), [1.0] * 6 + [1.05] * 6, noise=0.01)
            self.assertEqual(benchstats.change_points(groups), [], "seed %d" % seed)


class Compare(unittest.TestCase):
    def test_units_and_names(self):
        base = benchstats.parse_run(run_json(GATED, seed=1), "base")
        moved = dict(GATED)
        moved["softmax/new"] = moved.pop("softmax/iclbench_f32")
        new = benchstats.parse_run(run_json(moved, seed=2, units={n: "ms" for n in moved}), "new")
        report = benchstats.compare(base, new)
        self.assertEqual(report.removed, ["softmax/iclbench_f32"])
        self.assertEqual(report.added, ["softmax/new"])
        self.assertEqual([r.name for r in report.rows],
                         [n for n in GATED if n not in ("calibration/gemm_f32_256", "softmax/iclbench_f32")])
        for row in report.rows:
            self.assertLess(abs(row.change), 0.05)
            self.assertEqual(row.verdict, "ok")

    def test_verdicts_are_symmetric_in_ratio(self):
        slow = benchstats.Difference("x", 0.10, 0.001, (9, 9))
        fast = benchstats.Difference("x", 1 / 1.1 - 1, 0.001, (9, 9))
        self.assertTrue(slow.regressed and not slow.improved)
        self.assertTrue(fast.improved and not fast.regressed)
        self.assertFalse(benchstats.Difference("x", 0.5, 0.02, (9, 9)).regressed)


if __name__ == "__main__":
    unittest.main(verbosity=2)

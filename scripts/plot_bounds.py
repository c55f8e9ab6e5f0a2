#!/usr/bin/python3
"""Plots of an `iclbench bounds` run: reads DIR/points.csv and DIR/fits.json, writes PNGs in DIR.

usage: plot_bounds.py DIR [PARENT_PID]      (Debian's python3-matplotlib; no project code)

Given PARENT_PID (iclbench passes its own), the script ends when that process ends, however it
ends: iclbench starts it with posix_spawn, which cannot ask for that, so the script asks the
kernel itself before anything slow.

Every PNG is drawn into a hidden temporary file of iclbench's naming (.NAME.iclbench-tmp.PID.py) and the
set is renamed into place only once all are drawn: an interrupted run leaves the earlier PNGs
or none, never a truncated one. Without matplotlib it says so in one line and exits with 3.
"""
import csv
import fcntl
import json
import math
import os
import sys

NO_MATPLOTLIB = 3  # known to src/bounds/report.cpp


def die_with_parent(parent_pid):
    """SIGKILL this process when its parent ends (Linux PR_SET_PDEATHSIG); if the parent is
    already gone (reparented before the request), end now."""
    import ctypes
    import signal
    PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(128 + signal.SIGKILL)


if len(sys.argv) > 2:
    die_with_parent(int(sys.argv[2]))

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: E402
except ImportError as error:
    sys.stderr.write("bounds: warning: plots were not drawn: %s has no matplotlib (%s; Debian: "
                     "apt-get install python3-matplotlib)\n" % (sys.executable, error))
    sys.exit(NO_MATPLOTLIB)


def is_averaging(learner):
    return learner == "avg" or learner == "gd-ls:L=1" or learner.startswith("gd-ls:L=1,")


def interval_text(value):
    """'1.12 [1.04, 1.2]' from fits.json's {estimate, lo, hi} (a null end prints as ?)."""
    def g(x):
        return "?" if x is None else "%.3g" % x
    return "%s [%s, %s]" % (g(value["estimate"]), g(value["lo"]), g(value["hi"]))


def error_bars(ys, intervals, unbounded):
    """matplotlib's yerr for values `ys` with fits.json intervals [lo, hi]: the lengths below and
    above each value; a null lo draws nothing below, a null hi (unbounded) reaches `unbounded`
    times the value (1: nothing above)."""
    below = [max(y - (y if lo is None else lo), 0) for y, (lo, _) in zip(ys, intervals)]
    above = [max((y * unbounded if hi is None else hi) - y, 0) for y, (_, hi) in zip(ys, intervals)]
    return [below, above]


def slope_text(table):
    return interval_text(table["eps_slope"]) if table.get("fit_valid") else "(no fit)"


def main():
    out = sys.argv[1]
    staged = []  # (temporary path, final path, open handle holding its lock)

    def save(fig, name):
        final = os.path.join(out, name)
        temp = os.path.join(out, ".%s.iclbench-tmp.%d.py" % (name, os.getpid()))
        # An exclusive flock on the temporary until it is renamed or removed, as iclbench holds on
        # its own: its stale-temp cleanup removes a temporary only when it can take that lock (a
        # run in another pid namespace sees this pid as gone).
        handle = open(temp, "wb")
        staged.append((temp, final, handle))
        fcntl.flock(handle, fcntl.LOCK_EX)
        fig.savefig(handle, dpi=110, format="png")
        handle.flush()
        plt.close(fig)

    try:
        draw(out, save)
        for temp, final, _ in staged:
            os.replace(temp, final)
    finally:
        for temp, _, handle in staged:
            if os.path.exists(temp):
                os.remove(temp)
            handle.close()


def draw(out, save):
    rows = list(csv.DictReader(open(os.path.join(out, "points.csv"))))
    fits = json.load(open(os.path.join(out, "fits.json")))
    config = json.load(open(os.path.join(out, "config.json")))
    q_label = "%g-quantile over tasks" % (1 - config["delta"])
    regime_a = fits["regime_a"]
    learners = list(regime_a)

    # err vs N (regime A), one panel per learner, one line per d, the quantile with its 95%
    # bootstrap interval on every point; for averaging learners its closed-form quantile beside.
    fig, axes = plt.subplots(1, len(learners), figsize=(4 * len(learners), 3.6), squeeze=False)
    for ax, learner in zip(axes[0], learners):
        for d in config["d_grid"]:
            pts = [r for r in rows if r["regime"] == "A" and r["learner"] == learner
                   and not r["metric"].startswith("dis") and int(r["d"]) == d]
            n = [int(r["n"]) for r in pts]
            q = [max(float(r["quantile"]), 1e-4) for r in pts]
            lo = [max(float(r["quantile_lo"]), 1e-4) for r in pts]
            hi = [max(float(r["quantile_hi"]), 1e-4) for r in pts]
            bars = ax.errorbar(n, q, yerr=[[a - b for a, b in zip(q, lo)], [b - a for a, b in zip(q, hi)]],
                               fmt="o-", ms=3, capsize=1.5, label="d=%d" % d)
            if is_averaging(learner):
                ax.plot(n, [max(float(r["theory_averaging_quantile"]), 1e-4) for r in pts], ":",
                        color=bars[0].get_color())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(learner, fontsize=8)
        ax.set_xlabel("N")
        ax.set_ylabel("err (%s)" % q_label, fontsize=7)
        ax.legend(fontsize=6)
    fig.suptitle("Regime A: error vs N, 95%% bootstrap intervals (dotted: averaging closed form, "
                 "chi2 quantile)", fontsize=8)
    fig.tight_layout()
    save(fig, "err_vs_n.png")

    # n* vs d and vs 1/tan(pi eps) (the fits' link), with intervals; on the eps plot the fitted
    # slope and the learner's theory slope drawn through the data's centre.
    for name, x_key, x_label in (("nstar_vs_d.png", "d", "d"),
                                 ("nstar_vs_eps.png", "eps", "1/tan(pi eps)")):
        fig, axes = plt.subplots(1, len(learners), figsize=(4 * len(learners), 3.6), squeeze=False)
        for ax, learner in zip(axes[0], learners):
            entry = regime_a[learner]["err"]
            table = entry["n_star"]
            groups = sorted({e["eps" if x_key == "d" else "d"] for e in table})
            for g in groups:
                pts = [e for e in table if e["eps" if x_key == "d" else "d"] == g and e["n_star"] is not None]
                xs = [e["d"] if x_key == "d" else 1 / math.tan(math.pi * e["eps"]) for e in pts]
                if not xs:
                    continue
                ys = [e["n_star"] for e in pts]
                bars = ax.errorbar(xs, ys, yerr=error_bars(ys, [e["ci"] for e in pts], 10),
                                   fmt="o-", ms=3, capsize=1.5, label=("eps=%g" if x_key == "d" else "d=%g") % g)
                if x_key == "eps" and entry.get("fit_valid"):
                    x0, y0 = math.exp(sum(map(math.log, xs)) / len(xs)), math.exp(sum(map(math.log, ys)) / len(ys))
                    span = [min(xs), max(xs)]
                    theory = entry.get("theory_eps_slope")
                    if theory is not None:
                        ax.plot(span, [y0 * (x / x0) ** theory for x in span], ":", color=bars[0].get_color())
            ax.set_xscale("log")
            ax.set_yscale("log")
            if entry.get("fit_valid"):
                theory = entry.get("theory_eps_slope")
                ax.set_title("%s\nn* ~ d^%.2f tan(pi eps)^-%.2f [%.2f, %.2f]%s\nrate %s, O(d/eps) %s" % (
                    learner, entry["d_slope"]["estimate"], entry["eps_slope"]["estimate"],
                    entry["eps_slope"]["lo"] or float("nan"), entry["eps_slope"]["hi"] or float("nan"),
                    "" if theory is None else " (theory %.2f, dotted)" % theory, entry["rate"],
                    "holds" if entry["upper_bound_holds"] else "not covered"), fontsize=7)
            else:
                ax.set_title(learner, fontsize=8)
            ax.set_xlabel(x_label)
            ax.set_ylabel("n*")
            ax.legend(fontsize=6)
        fig.tight_layout()
        save(fig, name)

    # gd-hinge against the ERM head on the same tasks (the config's hinge grid): left, n* of both
    # against the link with intervals and a guide of slope 1 (the rate ERM has); right, the
    # paired ratio n*(gd-hinge)/n*(ERM) with its interval, 1 and the geometric mean beside it.
    hinge = fits.get("hinge")
    if hinge:
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
        colours = {}
        for key, style, name in (("err", "o-", hinge["learner"]), ("reference_err", "s--", hinge["reference"])):
            table = hinge[key]["n_star"]
            for d in sorted({e["d"] for e in table}):
                # NaN where there is no n* (not reached, undetermined, or below the grid): a gap.
                pts = [e for e in table if e["d"] == d]
                shown = [e["n_star"] is not None and not e["below_grid"] for e in pts]
                if not any(shown):
                    continue
                nan = float("nan")
                xs = [1 / math.tan(math.pi * e["eps"]) for e in pts]
                ys = [e["n_star"] if ok else nan for e, ok in zip(pts, shown)]
                bars = left.errorbar(xs, ys, yerr=error_bars(ys, [e["ci"] for e in pts], 10),
                                     fmt=style, ms=4, capsize=2, color=colours.get(d),
                                     label="%s, d=%d" % ("gd-hinge" if key == "err" else name, d))
                colours.setdefault(d, bars[0].get_color())
        xs_all = [1 / math.tan(math.pi * e) for e in config["hinge"]["eps_grid"]]
        ref = [e for e in hinge["reference_err"]["n_star"] if e["n_star"] is not None]
        if ref:
            x0 = math.exp(sum(math.log(1 / math.tan(math.pi * e["eps"])) for e in ref) / len(ref))
            y0 = math.exp(sum(math.log(e["n_star"]) for e in ref) / len(ref))
            span = [min(xs_all), max(xs_all)]
            left.plot(span, [y0 * x / x0 for x in span], ":", color="grey", label="slope 1 (d/eps)")
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xlabel("1/tan(pi eps)")
        left.set_ylabel("n* (%s of the error)" % q_label)
        difference = hinge["eps_slope_difference"]
        left.set_title("%s (solid) and %s (dashed), same tasks\neps-slopes %s and %s; difference %s" % (
            hinge["learner"], hinge["reference"], slope_text(hinge["err"]), slope_text(hinge["reference_err"]),
            interval_text(difference)), fontsize=9)
        left.legend(fontsize=8)
        for d in sorted({a["d"] for a in hinge["n_star_ratio"]}):
            # Every eps of the grid, NaN where no ratio: the line breaks at a gap, not bridging it.
            pts = [a for a in hinge["n_star_ratio"] if a["d"] == d]
            if all(a["ratio"] is None for a in pts):
                continue
            nan = float("nan")
            xs = [1 / math.tan(math.pi * a["eps"]) for a in pts]
            ys = [nan if a["ratio"] is None else a["ratio"] for a in pts]
            right.errorbar(xs, ys, yerr=error_bars(ys, [a["ci"] for a in pts], 1),
                           fmt="o-", ms=4, capsize=2, color=colours.get(d), label="d=%d" % d)
        right.axhline(1.0, color="grey", ls=":", label="1 (same n*)")
        mean = hinge["mean_ratio"]
        if mean["estimate"] is not None:
            right.axhline(mean["estimate"], color="black", ls="--", lw=1,
                          label="geometric mean %s" % interval_text(mean))
            if mean["lo"] is not None and mean["hi"] is not None:
                right.axhspan(mean["lo"], mean["hi"], color="black", alpha=0.08)
        right.set_xscale("log")
        right.set_xlabel("1/tan(pi eps)")
        right.set_ylabel("n*(gd-hinge) / n*(%s), paired 95%% interval" % hinge["reference"])
        right.set_title("A rate difference shows as a trend in eps; a constant as a level\n"
                        "(missing points: not reached, or undetermined by unconverged tasks)", fontsize=9)
        right.legend(fontsize=8)
        fig.tight_layout()
        save(fig, "hinge.png")

    # Regime B: the disagreement's quantile against k, per learner and context policy, per d.
    if config["k_grid"]:
        policies = sorted({(r["learner"], r["context"]) for r in rows if r["regime"] == "B"})
        fig, axes = plt.subplots(1, max(1, len(policies)), figsize=(5 * max(1, len(policies)), 3.6), squeeze=False)
        for ax, (learner, context) in zip(axes[0], policies):
            for d in config["d_grid"]:
                pts = [r for r in rows if r["regime"] == "B" and r["learner"] == learner and r["context"] == context
                       and r["metric"].startswith("dis") and int(r["d"]) == d]
                if pts:
                    ax.loglog([int(r["k"]) for r in pts], [max(float(r["quantile"]), 1e-4) for r in pts],
                              "o-", ms=3, label="d=%d" % d)
            ax.set_title("Regime B: %s, %s:k, S=%d" % (learner[:24], context, config["regime_b_s"]), fontsize=8)
            ax.set_xlabel("k")
            ax.set_ylabel("dis (%s)" % q_label, fontsize=7)
            ax.legend(fontsize=6)
        fig.tight_layout()
        save(fig, "regime_b.png")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Plots of an `iclbench bounds` run: reads DIR/points.csv and DIR/fits.json, writes PNGs in DIR.

usage: plot_bounds.py DIR      (Debian's python3-matplotlib; no project code)

Every PNG is drawn into a hidden temporary file of iclbench's naming (.NAME.tmp.PID.py) and the
set is renamed into place only once all are drawn: an interrupted run leaves the earlier PNGs
or none, never a truncated one. Without matplotlib it says so in one line and exits with 3.
"""
import csv
import json
import math
import os
import sys

NO_MATPLOTLIB = 3  # known to src/bounds/report.cpp

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: E402
except ImportError as error:
    sys.stderr.write("bounds: warning: plots were not drawn: %s has no matplotlib (%s; Debian: "
                     "apt-get install python3-matplotlib)\n" % (sys.executable, error))
    sys.exit(NO_MATPLOTLIB)


def main():
    out = sys.argv[1]
    staged = []  # (temporary path, final path)

    def save(fig, name):
        final = os.path.join(out, name)
        temp = os.path.join(out, ".%s.tmp.%d.py" % (name, os.getpid()))
        staged.append((temp, final))
        fig.savefig(temp, dpi=110, format="png")
        plt.close(fig)

    try:
        draw(out, save)
        for temp, final in staged:
            os.replace(temp, final)
    finally:
        for temp, _ in staged:
            if os.path.exists(temp):
                os.remove(temp)


def draw(out, save):
    rows = list(csv.DictReader(open(os.path.join(out, "points.csv"))))
    fits = json.load(open(os.path.join(out, "fits.json")))
    config = json.load(open(os.path.join(out, "config.json")))
    q_label = "%g-quantile over tasks" % (1 - config["delta"])
    learners = [name for name in fits if name != "theory"]

    # err vs N (regime A), one panel per learner, one line per d, with the averaging closed form.
    fig, axes = plt.subplots(1, len(learners), figsize=(4 * len(learners), 3.6), squeeze=False)
    for ax, learner in zip(axes[0], learners):
        for d in config["d_grid"]:
            pts = [r for r in rows if r["regime"] == "A" and r["learner"] == learner
                   and not r["metric"].startswith("dis") and int(r["d"]) == d]
            n = [int(r["n"]) for r in pts]
            line, = ax.loglog(n, [max(float(r["quantile"]), 1e-4) for r in pts], "o-", ms=3, label="d=%d" % d)
            ax.loglog(n, [max(float(r["theory_averaging"]), 1e-4) for r in pts], ":", color=line.get_color())
        ax.set_title(learner, fontsize=8)
        ax.set_xlabel("N")
        ax.set_ylabel("err (%s)" % q_label, fontsize=7)
        ax.legend(fontsize=6)
    fig.suptitle("Regime A: error vs N (dotted: averaging closed form sqrt((d-1)/(2 pi N)), mean)", fontsize=8)
    fig.tight_layout()
    save(fig, "err_vs_n.png")

    # n* vs d and vs 1/eps.
    for name, x_key, x_label in (("nstar_vs_d.png", "d", "d"), ("nstar_vs_eps.png", "eps", "1/eps")):
        fig, axes = plt.subplots(1, len(learners), figsize=(4 * len(learners), 3.6), squeeze=False)
        for ax, learner in zip(axes[0], learners):
            table = fits[learner]["err"]["n_star"]
            groups = sorted({e["eps" if x_key == "d" else "d"] for e in table})
            for g in groups:
                pts = [e for e in table if e["eps" if x_key == "d" else "d"] == g and e["n_star"] is not None]
                xs = [e["d"] if x_key == "d" else 1 / e["eps"] for e in pts]
                if xs:
                    ax.loglog(xs, [e["n_star"] for e in pts], "o-", ms=3,
                              label=("eps=%g" if x_key == "d" else "d=%g") % g)
            fit = fits[learner]["err"]["fit"]
            if fit["valid"]:
                ax.set_title("%s\nn* ~ d^%.2f eps^-%.2f" % (learner, fit["b"], fit["c"]), fontsize=8)
            else:
                ax.set_title(learner, fontsize=8)
            ax.set_xlabel(x_label)
            ax.set_ylabel("n*")
            ax.legend(fontsize=6)
        fig.tight_layout()
        save(fig, name)

    # Regime B: err vs N per k (transformers and heads), first d of the grid and the largest.
    if config["k_grid"]:
        ds = sorted({config["d_grid"][0], config["d_grid"][-1]})
        fig, axes = plt.subplots(1, len(ds), figsize=(5 * len(ds), 3.6), squeeze=False)
        for ax, d in zip(axes[0], ds):
            for learner in learners:
                for k in config["k_grid"]:
                    pts = [r for r in rows if r["regime"] == "B" and r["learner"] == learner
                           and not r["metric"].startswith("dis") and int(r["d"]) == d and int(r["k"]) == k]
                    if pts:
                        ax.loglog([int(r["n"]) for r in pts], [max(float(r["quantile"]), 1e-4) for r in pts],
                                  "o-", ms=3, label="%s k=%d" % (learner[:18], k))
            ax.set_title("Regime B (%s:k), d=%d" % (config["regime_b_context"], d), fontsize=8)
            ax.set_xlabel("N")
            ax.set_ylabel("err (%s)" % q_label, fontsize=7)
            ax.legend(fontsize=5)
        fig.tight_layout()
        save(fig, "regime_b.png")


if __name__ == "__main__":
    main()

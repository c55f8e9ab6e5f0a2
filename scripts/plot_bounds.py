#!/usr/bin/python3
"""Plots of an `iclbench bounds` run: reads DIR/points.csv and DIR/fits.json, writes PNGs in DIR.

usage: plot_bounds.py DIR      (Debian's python3-matplotlib; no project code)
"""
import csv
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    out = sys.argv[1]
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
    fig.savefig(os.path.join(out, "err_vs_n.png"), dpi=110)

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
        fig.savefig(os.path.join(out, name), dpi=110)

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
        fig.savefig(os.path.join(out, "regime_b.png"), dpi=110)


if __name__ == "__main__":
    main()

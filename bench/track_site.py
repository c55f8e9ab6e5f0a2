"""The static dashboard of bench/track.py (`track.py publish DIR`).

DIR/index.html                       per machine: the latest change points (regressions and
                                     improvements), an overview plot, every benchmark's latest step
DIR/<machine>/<benchmark>.html       normalised time against commit order: medians with their
                                     distribution-free 95% intervals, the piecewise-constant fit
                                     between change points, change points marked and linked
DIR/<machine>/commits.html           every stored commit: status, reason, change points there

Plain HTML and CSS with inline SVG drawn by matplotlib: no script, nothing fetched from the
network, so it opens from the file system or any static server. Everything shown is computed
by benchstats (the gate's statistics); the same results give the same bytes.
"""
import html
import io
import os
import re
import shutil
import statistics
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import benchstats  # noqa: E402
from benchstats import InputError, printable  # noqa: E402

MARKER = ".iclbench-track-site"
SLOWER, FASTER, POINT, FIT, MISSING = "#c0392b", "#1e8449", "#1f5fa8", "#666666", "#aaaaaa"
LATEST_ROWS = 20
PROVISIONAL = ("<span class=\"muted\">at the latest measured commit only: confirm with "
               "<code>track.py continuous</code></span>")

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 0;
       color: #222; background: #fff; }
header { background: #24384f; color: #fff; padding: 0.7em 1.2em; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
main { padding: 0.5em 1.2em 2em; max-width: 1100px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { background: #f3f5f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .sha { font-family: "DejaVu Sans Mono", monospace; font-size: 0.92em; }
.slower { color: #c0392b; font-weight: 600; } .faster { color: #1e8449; font-weight: 600; }
.muted { color: #777; } .plot svg { max-width: 100%; height: auto; }
tr:target { background: #fff4c2; }
"""


def escape(text):
    return html.escape(str(text), quote=True)


def slug(name):
    """A file name for `name`: readable, and unique through a short hash."""
    import hashlib
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "benchmark"
    return "%s-%s" % (readable, hashlib.sha1(name.encode()).hexdigest()[:8])


def page(title, body, root):
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>%s</title><style>%s</style></head>\n<body><header><a href=\"%sindex.html\">"
            "iclbench regression tracking</a></header>\n<main>\n%s\n</main></body></html>\n"
            % (escape(title), STYLE, root, body))


def plain(text):
    """`text` for a matplotlib label: `$` would start mathtext."""
    return str(text).replace("$", r"\$")


def percent(change):
    return "%+.1f%%" % (100 * change)


def direction(change):
    return ("slower", "slower") if change > 0 else ("faster", "faster")


def svg_text(fig, salt):
    """The figure as an <svg> element to inline: text kept as text, no date, stable ids."""
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


class Series:
    """One benchmark on one machine: its measured commits and what the statistics say."""

    def __init__(self, name, commits, normalised):
        self.name = name
        self.points = [i for i in range(len(commits)) if name in normalised.get(i, {})]
        self.groups = [normalised[i][name] for i in self.points]
        self.medians = [statistics.median(g) for g in self.groups]
        self.intervals = [benchstats.median_interval(g) for g in self.groups]
        self.changes = benchstats.change_points(self.groups)
        # A step at the latest measured commit rests on that one commit's measurement window;
        # `continuous` (fresh runs of both commits, alternating) or the next commits settle it.
        self.provisional = {c.index for c in self.changes if c.index == len(self.groups) - 1}
        # The step at each change point as the gate sees it: the commit before against it.
        self.steps = [benchstats.difference(name, self.groups[c.index - 1], self.groups[c.index])
                      for c in self.changes]
        bounds = [0] + [c.index for c in self.changes] + [len(self.groups)]
        self.segments = [(self.points[a], self.points[b - 1],
                          statistics.median([x for g in self.groups[a:b] for x in g]))
                         for a, b in zip(bounds, bounds[1:])]

    def latest(self):
        """The last measured commit against the one before it (the gate's Difference), or None."""
        if len(self.groups) < 2:
            return None
        return benchstats.difference(self.name, self.groups[-2], self.groups[-1])


def span_effect(ax, values):
    """y limits that span at least the gate's minimum effect around the median, so that noise
    well below a step that would count is not drawn as one."""
    centre = statistics.median(values)
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, centre / (1 + benchstats.MIN_EFFECT)), max(high, centre * (1 + benchstats.MIN_EFFECT)))


def plot_series(series, commits, link, salt):
    n = len(commits)
    fig, ax = plt.subplots(figsize=(max(6.5, min(14, 2.5 + 0.35 * n)), 3.8), dpi=100)
    lower = [m - lo for m, (lo, _, _) in zip(series.medians, series.intervals)]
    upper = [hi - m for m, (_, hi, _) in zip(series.medians, series.intervals)]
    ax.errorbar(series.points, series.medians, yerr=[lower, upper], fmt="o", ms=4, color=POINT,
                ecolor="#8fb0dc", elinewidth=1.5, capsize=2, label="median, 95% interval", zorder=3)
    for k, (first, last, level) in enumerate(series.segments):
        ax.hlines(level, first - 0.35, last + 0.35, color=FIT, lw=1.2, alpha=0.8,
                  label="fit between change points" if k == 0 else None, zorder=2)
    span_effect(ax, series.medians)
    top = ax.get_ylim()[1]
    for change in series.changes:
        x = series.points[change.index]
        colour = SLOWER if change.change > 0 else FASTER
        line = ax.axvline(x - 0.5, color=colour, ls="--", lw=1.3, zorder=1)
        line.set_url(link(commits[x]["commit"]))
        label = ax.annotate(percent(change.change), (x - 0.5, top), xytext=(3, -12), textcoords="offset points",
                            color=colour, fontsize=9, fontweight="bold")
        label.set_url(link(commits[x]["commit"]))
    unmeasured = [i for i in range(n) if i not in set(series.points)]
    if unmeasured:
        ax.plot(unmeasured, [0.02] * len(unmeasured), "x", color=MISSING, ms=6, transform=ax.get_xaxis_transform(),
                label="not measured (see commits)", clip_on=False)
    ax.set_xticks(range(n))
    step = max(1, n // 40)
    labels = ax.set_xticklabels([c["commit"][:7] if i % step == 0 else "" for i, c in enumerate(commits)],
                                rotation=90, fontsize=7, family="monospace")
    for label, c in zip(labels, commits):
        label.set_url(link(c["commit"]))
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylabel("time / calibration kernel")
    ax.set_xlabel("commit (oldest first)")
    ax.grid(axis="y", color="#e6e6e6")
    ax.legend(fontsize=7, loc="best", frameon=False)
    ax.set_title(plain(series.name), fontsize=10)
    fig.tight_layout()
    return svg_text(fig, salt)


def plot_overview(all_series, commits, page_of, salt):
    """Small multiples: one panel per benchmark, each linked to its page."""
    columns = 3
    rows = (len(all_series) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(10.5, 1.9 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(all_series):]:
        ax.set_visible(False)
    for ax, series in zip(axes.flat, all_series):
        ax.plot(series.points, series.medians, "-o", ms=2.5, lw=1, color=POINT)
        span_effect(ax, series.medians)
        for change in series.changes:
            ax.axvline(series.points[change.index] - 0.5, color=SLOWER if change.change > 0 else FASTER,
                       ls="--", lw=1)
        ax.set_xlim(-0.7, len(commits) - 0.3)
        ax.set_xticks([])
        ax.tick_params(labelsize=6)
        ax.set_title(plain(series.name), fontsize=7)
        ax.patch.set_url(page_of(series.name))
    fig.tight_layout()
    return svg_text(fig, salt)


def commit_cell(commit, href):
    return '<a class="sha" href="%s">%s</a>' % (escape(href), escape(commit["commit"][:12]))


def build_machine(machine, details, commits, commit_url, directory):
    """Writes DIR/<machine>/ and returns (its summary HTML for index.html, page sizes)."""
    os.makedirs(directory)
    normalised = {i: benchstats.normalised(c["_run"]) for i, c in enumerate(commits) if c["status"] == "ok"}
    names = []
    for i in sorted(normalised):
        names += [n for n in normalised[i] if n not in names]
    all_series = [Series(name, commits, normalised) for name in names]

    def page_of(name):
        return slug(name) + ".html"

    def link(sha):
        return "commits.html#" + sha

    for series in all_series:
        changes = "".join(
            "<tr><td>%s</td><td>%s</td><td class=\"num %s\">%s</td><td class=\"num\">%.2g</td>"
            "<td class=\"num\">%s</td><td class=\"num\">%.2g</td><td>%s</td></tr>" % (
                commit_cell(commits[series.points[c.index]], link(commits[series.points[c.index]]["commit"])),
                escape(commits[series.points[c.index]]["subject"]), direction(c.change)[0], percent(c.change), c.p,
                percent(s.change), s.p, PROVISIONAL if c.index in series.provisional else "")
            for c, s in zip(series.changes, series.steps))
        rows = "".join(
            "<tr><td class=\"num\">%d</td><td>%s</td><td class=\"num\">%.4g</td><td class=\"num\">%.4g – %.4g"
            "</td><td class=\"num\">%d</td><td>%s</td></tr>" % (
                i, commit_cell(commits[i], link(commits[i]["commit"])), m, lo, hi, len(g),
                escape(commits[i]["subject"]))
            for i, m, (lo, hi, _), g in zip(series.points, series.medians, series.intervals, series.groups))
        body = ("<h1>%s</h1><p>Machine <code>%s</code>. Each point is the median over repetitions of the "
                "time divided by the calibration kernel's median in the same process, with a distribution-free "
                "95%% interval of the median. Change points: binary segmentation with the U test at every boundary "
                "(Bonferroni-corrected, p &lt; %g) and a minimum step of %d%%; dashed lines link to the commit.</p><div class=\"plot\">%s</div>"
                "<h2>Change points</h2>%s<h2>Measured commits</h2><table><tr><th>#</th><th>commit</th>"
                "<th>median</th><th>95%% interval</th><th>repetitions</th><th>subject</th></tr>%s</table>") % (
            escape(series.name), escape(machine), benchstats.P_VALUE, 100 * benchstats.MIN_EFFECT,
            plot_series(series, commits, link, machine + series.name),
            ("<table><tr><th>commit</th><th>subject</th><th>step</th><th>corrected p</th><th>vs the commit "
             "before</th><th>U test p</th><th></th></tr>%s</table>" % changes) if changes else
            "<p class=\"muted\">No change point.</p>", rows)
        with open(os.path.join(directory, page_of(series.name)), "w") as f:
            f.write(page("%s — %s" % (series.name, machine), body, "../"))

    at_commit = {}
    for series in all_series:
        for c in series.changes:
            at_commit.setdefault(series.points[c.index], []).append((series.name, c))
    rows = []
    for i, commit in enumerate(commits):
        external = ""
        if commit_url:
            external = ' <a href="%s">(source)</a>' % escape(commit_url.format(sha=commit["commit"]))
        steps = ", ".join('<a href="%s">%s</a> <span class="%s">%s</span>' % (
            escape(page_of(name)), escape(name), direction(c.change)[0], percent(c.change))
            for name, c in at_commit.get(i, []))
        state = commit["status"] if commit["status"] == "ok" else "%s: %s" % (commit["status"], commit.get("reason", ""))
        rows.append('<tr id="%s"><td class="num">%d</td><td class="sha">%s%s</td><td>%s</td><td>%s</td>'
                    "<td>%s</td><td>%s</td></tr>" % (
                        escape(commit["commit"]), i, escape(commit["commit"][:12]), external,
                        escape(commit["subject"]), escape(state), steps, escape(commit.get("measured_at", ""))))
    with open(os.path.join(directory, "commits.html"), "w") as f:
        f.write(page("commits — %s" % machine, "<h1>Commits measured on <code>%s</code></h1><table><tr><th>#</th>"
                     "<th>commit</th><th>subject</th><th>status</th><th>change points</th><th>measured</th></tr>"
                     "%s</table>" % (escape(machine), "".join(rows)), "../"))

    prefix = escape(os.path.basename(directory)) + "/"
    latest = sorted(((series.points[c.index], series, c, s) for series in all_series
                     for c, s in zip(series.changes, series.steps)), key=lambda t: (-t[0], -abs(t[2].change)))
    latest_rows = "".join(
        "<tr><td>%s</td><td>%s</td><td><a href=\"%s\">%s</a></td><td class=\"num %s\">%s</td>"
        "<td class=\"num\">%.2g</td><td>%s</td></tr>" % (
            commit_cell(commits[i], prefix + link(commits[i]["commit"])), escape(commits[i]["subject"]),
            prefix + escape(page_of(series.name)), escape(series.name), direction(c.change)[0], percent(c.change),
            c.p, PROVISIONAL if c.index in series.provisional else direction(c.change)[1])
        for i, series, c, s in latest[:LATEST_ROWS])
    counts = {}
    for commit in commits:
        counts[commit["status"]] = counts.get(commit["status"], 0) + 1
    bench_rows = []
    for series in all_series:
        now = series.latest()
        verdict = ("<span class=\"%s\">%s</span> (p = %.2g)" % (
            "slower" if now.regressed else "faster" if now.improved else "muted", percent(now.change), now.p)
            if now else "<span class=\"muted\">one commit</span>")
        bench_rows.append("<tr><td><a href=\"%s\">%s</a></td><td class=\"num\">%d</td><td class=\"num\">%d</td>"
                          "<td>%s</td></tr>" % (prefix + escape(page_of(series.name)), escape(series.name),
                                                len(series.points), len(series.changes), verdict))
    summary = ("<h2>Machine <code>%s</code></h2><p class=\"muted\">%s</p><p>%d commits stored (%s), "
               "from %s to %s. <a href=\"%scommits.html\">All commits</a>.</p>"
               "<h3>Latest regressions and improvements</h3>%s<h3>Overview</h3><div class=\"plot\">%s</div>"
               "<h3>Benchmarks</h3><table><tr><th>benchmark</th><th>commits</th><th>change points</th>"
               "<th>last commit vs the one before</th></tr>%s</table>") % (
        escape(machine), escape(", ".join("%s: %s" % (k, v) for k, v in details.items())), len(commits),
        escape(", ".join("%d %s" % (v, k) for k, v in counts.items())),
        escape(commits[0]["commit"][:12]), escape(commits[-1]["commit"][:12]), prefix,
        ("<table><tr><th>commit</th><th>subject</th><th>benchmark</th><th>step</th><th>corrected p</th>"
         "<th></th></tr>%s</table>" % latest_rows) if latest_rows else
        "<p>No change point in %d benchmarks.</p>" % len(all_series),
        plot_overview(all_series, commits, lambda name: prefix + page_of(name), machine) if all_series else "",
        "".join(bench_rows))
    return summary


def check_destination(out):
    """Refuses a DIR that this command must not replace; returns True if DIR exists."""
    if os.path.islink(out):
        raise InputError("%s: a symbolic link; give the directory itself" % printable(out))
    if not os.path.exists(out):
        return False
    if not os.path.isdir(out):
        raise InputError("%s: exists and is not a directory" % printable(out))
    entries = os.listdir(out)
    if entries and MARKER not in entries:
        raise InputError("%s: not empty and not a site written by track.py publish; refusing to replace it"
                         % printable(out))
    return True


def publish(machines, out, commit_url):
    """Writes the site for `machines` ([(name, details, ordered records)]) into `out`, all or
    nothing: it is built beside `out` and renamed into place."""
    if commit_url is not None:
        if not re.match(r"https?://", commit_url):
            raise InputError("--commit-url must start with http:// or https://")
        try:
            commit_url.format(sha="0" * 40)
        except (KeyError, IndexError, ValueError):
            raise InputError("--commit-url may contain only the placeholder {sha}") from None
    out = os.path.abspath(out)
    exists = check_destination(out)
    parent = os.path.dirname(out)
    try:
        os.makedirs(parent, exist_ok=True)
        stage = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(out) + ".tmp.")
    except OSError as error:
        raise InputError("%s: %s" % (printable(parent), error.strerror)) from None
    try:
        summaries = []
        for name, details, records in machines:
            summaries.append(build_machine(name, details, records, commit_url, os.path.join(stage, slug(name))))
        intro = ("<h1>Kernel benchmarks across commits</h1><p>Per machine, the change points found in the "
                 "calibrated kernel times (slower in red, faster in green), most recent first, then every "
                 "benchmark with the step from its previous measured commit (the gate's U test, p &lt; %g, "
                 "&ge; %d%%).</p>") % (benchstats.P_VALUE, 100 * benchstats.MIN_EFFECT)
        with open(os.path.join(stage, "index.html"), "w") as f:
            f.write(page("iclbench regression tracking", intro + "".join(summaries), ""))
        with open(os.path.join(stage, MARKER), "w") as f:
            f.write("written by bench/track.py publish; the whole directory is replaced on the next publish\n")
        os.chmod(stage, 0o755)
        if exists:
            old = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(out) + ".old.")
            os.rename(out, os.path.join(old, "site"))
            os.rename(stage, out)
            shutil.rmtree(old)
        else:
            os.rename(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out

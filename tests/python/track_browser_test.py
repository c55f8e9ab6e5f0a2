#!/usr/bin/python3
"""The dashboard in a real browser: Debian's headless chromium renders the summary page and
one benchmark page of `track.py publish` (from the synthetic history of track_test.py setup)
to PNG and dumps their DOM.

  track_browser_test.py WORKDIR

Checks: each screenshot is not blank (pixels unlike the page background below the header,
several distinct colours) and shows a plot (pixels of the plots' point colour: the inline SVG
was drawn); each DOM holds the benchmark names, and the planted commit's change point links
to that commit. A missing chromium fails the test with a line saying how to install it: a
dashboard nobody has seen rendered is not checked.

Chromium runs as root without a sandbox, without GPU or /dev/shm (a debootstrap chroot has
neither) and with a fresh profile, HOME and XDG directories in a temporary directory, so that
it needs no desktop session and leaves nothing behind.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import numpy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TRACK = os.path.join(HERE, "..", "..", "bench", "track.py")
PYTHON = "/usr/bin/python3"
sys.path.insert(0, HERE)
from track_test import PLANTED, paths  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,1400"]
POINT_RGB = (0x1F, 0x5F, 0xA8)  # track_site.POINT
HEADER_ROWS = 60


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def chromium(url, scratch, extra):
    """stdout of one headless chromium run on `url` with a fresh profile and home."""
    binary = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if binary is None:
        fail("chromium not found: install Debian's chromium (bash scripts/setup.sh does)")
    if not os.path.exists("/proc/cpuinfo"):
        fail("chromium needs /proc (Debian's wrapper reads /proc/cpuinfo): mount it in the chroot")
    profile = tempfile.mkdtemp(dir=scratch, prefix="profile.")
    env = dict(os.environ, HOME=profile, XDG_CONFIG_HOME=profile, XDG_CACHE_HOME=profile,
               XDG_RUNTIME_DIR=profile)
    try:
        process = subprocess.run([binary, *FLAGS, "--user-data-dir=" + profile, *extra, url],
                                 capture_output=True, text=True, env=env, timeout=240)
    except subprocess.TimeoutExpired:
        fail("chromium did not finish %s within 240 s" % url)
    if process.returncode != 0:
        fail("chromium exited with %d on %s:\n%s" % (process.returncode, url, process.stderr[-3000:]))
    shutil.rmtree(profile, ignore_errors=True)
    return process.stdout


def check_screenshot(path, what):
    if not os.path.exists(path):
        fail("%s: chromium wrote no screenshot" % what)
    pixels = matplotlib.image.imread(path)[:, :, :3]  # floats in [0, 1]
    body = pixels[HEADER_ROWS:]
    background = body[-1, -1]
    differs = numpy.abs(body - background).max(axis=2) > 0.1
    colours = len(numpy.unique((body * 255).astype(numpy.uint8).reshape(-1, 3), axis=0))
    point = numpy.abs(body * 255 - numpy.array(POINT_RGB)).max(axis=2) < 12
    print("%s: %dx%d, %.1f%% of the body differs from the background, %d colours, %d plot-point pixels"
          % (what, pixels.shape[1], pixels.shape[0], 100 * differs.mean(), colours, point.sum()))
    if differs.mean() < 0.01 or colours < 16:
        fail("%s is blank" % what)
    if point.sum() < 50:
        fail("%s shows no plot (no pixels of the points' colour)" % what)


def main():
    if len(sys.argv) != 2:
        print("usage: track_browser_test.py WORKDIR")
        return 2
    workdir = os.path.abspath(sys.argv[1])
    p = paths(workdir)
    with open(p["commits"]) as f:
        planted = json.load(f)[PLANTED]
    scratch = os.path.join(workdir, "browser")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    site = os.path.join(scratch, "site")
    subprocess.run([PYTHON, TRACK, "publish", "--repo", p["repo"], "--results", p["results"], site], check=True)
    machine = next(d for d in os.listdir(site) if os.path.isdir(os.path.join(site, d)))
    bench_page = next(n for n in os.listdir(os.path.join(site, machine)) if n.startswith("softmax_iclbench_f32"))

    pages = [("summary page", os.path.join(site, "index.html"), ["softmax/iclbench_f32", "layer_norm/onednn_f32"],
              'href="%s/commits.html#%s"' % (machine, planted)),
             ("benchmark page", os.path.join(site, machine, bench_page), ["softmax/iclbench_f32"],
              'href="commits.html#%s"' % planted)]
    for what, path, names, planted_link in pages:
        url = "file://" + path
        png = os.path.join(scratch, re.sub(r"\W+", "_", what) + ".png")
        chromium(url, scratch, ["--screenshot=" + png])
        check_screenshot(png, what)
        dom = chromium(url, scratch, ["--dump-dom"])
        for name in names:
            if name not in dom:
                fail("%s: the DOM does not contain %s" % (what, name))
        if planted_link not in dom:
            fail("%s: the DOM has no link %s to the planted commit" % (what, planted_link))
        if "<script" in dom:
            fail("%s: the DOM has a script element (a commit subject was not escaped?)" % what)
        if "<svg" not in dom:
            fail("%s: the DOM has no inline SVG plot" % what)
        print("%s: DOM of %d characters has %s and the planted commit's link" % (what, len(dom), ", ".join(names)))
    print("PASS dashboard in chromium")
    return 0


if __name__ == "__main__":
    sys.exit(main())

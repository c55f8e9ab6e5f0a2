#!/usr/bin/python3
"""Every user-facing Python tool under a python3 without Debian's numpy/scipy/matplotlib/torch (a
pyenv python3 first on PATH, say): one line on stderr naming the module and /usr/bin/python3, exit 2
(an ImportError traceback before). scripts/debian_python.py makes the check.

  missing_module_test.py WORKDIR

  python3 -S TOOL --help       site-packages off, so no third-party module imports: every tool
  fake MODULE.py first on      a module that is there but raises ImportError (a broken install):
  PYTHONPATH                   the check imports it, as the tool's own import would
  track.py publish             matplotlib is needed by that command only; checked there
  speed.py                     checked in the parent too (it printed its --help and exited 0)
Needs only /usr/bin/python3: no tool gets as far as its real work.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
# Each tool with the first module it checks (the order of its require() calls).
TOOLS = [("bench/gate.py", "scipy"), ("bench/track.py", "scipy"), ("bench/peers/compare_garg.py", "numpy"),
         ("bench/peers/torch_encoder.py", "torch"), ("bench/peers/torch_garg.py", "torch"),
         ("scripts/mpi_projection.py", "numpy"), ("scripts/train/convert_garg.py", "numpy"),
         ("scripts/train/evaluate.py", "numpy"), ("scripts/train/export.py", "numpy"),
         ("scripts/train/speed.py", "numpy"), ("scripts/train/stage_cost.py", "numpy"),
         ("scripts/train/train.py", "numpy")]
failures = []


def one_line(case, command, module, env=None):
    process = subprocess.run(command, capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, **(env or {})))
    lines = process.stderr.strip().splitlines()
    ok = (process.returncode == 2 and len(lines) == 1 and "cannot import %s" % module in lines[0] and
          "run it with /usr/bin/python3" in lines[0] and "python3-%s" % module in lines[0])
    print("%-44s %s" % (case, "ok" if ok else "FAILED: exit %d, stderr %r" % (process.returncode, process.stderr)))
    if not ok:
        failures.append(case)


def fake(work, module):
    """A directory holding MODULE.py that raises ImportError, for PYTHONPATH."""
    directory = os.path.join(work, "fake_" + module)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, module + ".py"), "w") as f:
        f.write("raise ImportError('fake %s: broken install')\n" % module)
    return {"PYTHONPATH": directory}


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    for tool, module in TOOLS:
        one_line("-S " + tool, ["/usr/bin/python3", "-S", os.path.join(ROOT, tool), "--help"], module)
    # With site-packages on, the modules a tool needs before the faked one import for real.
    for tool, module in (("scripts/train/train.py", "torch"), ("scripts/train/evaluate.py", "scipy"),
                         ("scripts/train/export.py", "matplotlib"), ("bench/peers/compare_garg.py", "numpy"),
                         ("bench/gate.py", "scipy")):
        one_line("fake %s: %s" % (module, tool), ["/usr/bin/python3", os.path.join(ROOT, tool), "--help"], module,
                 fake(work, module))
    one_line("fake matplotlib: track.py publish",
             ["/usr/bin/python3", os.path.join(ROOT, "bench/track.py"), "publish", os.path.join(work, "site")],
             "matplotlib", fake(work, "matplotlib"))
    one_line("fake torch: speed.py",
             ["/usr/bin/python3", os.path.join(ROOT, "scripts/train/speed.py"), "--rounds", "1", "--seconds", "0"],
             "torch", fake(work, "torch"))
    if failures:
        print("FAILED: %s" % ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

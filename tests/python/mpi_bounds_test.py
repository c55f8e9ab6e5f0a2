#!/usr/bin/python3
"""`mpirun -n 2 iclbench bounds` on localhost against one process (issue 17).

  1. A 2-rank sweep writes the same bytes as a 1-process run: every file under --out (config.json,
     points/*.json, points.csv, fits.json, report.md) and the verdicts on stdout (the one timing
     field, "in X s" on the last stdout line, aside).
  2. A refused --out (a directory of other files) ends every rank with exit 2 and ONE error line,
     rank 0's, without a hang.
  3. A rank that dies (ICLBENCH_TEST_WORKER_DIES_AFTER=1: rank 1 kills itself with SIGKILL when
     given its second point, so rank 0 has saved its first) ends the job non-zero with a line
     naming rank 1; every point saved until then is kept (not rewritten) and a resumed run ends
     with the 1-process bytes.
  4. Another command under 2 ranks is refused, once, exit 2.
The 1-process reference runs without any launcher variable in its environment, so it is also
the check that the binary runs without mpirun.

usage: mpi_bounds_test.py ICLBENCH_BINARY WORK_DIR
"""
import filecmp
import os
import shutil
import subprocess
import sys

# Small but uneven: regime A and B points whose costs differ, so that the two ranks compute
# different points and rank 0 receives results out of order.
# No gd-hinge grid: its points cost far more than the others, and while rank 0 computed them
# alone rank 1 sometimes never got the second unit that the kill check below needs.
SWEEP = ["bounds", "--quiet", "--no-plots", "--no-hinge", "--d-grid", "4,5,6,7,8,9", "--n-grid", "16,32,64,128",
         "--eps-grid", "0.2,0.1", "--k-grid", "8,16,32", "--models", "gd-ls:L=1",
         "--heads", "svm-hard,avg", "--tasks", "20", "--queries", "32", "--bootstrap", "50",
         "--seed", "5"]
TIMEOUT = 240  # seconds; a hang fails the test instead of stalling ctest


def mpirun(ranks, quiet=False):
    # -q: mpirun prints none of its own summaries, so stderr holds only what iclbench says.
    command = ["mpirun", "-n", str(ranks), "--oversubscribe"] + (["-q"] if quiet else [])
    if os.geteuid() == 0:
        command.append("--allow-run-as-root")  # OpenMPI refuses root without it
    return command


def run(command, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI_", "PMIX_"))}
    env.update(env_extra or {})
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)


def tree(root):
    files = []
    for dirpath, _, names in os.walk(root):
        files += [os.path.relpath(os.path.join(dirpath, n), root) for n in names]
    return sorted(files)


def main():
    binary, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    failures = 0

    def check(condition, what, detail=""):
        nonlocal failures
        if not condition:
            failures += 1
            print("FAIL:", what, detail)

    def same_tree(a, b, what):
        files_a, files_b = tree(a), tree(b)
        check(files_a == files_b, what + ": the same files", f"{files_a} vs {files_b}")
        for name in sorted(set(files_a) & set(files_b)):
            check(filecmp.cmp(os.path.join(a, name), os.path.join(b, name), shallow=False),
                  f"{what}: {name} byte-identical")

    def verdicts(stdout, out):  # the timing field of the last line and the directory aside
        return stdout[: stdout.rfind(" in ")].replace(out, "DIR")

    one = os.path.join(work, "one")
    reference = run([binary, *SWEEP, "--out", one])
    check(reference.returncode == 0, "1-process run", reference.stderr)
    check(len(tree(os.path.join(one, "points"))) == 12, "1-process run: 12 points (A and B for d = 4 to 9)")

    # 1. Two ranks, the same bytes.
    two = os.path.join(work, "two")
    result = run([*mpirun(2), binary, *SWEEP, "--out", two])
    check(result.returncode == 0, "2-rank run", result.stderr)
    same_tree(one, two, "2 ranks")
    check(verdicts(result.stdout, two) == verdicts(reference.stdout, one), "2 ranks: the same verdicts on stdout",
          f"\n{result.stdout}\nvs\n{reference.stdout}")
    check(result.stdout.count("wrote ") == 1, "2 ranks: stdout from rank 0 only", result.stdout)

    # 2. A refused --out: exit 2 from every rank, one line.
    foreign = os.path.join(work, "foreign")
    os.makedirs(foreign)
    with open(os.path.join(foreign, "notes.txt"), "w") as f:
        f.write("the user's\n")
    result = run([*mpirun(2, quiet=True), binary, *SWEEP, "--out", foreign])
    check(result.returncode == 2, "refused --out: exit 2", f"{result.returncode}: {result.stderr}")
    errors = result.stderr.splitlines()
    check(len(errors) == 1 and errors[0].startswith("iclbench bounds: error: ")
          and "not empty and holds no bounds run" in errors[0],
          "refused --out: one error line", result.stderr)
    check(os.listdir(foreign) == ["notes.txt"], "refused --out: nothing written")

    # Another command under mpirun with 2 ranks: refused once, exit 2.
    result = run([*mpirun(2, quiet=True), binary, "info"])
    errors = result.stderr.splitlines()
    check(result.returncode == 2 and len(errors) == 1 and "only `bounds`" in errors[0],
          "info under 2 ranks: refused with one line", f"{result.returncode}: {result.stderr}")

    # 3. Rank 1 dies after its second result.
    killed = os.path.join(work, "killed")
    result = run([*mpirun(2), binary, *SWEEP, "--out", killed], {"ICLBENCH_TEST_WORKER_DIES_AFTER": "1"})
    print("rank 1 killed, stderr:\n" + result.stderr)
    check(result.returncode != 0, "rank 1 killed: the job fails", result.stderr)
    check("rank 1" in result.stderr, "rank 1 killed: a line names rank 1", result.stderr)
    saved = {name: os.stat(os.path.join(killed, "points", name))
             for name in os.listdir(os.path.join(killed, "points")) if not name.startswith(".")}
    # Rank 0 saved rank 1's first result before it assigned the second.
    check(1 <= len(saved) < 12, "rank 1 killed: the points received before are saved", sorted(saved))
    result = run([*mpirun(2), binary, *SWEEP, "--out", killed])
    check(result.returncode == 0, "resume after the kill", result.stderr)
    for name, before in saved.items():
        after = os.stat(os.path.join(killed, "points", name))
        check((after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns),
              f"resume after the kill: {name} kept, not recomputed")
    same_tree(one, killed, "resume after the kill")

    print("mpi_bounds_test:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

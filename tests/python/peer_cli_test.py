#!/usr/bin/python3
"""The PyTorch peers' command lines on bad input (bench/peers/compare_garg.py and
compare_encoder.sh, and the PyTorch peers they start), without a build: every case stops before
anything is timed; only the peers' own cases import PyTorch (setup.sh's test list installs it).

  peer_cli_test.py WORKDIR

  garg --model FIFO / directory   exit 2, one line, at once (a FIFO blocked the reader before)
  garg --n beyond the positions,   exit 2, one line, before anything runs (exit 1 after the selection's
  bad counts                      first minute before; argparse printed its usage too)
  garg SIGTERM                    during the run: exit 143 and its temporary prompts removed (left before)
  garg, iclbench fails            a stub iclbench (ICLBENCH=) that exits 3 or 2 with a message:
                                  exit 1 (a tool failed) or 2 (the tool refused its input, which
                                  is the user's), one line naming the message (a traceback before)
  garg counts " 5", "+5", "5_0"   exit 2, one line: decimal digits only (argparse's int() took them)
  torch_*.py --repeats " 5"       exit 2, one line (argparse's usage and a stripped count before)
  torch_garg.py missing, empty,   exit 2, one line (a FileNotFoundError or FormatError traceback, or
  FIFO or wrong-kind files        exit 1, before); compare_garg.py's argparse lines say "error:"
  encoder REPEATS=0 / x / 1001    exit 2, one line (a StatisticsError traceback after a minute before)
  encoder --help / --bogus        usage and exit 0 / one line and exit 2 (both ran the benchmark before)
  garg --help                     every option described with its default (none were, before)
"""
import os
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "..", "..", "bench", "peers")
MODEL = os.path.join(HERE, "..", "..", "results", "models", "garg-gaussian-d8.safetensors")
failures = []


def expect(case, condition, detail):
    print("%-34s %s" % (case, "ok" if condition else "FAILED: " + detail))
    if not condition:
        failures.append(case)


def one_line(case, command, code, needle="", env=None):
    try:
        process = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, **(env or {})))
    except subprocess.TimeoutExpired:
        expect(case, False, "blocked")
        return
    lines = process.stderr.strip().splitlines()
    expect(case, process.returncode == code and len(lines) == 1 and needle in lines[0] and
           "Traceback" not in process.stderr, "exit %d, stderr %r" % (process.returncode, process.stderr))


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    garg = ["/usr/bin/python3", os.path.join(PEERS, "compare_garg.py")]
    fifo = os.path.join(work, "model.fifo")
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    one_line("garg --model FIFO", garg + ["--model", fifo], 2, "not a regular file")
    one_line("garg --model directory", garg + ["--model", work], 2, "not a regular file")
    for code, expected in ((3, 1), (2, 2)):
        stub = os.path.join(work, "iclbench_exit%d" % code)
        with open(stub, "w") as f:
            f.write("#!/usr/bin/python3\nimport sys\nprint('earlier line', file=sys.stderr)\n"
                    "print('stub: disk on fire', file=sys.stderr)\nsys.exit(%d)\n" % code)
        os.chmod(stub, stat.S_IRWXU)
        one_line("garg, iclbench exits %d" % code, garg + ["--model", MODEL], expected, "stub: disk on fire",
                 env={"ICLBENCH": stub})

    one_line("garg --n 65", garg + ["--n", "65"], 2, "--n 65 needs 131 tokens, but the model has 130 positions")
    for bad in (["--n", "1e3"], ["--repeats", "2.0"], ["--bogus"]):
        one_line("garg " + " ".join(bad), garg + bad, 2, "compare_garg.py: error: ")
    one_line("garg --rounds 1000000", garg + ["--rounds", "1000000"], 2, "compare_garg.py: --rounds at most 100")
    process = subprocess.run(garg + ["--help"], capture_output=True, text=True, timeout=60)
    # argparse wraps the help: its options' lines joined, each option's text runs to the next one's
    # "--flag METAVAR" and must describe it and end with its default. The model's default is a path
    # under the checkout, which argparse may break at any hyphen: only its last part is checked.
    text = " ".join(process.stdout.split("options:", 1)[-1].split())
    defaults = [("--model", "safetensors"), ("--n", "64"), ("--batch", "64"), ("--rounds", "5"),
                ("--repeats", "5"), ("--seed", "1"), ("--json", None)]
    starts = [text.find("%s %s " % (flag, flag[2:].upper()) if default else flag + " ") for flag, default in defaults]
    entries = [text[start:end].strip() for start, end in zip(starts, starts[1:] + [len(text)])]
    undocumented = [flag for (flag, default), start, entry in zip(defaults, starts, entries)
                    if start < 0 or len(entry.split()) < 4 or (default and not entry.endswith("%s)" % default))]
    expect("garg --help", process.returncode == 0 and not undocumented and starts == sorted(starts),
           "exit %d, undocumented %r, %r" % (process.returncode, undocumented, process.stdout))
    # Counts in decimal digits only: argparse's int() took " 5", "+5", "5_0" and Arabic-Indic digits.
    for flag, value in (("--n", " 5"), ("--batch", "5 "), ("--rounds", "+5"), ("--repeats", "5_0"),
                        ("--seed", "\u0661"), ("--seed", "-1")):
        one_line("garg %s %r" % (flag, value), garg + [flag, value], 2,
                 "compare_garg.py: error: argument %s" % flag)
    # SIGTERM while a (stub) iclbench generates the prompts: the temporary directory goes.
    slow = os.path.join(work, "iclbench_slow")
    with open(slow, "w") as f:
        f.write("#!/bin/sh\nexec sleep 60\n")
    os.chmod(slow, stat.S_IRWXU)
    temp = os.path.join(work, "tmp")
    os.makedirs(temp, exist_ok=True)
    process = subprocess.Popen(garg + ["--model", MODEL], env=dict(os.environ, ICLBENCH=slow, TMPDIR=temp),
                               stderr=subprocess.DEVNULL)
    for _ in range(100):  # until it has made its temporary directory
        if os.listdir(temp):
            break
        time.sleep(0.1)
    made = bool(os.listdir(temp))
    process.terminate()
    code = process.wait(timeout=30)
    expect("garg SIGTERM", made and code == 143 and not os.listdir(temp),
           "made %s, exit %d, left %r" % (made, code, os.listdir(temp)))

    # The PyTorch peers themselves (compare_*.py/sh start them): one line, counts in decimal digits.
    for peer, flags in (("torch_encoder.py", []), ("torch_garg.py", ["--model", MODEL, "--data", MODEL])):
        for flag, value in (("--repeats", " 5"), ("--threads", "1, 2"), ("--n", "+5")):
            if flag == "--n" and peer == "torch_encoder.py":
                continue
            one_line("%s %s %r" % (peer, flag, value), ["/usr/bin/python3", os.path.join(PEERS, peer)] + flags +
                     [flag, value], 2, "%s: error: argument %s" % (peer, flag))

    # torch_garg.py's input files: missing, empty, not a model / data set, a FIFO: one line, exit 2
    # before anything is timed (a FileNotFoundError or FormatError traceback, or exit 1, before).
    empty = os.path.join(work, "empty.safetensors")
    open(empty, "w").close()
    missing = os.path.join(work, "nonexistent")
    torch_garg = ["/usr/bin/python3", os.path.join(PEERS, "torch_garg.py")]
    for case, model, data, needle in (("missing both", missing, missing, "--model"),
                                      ("missing --data", MODEL, missing, "--data"),
                                      ("empty --model", empty, MODEL, "shorter than the 8-byte header"),
                                      ("empty --data", MODEL, empty, "shorter than the 8-byte header"),
                                      ("FIFO --data", MODEL, fifo, "not a regular file"),
                                      ("model as --data", MODEL, MODEL, "is not an iclbench data set")):
        one_line("torch_garg.py " + case, torch_garg + ["--model", model, "--data", data], 2, needle)

    encoder = ["bash", os.path.join(PEERS, "compare_encoder.sh")]
    for repeats in ("0", "x", "1001", "-1", "3 4", " 5", "+5", "\u0665"):
        one_line("encoder REPEATS=%r" % repeats, encoder, 2, "REPEATS", env={"REPEATS": repeats})
    one_line("encoder --bogus", encoder + ["--bogus"], 2, "unknown argument")
    for flag in ("--help", "-h"):
        process = subprocess.run(encoder + [flag], capture_output=True, text=True, timeout=60)
        expect("encoder " + flag, process.returncode == 0 and process.stdout.startswith("usage:") and
               not process.stderr, "exit %d, %r %r" % (process.returncode, process.stdout, process.stderr))

    if failures:
        print("FAILED: %d case(s): %s" % (len(failures), ", ".join(failures)))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

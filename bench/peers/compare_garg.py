#!/usr/bin/python3
"""The engine against PyTorch on the same garg-gpt2 model, the same prompts and the same query
semantics (bench/peers/torch_garg.py says exactly what is timed), in prompts/s at 1 and 2
threads: iclbench f32 and bf16, and PyTorch f32 in its best configuration here.

usage: compare_garg.py [--model results/models/garg-gaussian-d8.safetensors] [--n 64] [--batch 64]
                       [--rounds 5] [--repeats 5] [--seed 1] [--json]

1. The prompts: `iclbench --seed S gen --family gaussian --d n_dims --n N --queries 1 --tasks B`
   into a temporary directory, the very tasks `iclbench --seed S speed --model FILE --n N
   --batch B` draws (both call data::generate_task with that spec), read by the peer.
2. Selection: torch_garg.py times every variant (eager, functional, jit) in every mode (intra-op;
   at 2 threads also two single-thread processes on half the batch each, and one thread on the
   whole batch, which a user with 2 threads can always run) and keeps the best per thread count,
   printing which won. Each cell runs in fresh processes of its own, warmed up under inference_mode
   until two consecutive forwards agree within 10% (3 to 20 forwards; torch_garg.py): timed one
   after another in one process, the variants slowed each other.
3. Rounds: --rounds times, alternately, for 1 then 2 threads: engine f32, engine bf16, PyTorch's
   best (a torch_garg.py process of its own, again fresh); each a median of --repeats timed
   forwards after a warm-up. The 1-minute load average is
   read before and after every round. The table gives each cell's median over rounds and the
   median over rounds of the same-round ratio engine / PyTorch (the machine is shared: a ratio
   within one round is what the load leaves comparable).
PyTorch runs on OpenBLAS (LD_LIBRARY_PATH, for its process only) with OPENBLAS_NUM_THREADS=1 and
no OPENBLAS_CORETYPE/L2_SIZE overrides. Needs `bash scripts/setup.sh peers` and a release build
(or ICLBENCH=path/to/iclbench in the environment).
"""
import json
import os
import signal
import stat
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ICLBENCH = os.environ.get("ICLBENCH", os.path.join(ROOT, "build", "release", "bin", "iclbench"))
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread"
PEER = os.path.join(ROOT, "bench", "peers", "torch_garg.py")
THREADS = (1, 2)

sys.path.insert(0, os.path.join(ROOT, "scripts", "train"))
import cli_io  # noqa: E402
cli_io.require("numpy")  # this process reads the model (safetensors_np); the peer checks for torch


class RunError(Exception):
    """A tool this script runs (iclbench, the peer) that failed; the message is one line. `code`
    is 2 if the tool said its input was bad (its exit 2: every input it gets comes from this
    script's arguments), else 1 (the tool failed, not the user)."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def run(command, env=None):
    """stdout of `command` (an argument list, never a shell); RunError naming the command and the
    last line of its stderr if it fails."""
    process = subprocess.run(command, env=env, capture_output=True, text=True, errors="replace")
    if process.returncode != 0:
        lines = process.stderr.strip().splitlines()
        raise RunError("%s exited with %d%s" % (" ".join(command[:3]), process.returncode,
                                                 (": " + lines[-1][:300]) if lines else ""),
                       2 if process.returncode == 2 else 1)
    return process.stdout


def run_json(command, env=None):
    out = run(command, env)
    try:
        return json.loads(out)
    except ValueError:
        raise RunError("%s printed no JSON" % " ".join(command[:3])) from None


def torch_env():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["LD_LIBRARY_PATH"] = OPENBLAS + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    return env


def engine(args, threads, bf16):
    command = [ICLBENCH, "--threads", str(threads), "--seed", str(args.seed), "--quiet", "speed", "--model",
               args.model, "--d", str(model_shape(args.model)[0]), "--n", str(args.n), "--batch", str(args.batch), "--repeats", str(args.repeats), "--json"]
    return run_json(command + (["--bf16"] if bf16 else []))


def peer(args, data, threads, variants=None, modes=None):
    command = [sys.executable, PEER, "--model", args.model, "--data", data, "--n", str(args.n), "--threads",
               ",".join(str(t) for t in threads), "--repeats", str(args.repeats), "--json"]
    if variants:
        command += ["--variants", variants, "--modes", modes]
    return run_json(command, torch_env())


def model_shape(path):
    """-> (n_dims, positions) of a garg-gpt2 model file; positions = 2 n_positions tokens (x and
    y interleaved), as the engine reads them."""
    # A FIFO would block the reader (and the peer after it), a directory is no model: a regular
    # file only, checked before anything opens it.
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError("not a regular file")
    import safetensors_np
    metadata, _ = safetensors_np.read(path)
    if metadata.get("format") != "garg-gpt2" or "n_dims" not in metadata or "n_positions" not in metadata:
        raise ValueError("not a garg-gpt2 model (format %r)" % metadata.get("format"))
    return int(metadata["n_dims"]), 2 * int(metadata["n_positions"])


def end_on_signal(signum, frame):
    # SIGTERM or SIGHUP unwinds like Ctrl-C does, so the temporary prompts are removed.
    raise SystemExit(128 + signum)


def main(argv):
    p = cli_io.Parser(prog="compare_garg.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=os.path.join(ROOT, "results", "models", "garg-gaussian-d8.safetensors"),
                   help="garg-gpt2 safetensors file, timed by both sides (default: %(default)s)")
    # Counts in decimal digits only (cli_io): int() would take " 5", "+5" and "5_0".
    count = cli_io.positive_int
    p.add_argument("--n", type=count, default=64,
                   help="context pairs per prompt (2n + 1 tokens, within the model's positions; default: %(default)s)")
    p.add_argument("--batch", type=count, default=64,
                   help="prompts per forward, both sides (at most 10^6; default: %(default)s)")
    p.add_argument("--rounds", type=count, default=5,
                   help="rounds of engine f32, engine bf16 and PyTorch at 1 and 2 threads; the table gives "
                        "medians over rounds (at most 100; default: %(default)s)")
    p.add_argument("--repeats", type=count, default=5,
                   help="timed forwards per cell, of which each cell keeps the median (at most 1000; "
                        "default: %(default)s)")
    p.add_argument("--seed", type=cli_io.nonnegative_int, default=1,  # iclbench's --seed is unsigned
                   help="iclbench --seed of the prompts (gen and speed draw the same tasks; default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    if args.rounds > 100 or args.repeats > 1000 or args.batch > 1_000_000:
        print("compare_garg.py: --rounds at most 100, --repeats at most 1000, --batch at most 10^6",
              file=sys.stderr)
        return 2
    try:
        dims, positions = model_shape(args.model)
    except (OSError, ValueError) as error:  # safetensors_np.FormatError is a ValueError
        print("compare_garg.py: --model %s: %s" % (args.model, error), file=sys.stderr)
        return 2
    if 2 * args.n + 1 > positions:
        print("compare_garg.py: --n %d needs %d tokens, but the model has %d positions" % (
            args.n, 2 * args.n + 1, positions), file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, end_on_signal)
    # The user's arguments first, then the machine.
    for path, why in ((ICLBENCH, "bash scripts/build.sh release"), (os.path.join(OPENBLAS, "libblas.so.3"),
                                                                     "bash scripts/setup.sh peers")):
        if not os.path.exists(path):
            print("compare_garg.py: %s not found (%s)" % (path, why), file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as directory:
        data = os.path.join(directory, "prompts.safetensors")
        run([ICLBENCH, "--seed", str(args.seed), "--quiet", "gen", "--family", "gaussian", "--d",
             str(dims), "--n", str(args.n), "--queries", "1", "--tasks", str(args.batch), "--out", data])
        selection = peer(args, data, THREADS)
        best = {r["threads"]: r for r in selection["results"]}
        for r in selection["results"]:  # at once: the rounds take minutes on a loaded machine
            print("selection at %d thread(s): %s; best %s/%s" % (r["threads"], ", ".join(
                "%s/%s %.1f" % (t["variant"], t["mode"], t["prompts_per_second"]) for t in r["tried"]),
                r["variant"], r["mode"]), file=sys.stderr, flush=True)
        rounds = []
        for _ in range(args.rounds):
            row = {"load_before": os.getloadavg()[0]}
            for threads in THREADS:
                row[threads] = {
                    "engine f32": engine(args, threads, False)["prompts_per_second"],
                    "engine bf16": engine(args, threads, True)["prompts_per_second"],
                    "pytorch": peer(args, data, [threads], best[threads]["variant"],
                                    best[threads]["mode"])["results"][0]["prompts_per_second"],
                }
            row["load_after"] = os.getloadavg()[0]
            rounds.append(row)
            print("round %d: load %.1f -> %.1f  %s" % (len(rounds), row["load_before"], row["load_after"], "  ".join(
                "%dt: %s" % (t, ", ".join("%s %.1f" % kv for kv in row[t].items())) for t in THREADS)),
                  file=sys.stderr, flush=True)
    summary = []
    for threads in THREADS:
        for name in ("engine f32", "engine bf16", "pytorch"):
            values = [r[threads][name] for r in rounds]
            ratios = [r[threads][name] / r[threads]["pytorch"] for r in rounds]
            summary.append({"threads": threads, "name": name, "prompts_per_second": statistics.median(values),
                            "all": values, "ratio_to_pytorch": statistics.median(ratios), "ratios": ratios})
    report = {"model": args.model, "n": args.n, "tokens_per_prompt": 2 * args.n + 1, "batch": args.batch,
              "rounds": args.rounds, "repeats": args.repeats,
              "pytorch": {k: v for k, v in selection.items() if k != "results"},
              "pytorch_selection": selection["results"], "summary": summary,
              "load": [(r["load_before"], r["load_after"]) for r in rounds]}
    if args.json:
        print(json.dumps(report))
        return 0
    info = report["pytorch"]
    print("pytorch %s, BLAS %s loaded from %s, OPENBLAS_NUM_THREADS=%s, %d inter-op thread(s)" % (
        info["torch"], info["blas"], ", ".join(info["blas_loaded"]) or "?", info["OPENBLAS_NUM_THREADS"],
        info["interop_threads"]))
    for r in selection["results"]:
        print("  selection at %d thread(s): %s; best %s/%s" % (r["threads"], ", ".join(
            "%s/%s %.1f" % (t["variant"], t["mode"], t["prompts_per_second"]) for t in r["tried"]),
            r["variant"], r["mode"]))
    print("%d prompts x %d tokens (%d pairs and one query); %d rounds, each cell a median of %d forwards; "
          "1-min load %.1f..%.1f" % (args.batch, 2 * args.n + 1, args.n, args.rounds, args.repeats,
                                     min(min(l) for l in report["load"]), max(max(l) for l in report["load"])))
    print("| threads | | prompts/s (median) | every round | vs PyTorch (median of same-round ratios) |")
    print("|---|---|---|---|---|")
    for s in summary:
        name = s["name"] if s["name"] != "pytorch" else "pytorch %s/%s" % (best[s["threads"]]["variant"],
                                                                          best[s["threads"]]["mode"])
        print("| %d | %s | %.1f | %s | %.2f× |" % (s["threads"], name, s["prompts_per_second"],
                                                  ", ".join("%.1f" % v for v in s["all"]), s["ratio_to_pytorch"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except RunError as error:
        print("compare_garg.py: %s" % error, file=sys.stderr)
        sys.exit(error.code)
    except KeyboardInterrupt:
        sys.exit(130)

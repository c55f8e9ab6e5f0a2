#!/usr/bin/python3
"""Meta-trains the Garg et al. 2022 transformer (garg_model.py) on iclbench's `gaussian` linear
classification tasks, then exports it as a garg-gpt2 safetensors file.

usage: train.py --run-dir DIR [options]         (see --help; resumes DIR/checkpoint.pt if present)

Tasks: x ~ N(0, I_d), w* uniform on the unit sphere, y = sign(w*.x) (0 counts as +1), a fresh
task for every prompt. Every prompt of a step has the same number of pairs, and the trailing
coordinates of x may be zero early on (Garg et al.'s points and dims curricula); the loss is the logistic loss of the score at every x token against (y + 1) / 2, the mean
over all prompts and positions -- Garg et al.'s training metric for linear classification (their
tasks.py `cross_entropy`, here in the numerically stable with-logits form).

Reproducible: model initialisation from --seed; the batch of step k from a generator seeded with
(seed, k) alone; the learning rate a function of k alone. A checkpoint (model, Adam state, step,
loss history) is written atomically every --checkpoint-every steps and at the end, so a killed
run resumed with the same flags and the same thread settings ends with the same bytes.

Speed: run with OpenBLAS and one BLAS thread (scripts/train/run.sh sets this up); Debian's
default reference BLAS makes the matmuls many times slower.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_io  # noqa: E402
cli_io.require("numpy", "torch")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import garg_model  # noqa: E402

CHECKPOINT = "checkpoint.pt"


def parse_args(argv):
    p = cli_io.Parser(prog="train.py", description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    count, count0, number = cli_io.positive_int, cli_io.nonnegative_int, cli_io.finite_float
    p.add_argument("--run-dir", required=True, help="checkpoint and loss log directory (resumed if it holds a checkpoint)")
    p.add_argument("--seed", type=count0, default=1)
    p.add_argument("--d", type=count, default=8, help="input dimension n_dims")
    p.add_argument("--n-points", type=count, default=65, help="pairs per prompt at the end of the curriculum (= n_positions)")
    p.add_argument("--points-curriculum", default="",
                   help="START:INC:INTERVAL: pairs per prompt start at START and grow by INC every INTERVAL steps up to "
                        "--n-points (Garg et al.'s points curriculum); empty = --n-points throughout")
    p.add_argument("--dims-curriculum", default="",
                   help="START:INC:INTERVAL: only the first k coordinates of x are non-zero (and w* lies in them), k "
                        "starting at START and growing by INC every INTERVAL steps up to --d (Garg et al.'s dims "
                        "curriculum); empty = all --d coordinates throughout")
    p.add_argument("--n-embd", type=count, default=128)
    p.add_argument("--n-layer", type=count, default=4)
    p.add_argument("--n-head", type=count, default=4)
    p.add_argument("--steps", type=count, default=10000)
    p.add_argument("--batch", type=count, default=64, help="prompts per step")
    p.add_argument("--lr", type=number, default=3e-4, help="peak Adam learning rate")
    p.add_argument("--warmup", type=count0, default=200, help="linear warm-up steps")
    p.add_argument("--final-lr-fraction", type=number, default=0.1,
                   help="cosine decay from the peak to this fraction of it at the last step")
    p.add_argument("--threads", type=count, default=2, help="torch intra-op threads")
    p.add_argument("--bf16", action="store_true",
                   help="run the matmuls in bf16 (torch.autocast on the CPU: oneDNN's AVX512-BF16 kernels, f32 "
                        "accumulation); weights, Adam state and the exported file stay f32")
    p.add_argument("--checkpoint-every", type=count, default=500)
    p.add_argument("--progress-every", type=count, default=50)
    p.add_argument("--stop-after", type=count0, default=0,
                   help="stop (with a checkpoint) after this many steps of this invocation; 0 = run to --steps")
    args = p.parse_args(argv)
    for flag, end in (("points_curriculum", args.n_points), ("dims_curriculum", args.d)):
        text = getattr(args, flag)
        if not text:
            continue
        name = "--" + flag.replace("_", "-")
        if text.count(":") != 2:
            p.error("argument %s: wants START:INC:INTERVAL, got %r" % (name, text))
        try:  # decimal digits only (cli_io): int() would take " 5", "+5", "5_0" and non-ASCII digits
            start, inc, interval = cli_io.integer_list(text, ":", 0)
        except argparse.ArgumentTypeError as error:
            p.error("argument %s: %s" % (name, error))
        if not (1 <= start <= end and inc >= 0 and interval >= 1):
            p.error("argument %s: %s: need 1 <= START <= %d, INC >= 0, INTERVAL >= 1" % (name, text, end))
    if args.n_embd % args.n_head:
        p.error("--n-embd %d is not a multiple of --n-head %d" % (args.n_embd, args.n_head))
    if args.seed >= 2 ** 63:  # torch.manual_seed takes a signed 64-bit seed
        p.error("argument --seed: %d: must be < 2^63" % args.seed)
    if not args.lr > 0:
        p.error("argument --lr: %r: must be > 0" % args.lr)
    if not 0 <= args.final_lr_fraction <= 1:
        p.error("argument --final-lr-fraction: %r: must be in [0, 1]" % args.final_lr_fraction)
    return args


# The flags that define the run; a checkpoint made with other values is refused.
RUN_FLAGS = ("seed", "d", "n_points", "points_curriculum", "dims_curriculum", "n_embd", "n_layer", "n_head", "steps",
             "batch", "lr", "warmup", "final_lr_fraction", "bf16")


def schedule_at(text, end, step):
    """A curriculum START:INC:INTERVAL's value at `step` (0-based); `end` when there is none."""
    if not text:
        return end
    start, inc, interval = (int(v) for v in text.split(":"))
    return min(end, start + inc * (step // interval))


def lr_at(args, step):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - 1 - args.warmup)
    floor = args.final_lr_fraction
    return args.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def sample_batch(seed, step, batch, n, d, active_dims):
    """Fresh gaussian-family tasks for one step, a function of (seed, step) only, with only the
    first `active_dims` coordinates of x and w* non-zero. -> x [batch, n, d], y [batch, n] (+-1)."""
    seed_of_step = int(np.random.SeedSequence([seed, step]).generate_state(1, np.uint64)[0]) >> 1
    generator = torch.Generator().manual_seed(seed_of_step)
    x = torch.randn(batch, n, d, generator=generator)
    w = torch.randn(batch, d, generator=generator)
    x[:, :, active_dims:] = 0
    w[:, active_dims:] = 0
    w = w / w.norm(dim=1, keepdim=True)
    y = torch.where(torch.einsum("bnd,bd->bn", x, w) >= 0, 1.0, -1.0)
    return x, y


def train_step(model, optimizer, x, y, bf16):
    """One Adam step on the logistic loss of the scores at every x token. -> the loss (float)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        scores = model(x, y)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(scores.float(), (y + 1) / 2)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


class CheckpointError(ValueError):
    pass


def load_checkpoint(path):
    """-> (state, state["run"]) of a checkpoint this script wrote. Raises CheckpointError naming the
    file, in one line, for anything else: a truncated or damaged file (a disk that filled up, a
    copy cut short), another kind of pickle, a dict without this script's keys."""
    if not os.path.isfile(path):  # a FIFO would block the load forever
        raise CheckpointError("%s: not a regular file" % path)
    try:
        state = torch.load(path, map_location="cpu")
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... by damage
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError("%s: unreadable checkpoint (truncated or not train.py's?): %s" % (path, first)) from None
    keys = ("run", "model", "optimizer", "step", "history", "loads", "seconds", "cpu_seconds", "threads", "torch")
    if not isinstance(state, dict) or not all(key in state for key in keys) or not isinstance(state["run"], dict):
        raise CheckpointError("%s: not a checkpoint of train.py (it needs the keys %s)" % (path, ", ".join(keys)))
    return state, state["run"]


def save_checkpoint(path, state):
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def format_seconds(seconds):
    seconds = int(seconds)
    return "%dh%02dm%02ds" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def main(argv):
    return cli_io.run_main("train.py", train, argv)


def train(argv):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cli_io.directory_for_output(args.run_dir, "--run-dir", create=True)
    checkpoint_path = os.path.join(args.run_dir, CHECKPOINT)
    run = {flag: getattr(args, flag) for flag in RUN_FLAGS}

    torch.manual_seed(args.seed)
    model = garg_model.GargTransformer(args.d, args.n_points, args.n_embd, args.n_layer, args.n_head)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step, history, loads, seconds_before, cpu_before = 0, [], [], 0.0, 0.0
    if os.path.exists(checkpoint_path):
        try:
            state, _ = load_checkpoint(checkpoint_path)
        except CheckpointError as error:
            print("train.py: %s; move it away to start the run afresh" % error, file=sys.stderr)
            return 2
        if state["run"] != run:
            diff = sorted(k for k in run if state["run"].get(k) != run[k])
            print("train.py: %s was made with other flags (%s); use another --run-dir"
                  % (checkpoint_path, ", ".join("--%s %s" % (k.replace("_", "-"), state["run"].get(k)) for k in diff)),
                  file=sys.stderr)
            return 2
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, history, loads = state["step"], state["history"], state["loads"]
        seconds_before, cpu_before = state["seconds"], state["cpu_seconds"]
        print("resuming %s at step %d" % (checkpoint_path, step), file=sys.stderr)

    def checkpoint():
        save_checkpoint(checkpoint_path, {"run": run, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "step": step, "history": history, "loads": loads,
                                          "seconds": seconds_before + time.perf_counter() - started,
                                          "cpu_seconds": cpu_before + time.process_time() - cpu_started,
                                          "threads": args.threads, "torch": torch.__version__})

    started, cpu_started = time.perf_counter(), time.process_time()
    window_start, window_cpu, window_steps = started, cpu_started, 0
    last_step = args.steps if not args.stop_after else min(args.steps, step + args.stop_after)
    model.train()
    while step < last_step:
        n = schedule_at(args.points_curriculum, args.n_points, step)
        dims = schedule_at(args.dims_curriculum, args.d, step)
        x, y = sample_batch(args.seed, step, args.batch, n, args.d, dims)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(args, step)
        loss = train_step(model, optimizer, x, y, args.bf16)
        history.append((step, n, loss))
        step += 1
        window_steps += 1
        if step % args.progress_every == 0 or step == last_step:
            now, cpu_now = time.perf_counter(), time.process_time()
            rate = window_steps / (now - window_start)
            cpu_per_step = (cpu_now - window_cpu) / window_steps
            recent = [h[2] for h in history[-args.progress_every:]]
            load = os.getloadavg()[0]
            loads.append((step, rate, load))
            # CPU time (this process, all its threads) is the work itself; wall time and steps/s
            # also carry the machine's load.
            print("step %d/%d  loss %.4f (mean of last %d)  pairs %d  dims %d  lr %.2e  %.2f steps/s  %.3f CPU s/step  "
                  "load %.1f  elapsed %s  CPU %s  ETA %s"
                  % (step, args.steps, sum(recent) / len(recent), len(recent), n, dims, lr_at(args, step - 1), rate,
                     cpu_per_step, load, format_seconds(seconds_before + now - started),
                     format_seconds(cpu_before + cpu_now - cpu_started), format_seconds((args.steps - step) / rate)),
                  file=sys.stderr, flush=True)
            window_start, window_cpu, window_steps = now, cpu_now, 0
        if step % args.checkpoint_every == 0 or step == last_step:
            checkpoint()
    write_loss_log(args.run_dir, history)
    return 0


def write_loss_log(run_dir, history):
    path = os.path.join(run_dir, "loss.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"step": [h[0] for h in history], "n_points": [h[1] for h in history],
                   "loss": [h[2] for h in history]}, f)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""Exports a training run (train.py's checkpoint) as the files iclbench ships:

  OUT_DIR/NAME.safetensors             the model, garg-gpt2 format (garg_model.tensor_shapes)
  OUT_DIR/NAME.crosscheck.safetensors  PyTorch's scores on a fixed small prompt set, for the
                                       C++ engine's cross-check test
  OUT_DIR/NAME.loss.png                the training loss curve

usage: export.py --run-dir DIR --name NAME [--out-dir results/models] [--command "..."] [--force]

The cross-check file holds P = 4 prompts of n = n_positions - 1 context pairs (the longest
context a query can follow) and m = 8 queries, drawn with NumPy from a fixed seed:
  x                 [P, n, d] F32   context inputs
  y                 [P, n]    F32   context labels +-1 (sign(w*.x) for a random unit w* per prompt)
  x_query           [P, m, d] F32   queries
  scores_query      [P, m]    F32   score of each query alone after the n pairs: one forward pass
                                    per query over x_1, y_1, ..., x_n, y_n, x_q (2n + 1 tokens),
                                    read at the query token (position 2n)
  scores_prompt     [P, n]    F32   the plain interleaved prompt x_1, y_1, ..., x_n, y_n (2n tokens):
                                    the read-out at every x_i token (position 2(i - 1)), which has
                                    seen pairs 1..i-1
  scores_query_f64  [P, m]    F64   the same two, computed in float64 from the same (f32) weights
  scores_prompt_f64 [P, n]    F64   and inputs: the reference for deriving f32 tolerances
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_io  # noqa: E402
cli_io.require("numpy", "torch", "matplotlib")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import garg_model  # noqa: E402
import safetensors_np  # noqa: E402
import train  # noqa: E402

CROSSCHECK_FORMAT = "garg-gpt2-crosscheck"
CROSSCHECK_VERSION = 1
CROSSCHECK_SEED = 13
CROSSCHECK_PROMPTS = 4
CROSSCHECK_QUERIES = 8


def crosscheck_prompts(d, n, prompts=CROSSCHECK_PROMPTS, queries=CROSSCHECK_QUERIES, seed=CROSSCHECK_SEED):
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0C0]))
    w = rng.standard_normal((prompts, d))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    x = rng.standard_normal((prompts, n, d)).astype(np.float32)
    x_query = rng.standard_normal((prompts, queries, d)).astype(np.float32)
    y = np.where(np.einsum("pnd,pd->pn", x.astype(np.float64), w) >= 0, 1.0, -1.0).astype(np.float32)
    return x, y, x_query


def crosscheck_scores(model, x, y, x_query, dtype):
    """-> (scores_query [P, m], scores_prompt [P, n]) with the model and inputs cast to dtype;
    the query scores by one forward pass per query (the definition, not the masked batch)."""
    model = model.to(dtype)
    x, y, x_query = (torch.from_numpy(a).to(dtype) for a in (x, y, x_query))
    with torch.inference_mode():
        scores_query = torch.stack([model.score_queries(x, y, x_query[:, j:j + 1])[:, 0]
                                    for j in range(x_query.shape[1])], dim=1)
        scores_prompt = model(x, y)
    model.to(torch.float32)
    return scores_query.numpy(), scores_prompt.numpy()


def write_crosscheck(model, model_path, path, model_name):
    """model_path: the model file to hash (perhaps still staged); model_name: its final name."""
    d, n = model.config["n_dims"], model.config["n_positions"] - 1
    x, y, x_query = crosscheck_prompts(d, n)
    query32, prompt32 = crosscheck_scores(model, x, y, x_query, torch.float32)
    query64, prompt64 = crosscheck_scores(model, x, y, x_query, torch.float64)
    with open(model_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    deviation = max(np.abs(query32 - query64).max(), np.abs(prompt32 - prompt64).max())
    # How far the exact (erf) GELU, the engine's other activation, would move the scores: a
    # cross-check tolerance must sit well below this to tell the two forms apart.
    tanh_gelu = garg_model.gelu_new
    garg_model.gelu_new = torch.nn.functional.gelu
    try:
        query_erf, prompt_erf = crosscheck_scores(model, x, y, x_query, torch.float64)
    finally:
        garg_model.gelu_new = tanh_gelu
    erf_change = max(np.abs(query_erf - query64).max(), np.abs(prompt_erf - prompt64).max())
    metadata = {"format": CROSSCHECK_FORMAT, "format_version": str(CROSSCHECK_VERSION),
                "model": model_name, "model_sha256": digest, "prompts": str(x.shape[0]),
                "n_context": str(n), "n_query": str(x_query.shape[1]), "seed": str(CROSSCHECK_SEED),
                "torch": torch.__version__, "max_abs_f32_minus_f64": repr(float(deviation)),
                "max_abs_score_f64": repr(float(max(np.abs(query64).max(), np.abs(prompt64).max()))),
                "max_abs_change_with_erf_gelu": repr(float(erf_change))}
    safetensors_np.write(path, {"x": x, "y": y, "x_query": x_query,
                                "scores_query": query32, "scores_prompt": prompt32,
                                "scores_query_f64": query64, "scores_prompt_f64": prompt64}, metadata)
    return deviation, erf_change


def plot_loss(history, dims, path, title):
    """history: (step, pairs, loss) per step; dims: active input dimensions per step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = np.array([h[0] for h in history]) + 1
    loss = np.array([h[2] for h in history])
    points = np.array([h[1] for h in history])
    window = max(1, len(loss) // 100)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, loss, color="0.8", lw=0.5, label="loss of each step's batch")
    ax.plot(steps[window - 1:], smooth, color="C0", lw=1.5, label="running mean (%d steps)" % window)
    ax.set_xlabel("training step")
    ax.set_ylabel("logistic loss (mean over prompts and x positions)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if points.min() != points.max() or min(dims) != max(dims):
        twin = ax.twinx()
        twin.plot(steps, points, color="C1", lw=1, label="pairs per prompt (curriculum)")
        twin.plot(steps, dims, color="C2", lw=1, label="non-zero input dims (curriculum)")
        twin.set_ylabel("curriculum: pairs per prompt, input dims")
        lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper right")
    else:
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def main(argv):
    return cli_io.run_main("export.py", export, argv)


def export(argv):
    p = cli_io.Parser(prog="export.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--out-dir", default="results/models")
    p.add_argument("--command", default="", help="the training command, recorded in the metadata")
    p.add_argument("--force", action="store_true", help="replace existing regular files")
    args = p.parse_args(argv)
    # NAME is one file name: "a/b" would need a directory that is not there, "../x" would write
    # outside --out-dir.
    if args.name in ("", ".", "..") or "/" in args.name or "\0" in args.name:
        raise cli_io.Refused("--name %r must be a file name (no '/', not '.' or '..'); the files go in --out-dir"
                             % args.name)
    if args.run_dir == "":
        raise cli_io.Refused("--run-dir is an empty path")
    checkpoint_path = os.path.join(args.run_dir, train.CHECKPOINT)
    if not os.path.lexists(checkpoint_path):
        raise cli_io.Refused("no checkpoint at %s" % cli_io.one_line(checkpoint_path))
    # A FIFO would block the load, a directory is not a checkpoint: said as what they are.
    cli_io.regular_input(checkpoint_path, "checkpoint")
    try:
        state, run = train.load_checkpoint(checkpoint_path)
        model = garg_model.GargTransformer(run["d"], run["n_points"], run["n_embd"], run["n_layer"], run["n_head"])
        model.load_state_dict(state["model"])
        finished = state["step"] == run["steps"]
    except train.CheckpointError as error:
        raise cli_io.Refused(str(error)) from None
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise cli_io.Refused("%s: the checkpoint does not fit its own run flags: %s"
                             % (checkpoint_path, str(error).splitlines()[0] if str(error) else type(error).__name__)) \
            from None
    if not finished:
        raise cli_io.Refused("%s stopped at step %d of %d; resume it first" % (checkpoint_path, state["step"], run["steps"]))
    paths = {kind: os.path.join(args.out_dir, args.name + suffix) for kind, suffix in
             (("model", ".safetensors"), ("crosscheck", ".crosscheck.safetensors"), ("loss", ".loss.png"))}
    # Every output is checked before any work (a new --out-dir holds none of them); all three are
    # staged and renamed into place together, or none is.
    cli_io.directory_for_output(args.out_dir, "--out-dir", create=True)
    cli_io.check_outputs(paths.values(), args.force, inputs=[checkpoint_path])
    model.eval()
    history = state["history"]
    tail = [h[2] for h in history[-500:]]
    training = {"script": "scripts/train/train.py", "command": args.command, "run": run, "steps": state["step"],
                "seconds": round(state["seconds"], 1), "threads": state["threads"], "torch": state["torch"],
                "final_loss_mean_last_500": sum(tail) / len(tail), "loss": "logistic (BCE with logits) at every x token"}
    with cli_io.Staged() as staged:
        model_path = staged.path(paths["model"])
        garg_model.save(model, model_path, {"training": json.dumps(training, sort_keys=True),
                                            "source": "iclbench scripts/train (Garg et al. 2022 layout)"})
        reloaded, _ = garg_model.load(model_path)  # the file, not the checkpoint, is what ships
        deviation, erf_change = write_crosscheck(reloaded, model_path, staged.path(paths["crosscheck"]),
                                                 os.path.basename(paths["model"]))
        dims = [train.schedule_at(run["dims_curriculum"], run["d"], h[0]) for h in history]
        plot_loss(history, dims, staged.path(paths["loss"]), "%s: D=%d, %d layers, %d heads, d=%d; %d steps of %d prompts"
                  % (args.name, run["n_embd"], run["n_layer"], run["n_head"], run["d"], run["steps"], run["batch"]))
        staged.commit()
    for path in paths.values():
        print(path)
    print("cross-check: max |f32 - f64| = %.3g; the erf GELU would move scores by up to %.3g"
          % (deviation, erf_change), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""PyTorch peer of `iclbench speed --model FILE --n N` for a garg-gpt2 model (Garg et al.'s GPT-2
layout, scripts/train/garg_model.py): the same weights (read from FILE), the same prompts (read
from an `iclbench gen` data set with the seed `speed` draws its prompts with) and the same query
semantics: each prompt is x_1, y_1, ..., x_N, y_N, x_q (2N + 1 tokens, the first query of each
task), causal attention, and the result is the read-out score at x_q. Timed, as in the engine's
`speed`: tokens [B, 2N + 1, d] already interleaved -> the B scores (read-in, positions, every
block over all 2N + 1 tokens, final LayerNorm, read-out).

usage: torch_garg.py --model FILE --data DATASET [--threads 1,2] [--repeats 7]
                     [--variants eager,functional,jit] [--modes intra-op,processes,single-thread] [--json]

For each thread count it times every variant in every mode that uses at most that many cores and reports
the best (the fair peer is PyTorch at its best on this machine). Each such cell runs in fresh
processes of its own (peer_common.select), warmed up under torch.inference_mode like its timing
until two consecutive forwards agree within 10% (at least 3, at most 20 forwards;
peer_common.warmed_up), then times --repeats forwards and keeps their median. Variants, all f32
and in eval mode, each checked against `eager` before it is timed (max |score difference| <= 1e-4
times the largest |score|, f32 rounding of a different association; jit on its first 3 calls, so
on the graph the profiling executor specialised too):
  eager       garg_model.py's modules as trained (GELU-tanh as 5 element-wise ops, a fresh mask)
  functional  the same maths in fewer kernels: F.gelu(approximate="tanh") (one fused op),
              F.layer_norm, the causal mask bias built once, q/k/v split by views
  jit         `functional` traced with torch.jit.trace, frozen (torch.jit.freeze) and passed
              through torch.jit.optimize_for_inference (constant folding, oneDNN fusions)
Modes: intra-op (one process, torch.set_num_threads(threads), the whole batch) and, at 2 or more
threads, processes (`threads` processes of one torch thread each on its share of the batch,
started together, timed until the last finishes) and single-thread (one process, one torch
thread, the whole batch: with `threads` cores one can always leave the others idle).
Run it through bench/peers/compare_garg.py, which selects OpenBLAS with OPENBLAS_NUM_THREADS=1.
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "train"))
import peer_common  # noqa: E402  (first: it checks that torch imports)
import cli_io  # noqa: E402
peer_common.require("numpy")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import garg_model  # noqa: E402
import safetensors_np  # noqa: E402

VARIANTS = ("eager", "functional", "jit")
MODES = ("intra-op", "processes", "single-thread")
# f32 scores of two association orders differ by rounding only: ~1e-6 of the score scale at these
# widths (the model card's |PyTorch f32 - f64| is 5e-6 on scores up to 9.2); 1e-4 leaves room and
# still catches a wrong mask or activation (the erf GELU moves scores by ~4e-3).
AGREEMENT = 1e-4


def prompt_tokens(data_path, n):
    """-> tokens [B, 2n + 1, d]: each task's first n pairs interleaved, then its first query."""
    metadata, tensors = safetensors_np.read(data_path)
    if metadata.get("format") != "iclbench-dataset":
        raise cli_io.Refused("--data %s is not an iclbench data set" % cli_io.one_line(data_path))
    x, y, x_query = (torch.from_numpy(np.array(tensors[k])) for k in ("x", "y", "x_query"))
    if x.shape[1] < n:
        raise cli_io.Refused("--data %s has %d context pairs, fewer than --n %d"
                             % (cli_io.one_line(data_path), x.shape[1], n))
    pairs = torch.stack((x[:, :n], F.pad(y[:, :n].unsqueeze(-1), (0, x.shape[2] - 1))), dim=2)
    return torch.cat((pairs.reshape(x.shape[0], 2 * n, x.shape[2]), x_query[:, :1]), dim=1).contiguous()


def eager_forward(model, tokens):
    """garg_model.py's modules: the query is the last token, at position 2n."""
    T = tokens.shape[1]
    out = model._backbone(model._read_in(tokens), torch.arange(T), torch.ones(T, T, dtype=torch.bool).tril())
    return model._read_out(out[:, -1]).squeeze(-1)


class Functional(torch.nn.Module):
    """The forward of garg_model.py (its docstring has the maths) in fewer, larger kernels."""

    def __init__(self, model, tokens_per_prompt):
        super().__init__()
        self.model = model
        self.heads = model.config["n_head"]
        self.width = model.config["n_embd"]
        self.scale = 1.0 / math.sqrt(self.width // self.heads)  # Python numbers: constants to the tracer
        T = tokens_per_prompt
        self.register_buffer("positions", model._backbone.wpe.weight[:T].clone())
        self.register_buffer("mask_bias", torch.full((T, T), float("-inf")).triu(1))

    def forward(self, tokens):  # [B, T, d] -> [B]
        m = self.model
        B, T, _ = tokens.shape
        D, H = self.width, self.heads
        dh = D // H
        h = F.linear(tokens, m._read_in.weight, m._read_in.bias) + self.positions
        for block in m._backbone.h:
            a = F.layer_norm(h, (D,), block.ln_1.weight, block.ln_1.bias, garg_model.LAYER_NORM_EPSILON)
            qkv = torch.addmm(block.attn.c_attn.bias, a.reshape(B * T, D), block.attn.c_attn.weight)
            q, k, v = qkv.view(B, T, 3, H, dh).permute(2, 0, 3, 1, 4).reshape(3, B * H, T, dh).unbind(0)
            scores = torch.baddbmm(self.mask_bias, q, k.transpose(1, 2), alpha=self.scale)
            o = torch.bmm(torch.softmax(scores, dim=-1), v).view(B, H, T, dh).transpose(1, 2).reshape(B * T, D)
            h = h + torch.addmm(block.attn.c_proj.bias, o, block.attn.c_proj.weight).view(B, T, D)
            a = F.layer_norm(h, (D,), block.ln_2.weight, block.ln_2.bias, garg_model.LAYER_NORM_EPSILON)
            up = F.gelu(torch.addmm(block.mlp.c_fc.bias, a.reshape(B * T, D), block.mlp.c_fc.weight),
                        approximate="tanh")
            h = h + torch.addmm(block.mlp.c_proj.bias, up, block.mlp.c_proj.weight).view(B, T, D)
        last = F.layer_norm(h[:, -1], (D,), m._backbone.ln_f.weight, m._backbone.ln_f.bias,
                            garg_model.LAYER_NORM_EPSILON)
        return F.linear(last, m._read_out.weight, m._read_out.bias).squeeze(-1)


def make_forward(model_path, data_path, n, variant, share=(1, 0)):
    """-> forward() of `variant` on this process's share of the prompts, checked against eager.
    Module-level so that spawned processes can build their own (peer_common.processes)."""
    model, _ = garg_model.load(model_path)
    tokens = prompt_tokens(data_path, n)
    first, end = peer_common.batch_share(tokens.shape[0], *share)
    tokens = tokens[first:end].contiguous()
    with torch.inference_mode():
        expected = eager_forward(model, tokens)
    if variant == "eager":
        return lambda: eager_forward(model, tokens)
    functional = Functional(model, tokens.shape[1]).eval()
    if variant == "functional":
        forward = lambda: functional(tokens)  # noqa: E731
    else:
        with torch.no_grad():  # a graph traced under inference_mode cannot be frozen
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(functional, tokens)))
        forward = lambda: traced(tokens)  # noqa: E731
    # The profiling executor runs the traced graph as profiled on its first call and its
    # specialised graph from the second: jit is checked on both (and one more), under
    # inference_mode like the timing.
    with torch.inference_mode():
        for _ in range(3 if variant == "jit" else 1):
            got = forward()
            error = (got - expected).abs().max().item()
            if not error <= AGREEMENT * expected.abs().max().item():
                raise SystemExit("torch_garg.py: variant %s differs from eager by %.3g (scores up to %.3g)"
                                 % (variant, error, expected.abs().max().item()))
    return forward


def main(argv):
    parser = peer_common.Parser(prog="torch_garg.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="garg-gpt2 safetensors file")
    parser.add_argument("--data", required=True, help="iclbench data set (iclbench gen) with >= --n pairs per task")
    parser.add_argument("--n", type=peer_common.positive_int, default=64, help="context pairs per prompt")
    parser.add_argument("--threads", type=peer_common.thread_counts, default="1,2")
    parser.add_argument("--repeats", type=peer_common.positive_int, default=7)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    variants, modes = args.variants.split(","), args.modes.split(",")
    if not set(variants) <= set(VARIANTS) or not set(modes) <= set(MODES):
        parser.error("--variants from %s, --modes from %s" % (VARIANTS, MODES))
    # Inputs checked before any timing (cli_io: one line, exit 2): a FIFO would block the reader,
    # a missing, unreadable or malformed file would end in a traceback inside the first process.
    cli_io.regular_input(args.model, "--model")
    cli_io.regular_input(args.data, "--data")
    try:
        garg_model.load(args.model)
        prompts = prompt_tokens(args.data, args.n).shape[0]
    except (OSError, safetensors_np.FormatError) as error:
        raise cli_io.Refused(cli_io.one_line(error)) from None
    except KeyError as error:  # a safetensors file of another kind, without x, y or x_query
        raise cli_io.Refused("--data %s: no tensor %s" % (cli_io.one_line(args.data), error)) from None
    results = peer_common.select(make_forward, {v: (args.model, args.data, args.n, v) for v in variants}, modes,
                                 args.threads, args.repeats, prompts)
    info = dict(peer_common.configuration(), prompts=prompts, tokens_per_prompt=2 * args.n + 1,
                model=args.model, results=results)
    if args.json:
        print(json.dumps(info))
        return 0
    print("pytorch %s, BLAS %s (loaded: %s), OPENBLAS_NUM_THREADS=%s; %d prompts x %d tokens" % (
        info["torch"], info["blas"], ", ".join(info["blas_loaded"]) or "none", info["OPENBLAS_NUM_THREADS"],
        prompts, 2 * args.n + 1))
    for r in results:
        tried = ", ".join("%s/%s %.1f" % (t["variant"], t["mode"], t["prompts_per_second"]) for t in r["tried"])
        print("threads=%d: best %s/%s %.1f prompts/s (tried: %s)" % (
            r["threads"], r["variant"], r["mode"], r["prompts_per_second"], tried))
    return 0


if __name__ == "__main__":
    sys.exit(cli_io.run_main("torch_garg.py", main, sys.argv[1:]))

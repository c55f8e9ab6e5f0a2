#!/usr/bin/python3
"""PyTorch peer: the same encoder shape as `iclbench speed --model encoder:D=64,H=4,F=256,layers=4
--n 129 --queries 0 --batch 64`: pre-LN (norm_first), GELU, dropout 0, 4 layers, D = 64, 4 heads,
FFN 256, 64 prompts of 129 tokens, random weights, eval mode, inference_mode.

usage: torch_encoder.py [--threads 1,2] [--repeats 7] [--json]

For each thread count it runs every configuration that uses at most that many cores and reports
the best (the fair peer is PyTorch at its best on this machine):
  intra-op       one process, torch.set_num_threads(threads), the whole batch;
  processes      `threads` processes of one torch thread each, each on its share of the batch,
                 started together (a barrier) and timed until the last one finishes;
  single-thread  one process, one torch thread, the whole batch (at 2 threads or more: with
                 `threads` cores one can always leave the others idle).
Each configuration runs in fresh processes of its own, warmed up under torch.inference_mode like
its timing until two consecutive forwards agree within 10% (at least 3, at most 20 forwards),
then times --repeats forwards and keeps their median (peer_common.select, warmed_up).
BLAS: run it with OpenBLAS and OPENBLAS_NUM_THREADS=1 (bench/peers/compare_encoder.sh does):
Debian's default reference BLAS makes PyTorch several times slower, and OpenBLAS's own thread
pool on top of PyTorch's oversubscribes the 2 vCPUs. The configuration it ran under is printed.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common  # noqa: E402  (first: it checks that torch imports)
import torch  # noqa: E402

PROMPTS, TOKENS, WIDTH = 64, 129, 64


def build_model():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=WIDTH, nhead=4, dim_feedforward=256, dropout=0.0,
                                             activation="gelu", norm_first=True, batch_first=True)
    return torch.nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False).eval()


def make_forward(share=(1, 0)):
    """-> forward() on this process's share of the prompts (module-level: spawned processes call it)."""
    model = build_model()
    first, end = peer_common.batch_share(PROMPTS, *share)
    torch.manual_seed(1 + share[1])
    x = torch.randn(end - first, TOKENS, WIDTH)
    return lambda: model(x)


def main():
    parser = peer_common.Parser(prog="torch_encoder.py")
    parser.add_argument("--threads", type=peer_common.thread_counts, default="1,2")
    parser.add_argument("--repeats", type=peer_common.positive_int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = peer_common.select(make_forward, {"nn.TransformerEncoder": ()},
                                 ("intra-op", "processes", "single-thread"), args.threads, args.repeats, PROMPTS)
    info = dict(peer_common.configuration(), results=results)
    if args.json:
        print(json.dumps(info))
        return
    print("pytorch %s, BLAS %s (loaded: %s), OPENBLAS_NUM_THREADS=%s" % (
        info["torch"], info["blas"], ", ".join(info["blas_loaded"]) or "none", info["OPENBLAS_NUM_THREADS"]))
    for r in results:
        tried = ", ".join("%s %.1f" % (t["mode"], t["prompts_per_second"]) for t in r["tried"])
        print("threads=%d: best %s %.1f prompts/s (tried: %s)" % (r["threads"], r["mode"], r["prompts_per_second"], tried))


if __name__ == "__main__":
    main()

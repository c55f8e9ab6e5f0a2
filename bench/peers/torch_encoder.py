#!/usr/bin/python3
"""PyTorch peer: the same encoder shape as `iclbench speed --model encoder:D=64,H=4,F=256,layers=4
--n 129 --queries 0 --batch 64`: pre-LN (norm_first), GELU, dropout 0, 4 layers, D = 64, 4 heads,
FFN 256, 64 prompts of 129 tokens, random weights, eval mode, inference_mode.

usage: torch_encoder.py [--threads 1,2] [--repeats 7] [--json]
Needs Debian's python3-torch; run it with OpenBLAS as the BLAS (bench/peers/compare_encoder.sh
does), since Debian's default reference BLAS makes PyTorch several times slower.
"""
import argparse
import json
import statistics
import time

import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=256, dropout=0.0,
                                             activation="gelu", norm_first=True, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False).eval()
    x = torch.randn(64, 129, 64)
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            model(x)  # warm-up
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(x)
                seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        results.append({"threads": threads, "seconds_median": median, "prompts_per_second": 64 / median})
    info = {"torch": torch.__version__, "blas": torch.__config__.show().split("BLAS_INFO=")[1].split(",")[0],
            "results": results}
    if args.json:
        print(json.dumps(info))
    else:
        for r in results:
            print("pytorch %s threads=%d: %.1f prompts/s" % (torch.__version__, r["threads"], r["prompts_per_second"]))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Reads iclbench data sets with NumPy alone (no project code) to prove the files are plain
safetensors: the 8-byte little-endian header length, the JSON header, raw little-endian data.

usage: read_dataset_test.py ICLBENCH_BINARY WORK_DIR
"""
import json
import os
import subprocess
import sys

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + header_len])
    metadata = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + header_len :]
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]])
        tensors[name] = array.reshape(entry["shape"])
    return metadata, tensors


def generate(binary, out, *flags):
    subprocess.run([binary, "gen", "--quiet", "--force", "--out", out, *flags], check=True,
                   stdout=subprocess.DEVNULL)


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    failures = 0

    def check(condition, what):
        nonlocal failures
        if not condition:
            failures += 1
            print("FAIL:", what)

    # Noise-free: every label is sign(w*.x), context and queries.
    path = os.path.join(work, "numpy_clean.safetensors")
    T, N, M, d = 7, 33, 5, 11
    generate(binary, path, "--family", "gaussian", "--d", str(d), "--n", str(N), "--queries",
             str(M), "--tasks", str(T), "--seed", "17")
    metadata, t = read_safetensors(path)
    check(metadata["format"] == "iclbench-dataset", "format metadata")
    check(metadata["format_version"] == "1", "format version")
    check(metadata["generator"] == "gaussian", "generator name")
    check(metadata["seed"] == "17", "seed")
    params = json.loads(metadata["params"])
    check(params["d"] == d and params["n"] == N and params["queries"] == M, "params")
    expected = {"x": (T, N, d), "y": (T, N), "w_star": (T, d), "x_query": (T, M, d),
                "y_query": (T, M)}
    check(set(t) == set(expected), "tensor names %s" % sorted(t))
    for name, shape in expected.items():
        check(t[name].shape == shape, "%s shape %s != %s" % (name, t[name].shape, shape))
        check(t[name].dtype == np.float32, "%s dtype %s" % (name, t[name].dtype))
    w = t["w_star"].astype(np.float64)
    check(np.allclose(np.linalg.norm(w, axis=1), 1.0, atol=1e-6), "w* unit norm")
    scores = np.einsum("tnd,td->tn", t["x"].astype(np.float64), w)
    check(np.array_equal(np.where(scores >= 0, 1.0, -1.0), t["y"]), "context labels = sign(w*.x)")
    query_scores = np.einsum("tmd,td->tm", t["x_query"].astype(np.float64), w)
    check(np.array_equal(np.where(query_scores >= 0, 1.0, -1.0), t["y_query"]),
          "query labels = sign(w*.x_q)")

    # Noisy: an extra tensor of noisy query labels; clean query labels still follow the rule.
    path = os.path.join(work, "numpy_noisy.safetensors")
    generate(binary, path, "--family", "cube", "--d", "3", "--n", "4000", "--queries", "10",
             "--tasks", "2", "--noise", "0.3", "--seed", "3")
    metadata, t = read_safetensors(path)
    check("y_query_noisy" in t, "y_query_noisy present when noise > 0")
    scores = np.einsum("tnd,td->tn", t["x"].astype(np.float64), t["w_star"].astype(np.float64))
    flip_rate = np.mean(np.where(scores >= 0, 1.0, -1.0) != t["y"])
    # 8000 Bernoulli(0.3) flips: standard error 0.0051; 6 of them is 0.031.
    check(abs(flip_rate - 0.3) < 0.031, "flip rate %.4f vs 0.3" % flip_rate)

    print("python reader: ok" if failures == 0 else "python reader: %d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Tests of scripts/train/: the garg-gpt2 model against an independent float64 NumPy forward
written from the documented semantics (the slow twin), the masked many-query pass against one
query per pass, the file format and its refusals, the Garg checkpoint converter, the baselines of
evaluate.py against direct solutions, the export's cross-check file, and that a killed and
resumed training run ends with the same bytes as an uninterrupted one.

usage: train_test.py WORK_DIR        (Debian's python3-torch, python3-numpy, python3-scipy)
"""
import contextlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import scipy.optimize
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_DIR = os.path.join(HERE, "..", "..", "scripts", "train")
sys.path.insert(0, TRAIN_DIR)
import convert_garg  # noqa: E402
import evaluate  # noqa: E402
import export  # noqa: E402
import garg_model  # noqa: E402
import safetensors_np  # noqa: E402
import train  # noqa: E402

FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)
        print("FAIL:", what)


# --- The slow twin: the forward pass from the format's tensors alone, in float64 -------------------

def reference_scores(tensors, config, tokens, positions, visible):
    """tokens [T, d] already interleaved, positions [T], visible [T, T] bool -> read-out [T]."""
    t = {name: value.astype(np.float64) for name, value in tensors.items()}
    D, H = config["n_embd"], config["n_head"]
    dh = D // H

    def layer_norm(h, prefix):
        mean = h.mean(axis=1, keepdims=True)
        var = ((h - mean) ** 2).mean(axis=1, keepdims=True)
        return (h - mean) / np.sqrt(var + 1e-5) * t[prefix + ".weight"] + t[prefix + ".bias"]

    h = tokens @ t["_read_in.weight"].T + t["_read_in.bias"] + t["_backbone.wpe.weight"][positions]
    for i in range(config["n_layer"]):
        p = "_backbone.h.%d." % i
        a = layer_norm(h, p + "ln_1")
        qkv = a @ t[p + "attn.c_attn.weight"] + t[p + "attn.c_attn.bias"]
        heads = []
        for j in range(H):
            q = qkv[:, j * dh:(j + 1) * dh]
            k = qkv[:, D + j * dh:D + (j + 1) * dh]
            v = qkv[:, 2 * D + j * dh:2 * D + (j + 1) * dh]
            s = q @ k.T / math.sqrt(dh)
            s = np.where(visible, s, -np.inf)
            w = np.exp(s - s.max(axis=1, keepdims=True))
            heads.append((w / w.sum(axis=1, keepdims=True)) @ v)
        h = h + np.concatenate(heads, axis=1) @ t[p + "attn.c_proj.weight"] + t[p + "attn.c_proj.bias"]
        a = layer_norm(h, p + "ln_2")
        f = a @ t[p + "mlp.c_fc.weight"] + t[p + "mlp.c_fc.bias"]
        f = 0.5 * f * (1 + np.tanh(math.sqrt(2 / math.pi) * (f + 0.044715 * f ** 3)))
        h = h + f @ t[p + "mlp.c_proj.weight"] + t[p + "mlp.c_proj.bias"]
    h = layer_norm(h, "_backbone.ln_f")
    return (h @ t["_read_out.weight"].T)[:, 0] + t["_read_out.bias"][0]


def interleave(x, y):  # x [n, d], y [n] -> [2n, d], the y token (y_i, 0, ..., 0)
    n, d = x.shape
    tokens = np.zeros((2 * n, d))
    tokens[0::2] = x
    tokens[1::2, 0] = y
    return tokens


def random_model(seed, d=5, n_positions=9, n_embd=24, n_layer=2, n_head=3):
    """A model whose weights are all O(1), not GPT-2's 0.02 initialisation, so that every
    tensor visibly matters to the scores."""
    torch.manual_seed(seed)
    model = garg_model.GargTransformer(d, n_positions, n_embd, n_layer, n_head)
    with torch.no_grad():
        for name, p in model.named_parameters():
            gain = ".ln_" in name and name.endswith(".weight")
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() == 2 else 0.1) + (1.0 if gain else 0.0))
    return model.eval()


def draw(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# Tolerance for f32 PyTorch against the f64 twin. A dot product of length K <= 4D = 96 in f32
# has a relative error near sqrt(K) * 2^-24 ~ 6e-7 with high probability (the probabilistic
# rounding-error bound of Higham and Mary 2019; the worst case K * 2^-24 is never approached by
# random data). The score chains about ten such steps (read-in; per layer q/k/v, attention, c_proj,
# c_fc, c_proj; read-out), and LayerNorm amplifies by |h| / std(h), a small factor for these O(1)
# weights: 10 * 6e-7 * 3 ~ 2e-5 relative to (1 + |score|). Measured: 5e-7. A wrong formula moves
# the scores more: the erf GELU instead of the tanh form by ~1e-4, eps 1e-4 instead of 1e-5 by
# ~2e-4, one position off or no 1/sqrt(dh) by > 1e-1.
TOLERANCE = 2e-5


def close(actual, expected, what, tolerance=TOLERANCE):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    error = np.abs(actual - expected) / (1 + np.abs(expected))
    worst = np.unravel_index(np.argmax(error), error.shape) if error.size else None
    check(error.size and error.max() <= tolerance,
          "%s: worst at %s: expected %.8g, actual %.8g (relative error %.3g > %.3g)"
          % (what, worst, expected[worst], actual[worst], error.max(), tolerance) if error.size else what + ": empty")


def test_forward_matches_reference():
    model = random_model(1)
    tensors = {k: v.numpy() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(1)
    n, m = 8, 3  # 2n + 1 = 17 <= 2 n_positions = 18: the longest prompt the positions allow
    x, y, xq = draw(rng, 2, n, 5), np.sign(draw(rng, 2, n)), draw(rng, 2, m, 5)
    with torch.no_grad():
        prompt = model(torch.from_numpy(x), torch.from_numpy(y)).numpy()
        queries = model.score_queries(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xq)).numpy()
    check(float(np.abs(prompt).max()) > 0.5, "scores too small to test anything: %s" % prompt)
    for b in range(2):
        tokens = interleave(x[b], y[b])
        T = 2 * n
        expected = reference_scores(tensors, model.config, tokens, np.arange(T), np.tril(np.ones((T, T), bool)))
        close(prompt[b], expected[0::2], "interleaved prompt %d vs the NumPy twin" % b)
        for j in range(m):
            tokens_q = np.vstack((tokens, xq[b, j:j + 1]))
            expected_q = reference_scores(tensors, model.config, tokens_q, np.arange(T + 1),
                                          np.tril(np.ones((T + 1, T + 1), bool)))[-1]
            close(queries[b, j], expected_q, "prompt %d query %d vs the NumPy twin" % (b, j))


def test_many_queries_are_independent():
    model = random_model(2)
    rng = np.random.default_rng(2)
    x, y, xq = (torch.from_numpy(a) for a in (draw(rng, 3, 6, 5), np.sign(draw(rng, 3, 6)), draw(rng, 3, 7, 5)))
    with torch.no_grad():
        together = model.score_queries(x, y, xq)
        alone = torch.cat([model.score_queries(x, y, xq[:, j:j + 1]) for j in range(7)], dim=1)
        changed = xq.clone()
        changed[:, 1:] = torch.randn(3, 6, 5)
        first = model.score_queries(x, y, changed)[:, 0]
        # The training forward reads x_{n+1} after n pairs: the same prompt as a query after n pairs.
        longer = model(torch.cat((x, xq[:, :1]), 1), torch.cat((y, torch.ones(3, 1)), 1))[:, -1]
    close(together, alone, "m queries in one pass vs one query per pass", 1e-5)
    close(first, together[:, 0], "a query's score does not depend on the other queries", 1e-5)
    close(longer, together[:, 0], "x_{n+1} in the training forward vs the query after n pairs", 1e-5)
    # Causality: a prefix of the prompt gives the same scores at its positions.
    with torch.no_grad():
        close(model(x[:, :3], y[:, :3]), model(x, y)[:, :3], "prefix of a prompt", 1e-5)
    try:
        with torch.no_grad():
            model.score_queries(torch.zeros(1, 9, 5), torch.ones(1, 9), torch.zeros(1, 1, 5))
        check(False, "a prompt of 2n + 1 = 19 > 18 tokens was accepted")
    except ValueError:
        pass


def test_file_format(work):
    model = random_model(3)
    path = os.path.join(work, "model.safetensors")
    garg_model.save(model, path, {"training": "{}"})
    metadata, tensors = safetensors_np.read(path)
    expected_names = list(garg_model.tensor_shapes(model.config))
    check(list(tensors) == expected_names, "file order %s" % list(tensors)[:5])
    check(len(expected_names) == 12 * 2 + 7, "tensor count %d" % len(expected_names))
    for key, value in (("format", "garg-gpt2"), ("format_version", "1"), ("n_dims", "5"), ("n_positions", "9"),
                       ("n_embd", "24"), ("n_layer", "2"), ("n_head", "3"), ("layer_norm_epsilon", "1e-05"),
                       ("activation_function", "gelu_new")):
        check(metadata.get(key) == value, "metadata %s = %r, expected %r" % (key, metadata.get(key), value))
    check(tensors["_backbone.wpe.weight"].shape == (18, 24) and tensors["_backbone.h.1.attn.c_attn.weight"].shape
          == (24, 72) and tensors["_read_out.weight"].shape == (1, 24), "shapes in the file")
    with open(path, "rb") as f:
        blob = f.read()
    header_len = int.from_bytes(blob[:8], "little")
    check(header_len % 8 == 0 and blob[8 + header_len - 1:8 + header_len] in (b" ", b"}"), "header padding")
    loaded, _ = garg_model.load(path)
    for name, value in model.state_dict().items():
        check(torch.equal(loaded.state_dict()[name], value), "round trip of %s" % name)

    def rewrite(mutate_metadata=None, mutate_tensors=None):
        m, t = safetensors_np.read(path)
        m, t = dict(m), dict(t)
        if mutate_metadata:
            mutate_metadata(m)
        if mutate_tensors:
            mutate_tensors(t)
        bad = os.path.join(work, "bad.safetensors")
        safetensors_np.write(bad, t, m)
        return bad

    def refused(bad, words, what):
        try:
            garg_model.load(bad)
            check(False, "%s was accepted" % what)
        except safetensors_np.FormatError as error:
            check(all(w in str(error) for w in words), "%s: message %r lacks %s" % (what, str(error), words))

    refused(rewrite(mutate_tensors=lambda t: t.pop("_backbone.h.1.mlp.c_fc.bias")), ["missing", "h.1.mlp.c_fc.bias"],
            "a missing tensor")
    refused(rewrite(mutate_tensors=lambda t: t.update({"_backbone.wte.weight": np.zeros((3, 24), np.float32)})),
            ["unexpected", "wte"], "an extra tensor")
    refused(rewrite(mutate_tensors=lambda t: t.update({"_read_in.weight": np.zeros((24, 6), np.float32)})),
            ["_read_in.weight", "[24, 5]"], "a wrong shape")
    refused(rewrite(mutate_metadata=lambda m: m.update({"n_positions": "10"})), ["wpe", "[20, 24]"],
            "n_positions that disagrees with wpe")
    refused(rewrite(mutate_metadata=lambda m: m.update({"format": "iclbench-model"})), ["format"], "another format")
    refused(rewrite(mutate_metadata=lambda m: m.update({"format_version": "2"})), ["format_version"], "a newer version")
    nan = lambda t: t.update({"_read_out.bias": np.array([np.nan], np.float32)})
    refused(rewrite(mutate_tensors=nan), ["_read_out.bias", "non-finite"], "a NaN")
    with open(os.path.join(work, "truncated.safetensors"), "wb") as f:
        f.write(blob[:-4])
    refused(os.path.join(work, "truncated.safetensors"), ["outside"], "a truncated file")


def test_converter(work):
    """A Garg et al. checkpoint as transformers 4.17 saves it: the TransformerModel parameters
    plus wte [vocab, D] and per-block attn.bias / attn.masked_bias buffers."""
    model = random_model(4)
    state = dict(model.state_dict())
    state["_backbone.wte.weight"] = torch.randn(50, 24)
    for i in range(2):
        state["_backbone.h.%d.attn.bias" % i] = torch.tril(torch.ones(18, 18, dtype=torch.uint8)).view(1, 1, 18, 18)
        state["_backbone.h.%d.attn.masked_bias" % i] = torch.tensor(-1e4)
    checkpoint = os.path.join(work, "state.pt")
    torch.save({"model_state_dict": state, "optimizer_state_dict": {}, "train_step": 1234}, checkpoint)
    out = os.path.join(work, "converted.safetensors")
    run = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, "convert_garg.py"), checkpoint, "--n-head", "3",
                          "--out", out], capture_output=True, text=True)
    check(run.returncode == 0, "convert_garg.py failed: %s" % run.stderr)
    loaded, metadata = garg_model.load(out)
    check(loaded.config == model.config, "converted config %s" % loaded.config)
    for name, value in model.state_dict().items():
        check(torch.equal(loaded.state_dict()[name], value), "converted %s" % name)
    training = json.loads(metadata["training"])
    check(training.get("train_step") == 1234 and len(training.get("dropped", [])) == 5, "converter metadata %s" % training)
    for mutate, words in ((lambda s: s.update({"_backbone.h.0.attn.c_attn.weight": torch.zeros(24, 70)}), ["c_attn"]),
                          (lambda s: s.update({"_backbone.h.0.extra": torch.zeros(1)}), ["unknown"]),
                          (lambda s: s.pop("_backbone.ln_f.bias"), ["missing", "ln_f.bias"]),
                          # iclbench's own train.py checkpoint: export.py is the way, said so.
                          (lambda s: s.update({"run": {}, "model": {}, "optimizer": {}}), ["train.py", "export.py"])):
        broken = dict(state)
        mutate(broken)
        torch.save(broken, checkpoint)
        run = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, "convert_garg.py"), checkpoint, "--n-head", "3",
                              "--out", out, "--force"], capture_output=True, text=True)
        check(run.returncode == 2 and all(w in run.stderr for w in words) and run.stderr.count("\n") == 1,
              "converter on a broken checkpoint: rc %d, %r" % (run.returncode, run.stderr))


def test_baselines():
    rng = np.random.default_rng(5)
    T, n, d, m = 6, 12, 4, 9
    x, xq = draw(rng, T, n, d), draw(rng, T, m, d)
    w_star = rng.standard_normal((T, d))
    y = np.where(np.einsum("tnd,td->tn", x, w_star) >= 0, 1.0, -1.0).astype(np.float32)
    # Hard-margin SVM: the same optimum as a general-purpose constrained solver.
    for t in range(T):
        z = y[t, :, None].astype(np.float64) * x[t]
        w = evaluate.hard_margin_svm(z)
        direct = scipy.optimize.minimize(lambda v: v @ v, np.linalg.lstsq(z, np.ones(n), rcond=None)[0] * 2,
                                         jac=lambda v: 2 * v, method="SLSQP",
                                         constraints=[{"type": "ineq", "fun": lambda v: z @ v - 1, "jac": lambda v: z}],
                                         options={"ftol": 1e-14, "maxiter": 500})
        check((z @ w).min() > 1 - 1e-9, "svm constraints: min margin %.12f" % (z @ w).min())
        close(w, direct.x, "hard-margin svm task %d vs SLSQP" % t, 1e-5)
    # Logistic regression: the optimum of the same objective found by BFGS.
    w = evaluate.logistic_weights(x, y)
    for t in range(T):
        z = y[t, :, None].astype(np.float64) * x[t]
        objective = lambda v: 0.5 * v @ v + np.logaddexp(0, -z @ v).sum()
        direct = scipy.optimize.minimize(objective, np.zeros(d), method="BFGS", options={"gtol": 1e-10})
        close(w[t], direct.x, "logistic task %d vs BFGS" % t, 1e-6)
    # 3-NN by brute force over every query.
    scores = evaluate.knn_scores(x, y, xq, chunk=4)
    for t in range(T):
        for j in range(m):
            order = np.argsort(((x[t] - xq[t, j]) ** 2).sum(1))
            check(scores[t, j] == y[t, order[:3]].mean(), "3-nn task %d query %d" % (t, j))
    close(evaluate.averaging_scores(x, y, xq)[0], xq[0] @ (y[0] @ x[0]), "averaging")
    check(np.array_equal(evaluate.task_errors(np.array([[0.0, -1.0, 2.0]]), np.array([[1.0, 1.0, -1.0]])),
                         np.array([2 / 3])), "a zero score predicts +1")
    check(abs(evaluate.averaging_closed_form(8, 32) - 0.1688) < 1e-3, "closed form at d=8, N=32")


def run_train(work, run_dir, *extra):
    flags = ["--run-dir", run_dir, "--d", "4", "--n-points", "6", "--points-curriculum", "3:1:2", "--dims-curriculum", "2:1:5", "--n-embd", "16",
             "--n-layer", "2", "--n-head", "2", "--steps", "12", "--batch", "8", "--lr", "1e-3", "--warmup", "3",
             "--threads", "1", "--checkpoint-every", "2", "--progress-every", "4", "--seed", "7"]
    return [sys.executable, os.path.join(TRAIN_DIR, "train.py")] + flags + list(extra)


def checkpoint_bytes(run_dir):
    state = torch.load(os.path.join(run_dir, "checkpoint.pt"))
    model = b"".join(v.numpy().tobytes() for v in state["model"].values())
    return state["step"], model, state["history"]


def test_resume(work):
    straight, stopped, killed = (os.path.join(work, name) for name in ("straight", "stopped", "killed"))
    for path in (straight, stopped, killed):
        shutil.rmtree(path, ignore_errors=True)
    subprocess.run(run_train(work, straight), check=True, capture_output=True)
    subprocess.run(run_train(work, stopped, "--stop-after", "5"), check=True, capture_output=True)
    check(checkpoint_bytes(stopped)[0] == 5, "--stop-after 5 stopped at step %d" % checkpoint_bytes(stopped)[0])
    subprocess.run(run_train(work, stopped), check=True, capture_output=True)
    # SIGKILL once the first checkpoint exists: whatever step it dies at, the resumed run restarts
    # from the last complete checkpoint.
    process = subprocess.Popen(run_train(work, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(killed, "checkpoint.pt")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = subprocess.run(run_train(work, killed), capture_output=True, text=True)
    check(resumed.returncode == 0, "resume after SIGKILL failed: %s" % resumed.stderr)
    step, model, history = checkpoint_bytes(straight)
    check(step == 12 and len(history) == 12, "straight run: step %d, %d losses" % (step, len(history)))
    check([h[1] for h in history] == [3, 3, 4, 4, 5, 5, 6, 6, 6, 6, 6, 6], "curriculum %s" % [h[1] for h in history])
    for name, other in (("stopped at 5 and resumed", stopped), ("killed and resumed", killed)):
        other_step, other_model, other_history = checkpoint_bytes(other)
        check(other_step == 12 and other_model == model, "%s: the final weights differ from the straight run" % name)
        check(other_history == history, "%s: the loss history differs" % name)
    mismatch = subprocess.run(run_train(work, straight, "--lr", "2e-3"), capture_output=True, text=True)
    check(mismatch.returncode == 2 and "--lr" in mismatch.stderr, "resume with other flags: %r" % mismatch.stderr)

    # Export: the model file scores the cross-check prompts as stored, in f32 and f64.
    out_dir = os.path.join(work, "models")
    shutil.rmtree(out_dir, ignore_errors=True)
    run = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, "export.py"), "--run-dir", straight, "--name", "t",
                          "--out-dir", out_dir], capture_output=True, text=True)
    check(run.returncode == 0, "export failed: %s" % run.stderr)
    again = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, "export.py"), "--run-dir", straight, "--name", "t",
                            "--out-dir", out_dir], capture_output=True, text=True)
    check(again.returncode == 2 and "exists" in again.stderr, "export over existing files: %r" % again.stderr)
    model, metadata = garg_model.load(os.path.join(out_dir, "t.safetensors"))
    check(json.loads(metadata["training"])["steps"] == 12, "training metadata %s" % metadata["training"])
    meta, cc = safetensors_np.read(os.path.join(out_dir, "t.crosscheck.safetensors"))
    P, n, m = 4, 5, 8  # n = n_positions - 1
    check(meta["format"] == "garg-gpt2-crosscheck" and meta["n_context"] == str(n)
          and float(meta["max_abs_change_with_erf_gelu"]) > 0, "cross-check metadata %s" % meta)
    check(cc["x"].shape == (P, n, 4) and cc["y"].shape == (P, n) and cc["x_query"].shape == (P, m, 4)
          and cc["scores_query"].shape == (P, m) and cc["scores_prompt"].shape == (P, n)
          and cc["scores_query_f64"].dtype == np.float64, "cross-check shapes")
    _, tensors = safetensors_np.read(os.path.join(out_dir, "t.safetensors"))
    for p in range(P):
        tokens = interleave(cc["x"][p], cc["y"][p])
        T = 2 * n
        expected = reference_scores(tensors, model.config, tokens, np.arange(T), np.tril(np.ones((T, T), bool)))
        close(cc["scores_prompt"][p], expected[0::2], "cross-check scores_prompt %d (f32)" % p)
        close(cc["scores_prompt_f64"][p], expected[0::2], "cross-check scores_prompt %d (f64)" % p, 1e-12)
        for j in range(m):
            tokens_q = np.vstack((tokens, cc["x_query"][p, j:j + 1]))
            expected_q = reference_scores(tensors, model.config, tokens_q, np.arange(T + 1),
                                          np.tril(np.ones((T + 1, T + 1), bool)))[-1]
            close(cc["scores_query"][p, j], expected_q, "cross-check scores_query %d,%d (f32)" % (p, j))
            close(cc["scores_query_f64"][p, j], expected_q, "cross-check scores_query %d,%d (f64)" % (p, j), 1e-12)

    # evaluate.py end to end on the exported file.
    result_path = os.path.join(work, "eval.json")
    run = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, "evaluate.py"), "--model",
                          os.path.join(out_dir, "t.safetensors"), "--tasks", "60", "--queries", "400", "--n-grid", "2,5",
                          "--out", result_path, "--threads", "1"], capture_output=True, text=True)
    check(run.returncode == 0, "evaluate.py failed: %s" % run.stderr)
    rows = json.load(open(result_path))["rows"]
    check([r["n"] for r in rows] == [2, 5], "evaluated grid %s" % [r["n"] for r in rows])
    for r in rows:
        # 60 tasks x 400 queries: the query-sampled mean has a standard error near
        # sqrt(0.25 / 400) / sqrt(60) ~ 0.003 around the exact angle's mean; 0.02 is > 6 of them.
        check(abs(r["averaging"]["mean"] - r["averaging_exact_angle"]["mean"]) < 0.02,
              "N=%d: averaging by queries %.4f vs exact angle %.4f" % (r["n"], r["averaging"]["mean"],
                                                                      r["averaging_exact_angle"]["mean"]))
        for name in evaluate.LEARNERS:
            low, high = r[name]["ci95"]
            check(0 <= low <= r[name]["mean"] <= high <= 1, "N=%d %s interval %s" % (r["n"], name, r[name]))
    wrong_d = os.path.join(work, "wrong_d.safetensors")
    safetensors_np.write(wrong_d, {"x": np.zeros((2, 5, 3), np.float32), "y": np.ones((2, 5), np.float32),
                                   "w_star": np.eye(2, 3, dtype=np.float32), "x_query": np.zeros((2, 1, 3), np.float32),
                                   "y_query": np.ones((2, 1), np.float32)},
                         {"format": "iclbench-dataset", "params": json.dumps({"family": "gaussian", "noise": 0})})
    for flags, words in ((["--data", wrong_d], ["d = 3", "n_dims = 4"]), (["--n-grid", "6"], ["N = 6"]),
                         (["--n-grid", "x"], ["--n-grid"])):
        run = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, "evaluate.py"), "--model",
                              os.path.join(out_dir, "t.safetensors")] + flags, capture_output=True, text=True)
        check(run.returncode == 2 and all(w in run.stderr for w in words), "evaluate.py %s: rc %d, %r"
              % (flags, run.returncode, run.stderr))


def call(main_function, argv):
    """-> (exit code, stderr) of a script's main() run in this process (no 2 s torch import)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main_function(argv)
        except SystemExit as exit:  # argparse's errors
            code = exit.code
    return code, err.getvalue()


def files_under(path):
    return sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names)


def test_bad_input(work):
    """Bad input to the tools: one line on stderr, exit 2, no traceback, nothing written (and
    nothing ever outside --out-dir). Needs test_resume's finished run in WORK/straight."""
    def refused(what, code, err, words, before, after):
        check(code == 2 and err.count("\n") == 1 and "Traceback" not in err and all(w in err for w in words),
              "%s: rc %s, %r" % (what, code, err))
        check(before == after, "%s wrote %s" % (what, sorted(set(after) - set(before))))

    straight = os.path.join(work, "straight")
    bad = os.path.join(work, "bad")
    shutil.rmtree(bad, ignore_errors=True)
    out_dir = os.path.join(bad, "out")
    os.makedirs(out_dir)
    # --name with a directory in it: 'a/b' raised FileNotFoundError, '../x' wrote beside --out-dir.
    for name in ("a/b", "../x", "..", "", "/tmp/x"):
        before = files_under(work)
        code, err = call(export.main, ["--run-dir", straight, "--name", name, "--out-dir", out_dir])
        refused("export.py --name %r" % name, code, err, ["--name", "file name"], before, files_under(work))
    # A truncated checkpoint (a full disk, a copy cut short): export and a resumed train refuse it.
    cut = os.path.join(bad, "cut")
    os.makedirs(cut)
    with open(os.path.join(straight, "checkpoint.pt"), "rb") as f:
        data = f.read()
    for size in (len(data) // 2, 10, 0):
        with open(os.path.join(cut, "checkpoint.pt"), "wb") as f:
            f.write(data[:size])
        before = files_under(bad)
        code, err = call(export.main, ["--run-dir", cut, "--name", "t", "--out-dir", out_dir])
        refused("export.py on a checkpoint cut to %d bytes" % size, code, err, ["checkpoint.pt", "unreadable"], before,
                files_under(bad))
        flags = run_train(work, cut)[2:]
        code, err = call(train.main, flags)
        refused("train.py resuming a checkpoint cut to %d bytes" % size, code, err, ["checkpoint.pt", "unreadable"],
                before, files_under(bad))
    # Another pickle where the checkpoint should be: a dict without train.py's keys.
    torch.save({"model": {}}, os.path.join(cut, "checkpoint.pt"))
    before = files_under(bad)
    code, err = call(export.main, ["--run-dir", cut, "--name", "t", "--out-dir", out_dir])
    refused("export.py on a foreign checkpoint", code, err, ["not a checkpoint of train.py"], before, files_under(bad))
    # The converter: a FIFO input is refused at once (not waited on), NaN or inf weights are
    # refused before writing (iclbench would refuse the file).
    fifo = os.path.join(bad, "fifo.pt")
    os.mkfifo(fifo)
    out = os.path.join(out_dir, "converted.safetensors")
    try:
        run = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, "convert_garg.py"), fifo, "--n-head", "3",
                              "--out", out], capture_output=True, text=True, timeout=300)
        refused("convert_garg.py on a FIFO", run.returncode, run.stderr, ["not a regular file"], [], files_under(out_dir))
    except subprocess.TimeoutExpired:
        check(False, "convert_garg.py waited on a FIFO input")
    state = dict(random_model(4).state_dict())
    for name, value in (("_read_in.weight", float("nan")), ("_backbone.h.1.mlp.c_fc.weight", float("inf"))):
        broken = {key: tensor.clone() for key, tensor in state.items()}
        broken[name][0, 0] = value
        checkpoint = os.path.join(bad, "nan.pt")
        torch.save(broken, checkpoint)
        before = files_under(bad)
        code, err = call(convert_garg.main, [checkpoint, "--n-head", "3", "--out", out])
        refused("convert_garg.py with %s = %s" % (name, value), code, err, [name, "non-finite"], before, files_under(bad))
    # Finite in float64 but not in the float32 the file holds (the check once ran before the cast,
    # and iclbench then refused the written file); FLT_MAX itself is still finite and accepted.
    for value, accepted in ((1e300, False), (-3.5e38, False), (3.4028234663852886e38, True)):
        wide = {key: tensor.to(torch.float64) for key, tensor in state.items()}
        wide["_backbone.h.0.mlp.c_proj.weight"][0, 0] = value
        checkpoint = os.path.join(bad, "wide.pt")
        torch.save(wide, checkpoint)
        before = files_under(bad)
        code, err = call(convert_garg.main, [checkpoint, "--n-head", "3", "--out", out])
        if accepted:
            check(code == 0 and os.path.isfile(out), "convert_garg.py with an f64 weight %g: rc %s, %r" % (value, code, err))
            os.unlink(out)
        else:
            refused("convert_garg.py with an f64 weight %g" % value, code, err, ["c_proj.weight", "float32"], before,
                    files_under(bad))

    good = os.path.join(bad, "good.pt")
    torch.save(state, good)
    a_file = os.path.join(bad, "a_file")
    with open(a_file, "w") as f:
        f.write("mine\n")
    a_dir = os.path.join(bad, "a_dir")
    os.makedirs(a_dir)
    link = os.path.join(bad, "link.safetensors")
    os.symlink(a_file, link)
    export_flags = ["--run-dir", straight, "--name", "t"]
    train_flags = run_train(work, os.path.join(bad, "run"))[2:]
    # Empty paths, a regular file where a directory goes, a directory or FIFO where a file goes,
    # a symbolic link or the input itself as the output (--force replaces regular files only).
    cases = [
        ("export.py --out-dir ''", export.main, export_flags + ["--out-dir", ""], ["--out-dir", "empty"]),
        ("export.py --out-dir FILE", export.main, export_flags + ["--out-dir", a_file], ["not a directory"]),
        ("train.py --run-dir ''", train.main, ["--run-dir", ""] + train_flags[2:], ["--run-dir", "empty"]),
        ("train.py --run-dir FILE", train.main, ["--run-dir", a_file] + train_flags[2:], ["not a directory"]),
        ("convert_garg.py --out ''", convert_garg.main, [good, "--n-head", "3", "--out", ""], ["empty"]),
        ("convert_garg.py DIR", convert_garg.main, [a_dir, "--n-head", "3", "--out", out], ["not a regular file"]),
        ("convert_garg.py --out DIR", convert_garg.main, [good, "--n-head", "3", "--out", a_dir, "--force"],
         ["not a regular file"]),
        ("convert_garg.py --out LINK --force", convert_garg.main, [good, "--n-head", "3", "--out", link, "--force"],
         ["not a regular file"]),
        ("convert_garg.py --out INPUT --force", convert_garg.main, [good, "--n-head", "3", "--out", good, "--force"],
         ["input"]),
        ("convert_garg.py ''", convert_garg.main, ["", "--n-head", "3", "--out", out], ["empty"]),
    ]
    # argparse's own errors and out-of-range numbers: one line (argparse prints the usage first).
    for flag, value in (("--steps", "1e3"), ("--lr", "nan"), ("--lr", "inf"), ("--batch", "0"), ("--d", "0"),
                        ("--steps", "-2"), ("--seed", "-1"), ("--seed", str(2 ** 64)), ("--lr", "-1e-3"),
                        ("--final-lr-fraction", "2"), ("--warmup", "1.5"), ("--steps", " 5"), ("--batch", "+5"),
                        ("--d", "5_0")):
        cases.append(("train.py %s %s" % (flag, value), train.main, train_flags + [flag, value], ["train.py", flag]))
    # Curriculum parts in decimal digits only (int() took " 3", "+3", "1_0" and Arabic-Indic digits,
    # and the run started, creating --run-dir): refused naming the flag and the part, before the
    # run directory exists (checked after the loop).
    for flag, value, part in (("--points-curriculum", "+3:1:2", "+3"), ("--points-curriculum", "3:1: 2", " 2"),
                              ("--dims-curriculum", "2:1_0:5", "1_0"), ("--dims-curriculum", "\u0662:1:5", "\u0662"),
                              ("--points-curriculum", "3:-1:2", "-1")):
        cases.append(("train.py %s %r" % (flag, value), train.main, train_flags + [flag, value],
                      ["train.py: error: argument " + flag, repr(part)]))
    cases += [
        ("train.py without --run-dir", train.main, train_flags[2:], ["train.py", "--run-dir"]),
        ("export.py --bogus", export.main, export_flags + ["--out-dir", out_dir, "--bogus"], ["export.py", "--bogus"]),
        ("export.py --name a$'\\n'b", export.main, ["--run-dir", straight, "--name", "a\nb", "--out-dir", out_dir, "--x"],
         ["export.py"]),
        ("convert_garg.py --n-head 1e0", convert_garg.main, [good, "--n-head", "1e0", "--out", out], ["--n-head"]),
        ("convert_garg.py --n-head 0", convert_garg.main, [good, "--n-head", "0", "--out", out], ["--n-head"]),
    ]
    for what, main_function, argv, words in cases:
        before = files_under(bad)
        code, err = call(main_function, argv)
        refused(what, code, err, words, before, files_under(bad))
    with open(a_file) as f:
        check(f.read() == "mine\n" and os.path.islink(link), "a refused output was changed")
    check(not os.path.exists(train_flags[1]), "a refused train.py created its --run-dir %s" % train_flags[1])

    # evaluate.py: its outputs are checked before the evaluation (an existing file was silently
    # replaced, a missing directory failed after the whole run), its numbers are integers.
    model_file = os.path.join(work, "models", "t.safetensors")
    eval_flags = ["--model", model_file, "--tasks", "3", "--queries", "2", "--n-grid", "2", "--threads", "1"]
    fifo_model = os.path.join(bad, "fifo.safetensors")
    os.mkfifo(fifo_model)
    for what, argv, words in (
            ("--out FILE", ["--out", a_file], ["exists", "--force"]),
            ("--out DIR --force", ["--out", a_dir, "--force"], ["not a regular file"]),
            ("--out LINK --force", ["--out", link, "--force"], ["not a regular file"]),
            ("--out X --markdown X", ["--out", os.path.join(bad, "x"), "--markdown", os.path.join(bad, "x")], ["twice"]),
            ("--out MODEL --force", ["--out", model_file, "--force"], ["input"]),
            ("--out in a missing directory", ["--out", os.path.join(bad, "no", "x.json")], ["no such directory"]),
            ("--out ''", ["--out", ""], ["empty"]),
            ("--tasks 1e3", ["--tasks", "1e3"], ["--tasks"]),
            ("--queries 0", ["--queries", "0"], ["--queries"]),
            ("--n-grid 4,2", ["--n-grid", "4,2"], ["--n-grid", "increase"]),
            # Each N in decimal digits (int() took " 2", "+2", "2_0", Arabic-Indic digits, and ran).
            *(("--n-grid %r" % grid, ["--n-grid", grid], ["evaluate.py: error: argument --n-grid", repr(part)])
              for grid, part in ((" 2", " 2"), ("+2", "+2"), ("2_0", "2_0"), ("\u0662", "\u0662"),
                                 ("1,+2", "+2"), ("1, 2", " 2"), ("1,,2", ""), ("", ""), ("0,2", "0"))),
            ("--model FIFO", ["--model", fifo_model], ["not a regular file"]),
            ("--model DIR", ["--model", a_dir], ["not a regular file"])):
        before = files_under(bad)
        code, err = call(evaluate.main, eval_flags + argv)
        refused("evaluate.py " + what, code, err, words, before, files_under(bad))
    os.unlink(fifo_model)
    # Both outputs together, and --force replaces a regular file.
    result, table = os.path.join(bad, "r.json"), os.path.join(bad, "r.md")
    with open(table, "w") as f:
        f.write("old\n")
    with contextlib.redirect_stdout(io.StringIO()):
        code, err = call(evaluate.main, eval_flags + ["--out", result, "--markdown", table, "--force"])
    check(code == 0 and json.load(open(result))["tasks"] == 3 and open(table).read().startswith("|"),
          "evaluate.py --out --markdown --force: rc %s, %r" % (code, err))
    check(not [name for name in os.listdir(bad) if name.startswith(".tmp-")], "evaluate.py left a temporary")

    # speed.py and stage_cost.py: the same parser, and stage_cost's --checkpoint through
    # train.load_checkpoint (a FIFO was waited on forever).
    for script, argv, words in (("speed.py", ["--rounds", "1e0"], ["--rounds", "integer"]),
                                ("speed.py", ["--seconds", "nan"], ["--seconds", "finite"]),
                                ("stage_cost.py", ["--steps-per-stage", "0"], ["--steps-per-stage"]),
                                ("stage_cost.py", ["--checkpoint", fifo], ["not a regular file"])):
        before = files_under(bad)
        try:
            run = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, script)] + argv, capture_output=True,
                                 text=True, timeout=300)
            refused("%s %s" % (script, " ".join(argv)), run.returncode, run.stderr, [script] + words, before,
                    files_under(bad))
        except subprocess.TimeoutExpired:
            check(False, "%s %s waited" % (script, " ".join(argv)))

    # export.py's checkpoint: a directory or a FIFO is named as what it is, not "no checkpoint".
    for kind in ("directory", "fifo"):
        run_dir = os.path.join(bad, "run_" + kind)
        os.makedirs(run_dir)
        (os.makedirs if kind == "directory" else os.mkfifo)(os.path.join(run_dir, "checkpoint.pt"))
        before = files_under(bad)
        code, err = call(export.main, ["--run-dir", run_dir, "--name", "t", "--out-dir", out_dir])
        refused("export.py with a %s at checkpoint.pt" % kind, code, err, ["checkpoint.pt", "not a regular file"],
                before, files_under(bad))

    # export.py's three outputs are all-or-nothing: one that cannot be written (a directory at the
    # PNG's path, a symbolic link at the model's) refuses the export before anything is written,
    # even with --force, and leaves no temporary behind.
    for blocker in ("t.loss.png", "t.safetensors"):
        blocked = os.path.join(bad, "blocked_" + blocker.replace(".", "_"))
        os.makedirs(blocked)
        if blocker.endswith(".png"):
            os.makedirs(os.path.join(blocked, blocker))
        else:
            os.symlink(a_file, os.path.join(blocked, blocker))
        before = files_under(bad)
        code, err = call(export.main, export_flags + ["--out-dir", blocked, "--force"])
        refused("export.py --force with %s not a regular file" % blocker, code, err, [blocker, "not a regular file"],
                before, files_under(bad))
        check(sorted(os.listdir(blocked)) == [blocker], "export.py left %s" % sorted(os.listdir(blocked)))
    # The same refusal decided at commit time (a path that became a directory while the work ran):
    # nothing is renamed into place and the staged temporaries are removed.
    late = os.path.join(bad, "late")
    os.makedirs(late)
    plot = export.plot_loss

    def plot_then_block(history, dims, path, title):
        plot(history, dims, path, title)
        os.makedirs(os.path.join(late, "t.loss.png"))
    export.plot_loss = plot_then_block
    try:
        code, err = call(export.main, export_flags + ["--out-dir", late])
    finally:
        export.plot_loss = plot
    check(code == 2 and "not a regular file" in err and err.count("\n") == 1, "export.py late block: rc %s, %r"
          % (code, err))
    check(sorted(os.listdir(late)) == ["t.loss.png"] and not os.listdir(os.path.join(late, "t.loss.png")),
          "export.py with a late block left %s" % sorted(os.listdir(late)))


def main():
    work = sys.argv[1]
    # A fresh directory each run: the scripts refuse to replace their outputs without --force,
    # so files left by an earlier run would fail the converter's test.
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    torch.set_num_threads(1)
    for test in (test_forward_matches_reference, test_many_queries_are_independent, test_baselines):
        test()
    for test in (test_file_format, test_converter, test_resume, test_bad_input):
        test(work)
    if FAILURES:
        print("%d failure(s)" % len(FAILURES))
        return 1
    print("all train tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

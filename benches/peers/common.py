"""Shared by the peer loops: the generated data, the argument parser and the timing report.

The data matches `wgtrain bench` in kind, not bit for bit: points uniform in [-1, 1]^F labelled
by the side of a random hyperplane through 0, then standardized (z-scored) as wgtrain does.
"""

import argparse
import json
import statistics
import time

import numpy as np


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--hidden", type=int, default=0,
                   help="units of the one hidden layer (ReLU); 0: logistic regression")
    p.add_argument("--classes", type=int, default=2,
                   help="classes K: 2 is the sigmoid model, K >= 3 softmax over K logits")
    p.add_argument("--iters", type=int, default=100, help="updates per timed run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up run")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object per configuration")
    return p


def check(args):
    for flag in ("rows", "features", "iters", "repeats"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"--{flag} {getattr(args, flag)}: must be at least 1")
    if args.classes < 2:
        raise SystemExit(f"--classes {args.classes}: must be at least 2")
    if args.hidden < 0:
        raise SystemExit(f"--hidden {args.hidden}: must be 0 (logistic regression) or more")


def choices(text, known, what):
    """The comma-separated names of `text`, each one of `known` (else exits naming it)."""
    names = [t for t in text.split(",") if t]
    for t in names:
        if t not in known:
            raise SystemExit(f"unknown {what} {t!r}; known: {', '.join(known)}")
    return names


def make_data(rows, features, seed, classes=2):
    """float32 X [rows, features] standardized; y [rows] in {0, 1} (two classes: the side of a
    random hyperplane) or, for K >= 3, int64 class indices: the argmax of K random linear
    scores."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(rows, features))
    if classes == 2:
        w = rng.standard_normal(features)
        y = (x @ w >= 0.0).astype(np.float32)
    else:
        w = rng.standard_normal((features, classes))
        y = np.argmax(x @ w, axis=1)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return np.ascontiguousarray(x, dtype=np.float32), y


def init_params(features, hidden, seed, classes=2):
    """Logistic regression: zeros. MLP: He-uniform first layer, Xavier-uniform output, zero
    biases (wgtrain's initialisation, not its random stream). K >= 3: a K-wide output."""
    rng = np.random.default_rng(seed + 1)
    if classes > 2:
        if hidden == 0:
            return [np.zeros((features, classes), np.float32), np.zeros(classes, np.float32)]
        b1 = np.sqrt(6.0 / features)
        b2 = np.sqrt(6.0 / (hidden + classes))
        return [
            rng.uniform(-b1, b1, size=(features, hidden)).astype(np.float32),
            np.zeros(hidden, np.float32),
            rng.uniform(-b2, b2, size=(hidden, classes)).astype(np.float32),
            np.zeros(classes, np.float32),
        ]
    if hidden == 0:
        return [np.zeros(features, np.float32), np.zeros((), np.float32)]
    b1 = np.sqrt(6.0 / features)
    b2 = np.sqrt(6.0 / (hidden + 1))
    return [
        rng.uniform(-b1, b1, size=(features, hidden)).astype(np.float32),
        np.zeros(hidden, np.float32),
        rng.uniform(-b2, b2, size=hidden).astype(np.float32),
        np.zeros((), np.float32),
    ]


def model_name(args):
    k = getattr(args, "classes", 2)
    out, head = ("1", "") if k == 2 else (f"{k}", ", softmax")
    if args.hidden == 0:
        return f"logistic regression {args.features}->{out}{head.replace(', ', ' (')}{')' if head else ''}"
    return f"MLP {args.features}->{args.hidden}->{out} (relu{head})"


def time_runs(run, iters, repeats):
    """One discarded warm-up run, then `repeats` timed runs of `run(iters)`; returns the
    per-iteration times in seconds and the last run's (loss, accuracy)."""
    run(iters)
    per_iter = []
    last = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        last = run(iters)
        per_iter.append((time.perf_counter() - t0) / iters)
    return per_iter, last


def fmt_time(s):
    if s >= 1.0:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.1f} µs"


def report(peer, device, args, per_iter, last, extra=None):
    med = statistics.median(per_iter)
    loss, acc = last
    if args.json:
        out = {
            "peer": peer,
            "device": device,
            "model": model_name(args),
            "rows": args.rows,
            "features": args.features,
            "hidden": args.hidden,
            "classes": getattr(args, "classes", 2),
            "iters": args.iters,
            "repeats": args.repeats,
            "per_iteration_s": per_iter,
            "median_s": med,
            "min_s": min(per_iter),
            "max_s": max(per_iter),
            "iterations_per_s": 1.0 / med,
            "final_loss": loss,
            "final_accuracy": acc,
        }
        out.update(extra or {})
        print(json.dumps(out))
        return
    print(f"{peer} [{device}]: {model_name(args)}, {args.rows} rows x {args.features} features, "
          f"{args.iters} iterations x {args.repeats} runs (+1 warm-up)")
    print(f"  Time per iteration (median): {fmt_time(med):>10}   "
          f"[min … max: {fmt_time(min(per_iter))} … {fmt_time(max(per_iter))}]")
    print(f"  {1.0 / med:.1f} iterations/s   (final loss {loss:.4f}, accuracy {acc:.4f})")

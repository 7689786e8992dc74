#!/usr/bin/env python3
"""Owns the data of the time-to-target comparison: the three tasks, their generators and
their CSV files (a training file and a separate validation file per task, header line, the
class in a last column named `label`).

    python3 benches/peers/ttt_data.py OUTDIR [--tasks moons,logistic,k10] [--rows 100000]
                                             [--val-rows 20000] [--seed 0]

Tasks (training and validation rows are drawn together, then split, so they follow one law):
  moons     two interleaving half circles (sklearn.datasets.make_moons' formula), Gaussian
            noise sigma 0.2 on both coordinates; 2 features, 2 classes
  logistic  features uniform in [-1, 1]^64, label = side of a random hyperplane through 0,
            then 5% of the labels flipped (so no model passes ~95% on fresh rows)
  k10       features N(0, 1)^64, label = argmax of 10 scores of a random ReLU teacher
            64 -> 32 -> 10, each score z-scored so the classes are roughly balanced
            (nonlinear, but a 64-unit ReLU MLP can represent it exactly)

Only NumPy is needed. Features are written raw (not standardized): every tool standardizes
with the training rows' statistics itself.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

TASKS = ("moons", "logistic", "k10")


def moons(n, rng, noise=0.2):
    n_out = n // 2
    n_in = n - n_out
    t_out = rng.uniform(0.0, np.pi, n_out)  # make_moons spaces these evenly; random here
    t_in = rng.uniform(0.0, np.pi, n_in)
    x = np.concatenate([
        np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
        np.stack([1.0 - np.cos(t_in), 1.0 - np.sin(t_in) - 0.5], axis=1),
    ])
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    x += rng.normal(0.0, noise, x.shape)
    order = rng.permutation(n)
    return x[order], y[order]


def logistic(n, rng, features=64, flip=0.05):
    x = rng.uniform(-1.0, 1.0, (n, features))
    w = rng.standard_normal(features)
    y = (x @ w >= 0.0).astype(np.int64)
    flipped = rng.random(n) < flip
    y[flipped] = 1 - y[flipped]
    return x, y


def k10(n, rng, features=64, hidden=32, classes=10):
    x = rng.standard_normal((n, features))
    a = rng.standard_normal((features, hidden)) / np.sqrt(features)
    b = rng.normal(0.0, 0.5, hidden)
    w = rng.standard_normal((hidden, classes))
    scores = np.maximum(x @ a + b, 0.0) @ w
    # Each score z-scored over the rows (a per-class scale and bias, which the student's
    # output layer can learn): without it one class takes over half the rows.
    scores = (scores - scores.mean(axis=0)) / scores.std(axis=0)
    y = np.argmax(scores, axis=1).astype(np.int64)
    return x, y


GENERATORS = {"moons": moons, "logistic": logistic, "k10": k10}


def write_csv(path, x, y):
    """Header f0..f{F-1},label; features with 7 significant digits (float32 precision)."""
    header = ",".join([f"f{i}" for i in range(x.shape[1])] + ["label"])
    fmt = ["%.7g"] * x.shape[1] + ["%d"]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w") as f:
        f.write(header + "\n")
        np.savetxt(f, np.column_stack([x, y]), fmt=fmt, delimiter=",")
    tmp.replace(path)


def paths(outdir, task):
    outdir = Path(outdir)
    return outdir / f"{task}_train.csv", outdir / f"{task}_val.csv"


def generate(outdir, tasks=TASKS, rows=100_000, val_rows=20_000, seed=0, quiet=False):
    """Writes OUTDIR/{task}_train.csv and {task}_val.csv; returns {task: (train, val)}."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, task in enumerate(tasks):
        if task not in GENERATORS:
            raise SystemExit(f"unknown task {task!r}; known: {', '.join(TASKS)}")
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, i])
        x, y = GENERATORS[task](rows + val_rows, rng)
        train, val = paths(outdir, task)
        write_csv(train, x[:rows], y[:rows])
        write_csv(val, x[rows:], y[rows:])
        out[task] = (train, val)
        if not quiet:
            counts = np.bincount(y, minlength=2)
            print(f"{task}: {rows} + {val_rows} rows x {x.shape[1]} features, class shares "
                  f"{np.round(counts / counts.sum(), 3).tolist()} -> {train}, {val} "
                  f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--rows", type=int, default=100_000, help="training rows per task")
    p.add_argument("--val-rows", type=int, default=20_000, help="validation rows per task")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    generate(a.outdir, [t for t in a.tasks.split(",") if t], a.rows, a.val_rows, a.seed)


if __name__ == "__main__":
    main()

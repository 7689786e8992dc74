#!/usr/bin/env python3
"""Full-batch gradient descent in float32 NumPy: logistic regression, or an MLP
F -> H -> 1 (ReLU, sigmoid output), mean binary cross-entropy, plain W <- W - lr * grad; with
--classes K >= 3, K softmax logits and mean cross-entropy, plus the K x K confusion matrix.

Every iteration computes what wgtrain's loop computes: the forward pass, the loss and the
accuracy of the current weights (an early-stopping loop needs them), then the gradient and
the update. The loss uses the stable form max(z, 0) - y z + log1p(exp(-|z|)), ~10x faster in
float32 than np.logaddexp(0, z); exp(-|z|) is shared with the sigmoid.

    python3 benches/peers/numpy_loop.py --rows 100000 --features 64 [--hidden 128] [--classes 10]
"""

import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the scripts

import numpy as np

from common import check, init_params, make_data, parser, report, time_runs


def logistic_run(x, y, params, lr):
    n = np.float32(x.shape[0])
    lr = np.float32(lr)

    def run(iters):
        w, b = params[0].copy(), params[1].copy()
        for _ in range(iters):
            z = x @ w + b
            e = np.exp(-np.abs(z))
            loss = float(np.mean(np.maximum(z, 0) - y * z + np.log1p(e)))
            pred = z >= 0
            acc = np.count_nonzero(pred == (y > 0.5)) / x.shape[0]
            p = np.where(pred, 1.0, e) / (1.0 + e)
            g = (p - y) / n
            w -= lr * (x.T @ g)
            b -= lr * g.sum()
        return loss, acc

    return run


def mlp_run(x, y, params, lr):
    n = np.float32(x.shape[0])
    lr = np.float32(lr)

    def run(iters):
        w1, b1, w2, b2 = (p.copy() for p in params)
        for _ in range(iters):
            h = x @ w1
            h += b1
            np.maximum(h, 0, out=h)
            z = h @ w2 + b2
            e = np.exp(-np.abs(z))
            loss = float(np.mean(np.maximum(z, 0) - y * z + np.log1p(e)))
            pred = z >= 0
            acc = np.count_nonzero(pred == (y > 0.5)) / x.shape[0]
            p = np.where(pred, 1.0, e) / (1.0 + e)
            dz = ((p - y) / n).astype(np.float32)
            gw2 = h.T @ dz
            gb2 = dz.sum()
            dh = np.outer(dz, w2)
            dh *= h > 0
            gw1 = x.T @ dh
            gb1 = dh.sum(axis=0)
            w1 -= lr * gw1
            b1 -= lr * gb1
            w2 -= lr * gw2
            b2 -= lr * gb2
        return loss, acc

    return run


def softmax_parts(z, y, k):
    """Loss (mean logsumexp(z) - z_y, stable), accuracy, confusion matrix and the softmax."""
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(z.shape[0])
    loss = float(np.mean(m[:, 0] + np.log(s[:, 0]) - z[rows, y]))
    pred = np.argmax(z, axis=1)
    confusion = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    acc = np.trace(confusion) / z.shape[0]
    e /= s
    return loss, acc, e


def softmax_logistic_run(x, y, params, lr, k):
    n = np.float32(x.shape[0])
    lr = np.float32(lr)
    rows = np.arange(x.shape[0])

    def run(iters):
        w, b = params[0].copy(), params[1].copy()
        for _ in range(iters):
            z = x @ w
            z += b
            loss, acc, p = softmax_parts(z, y, k)
            p[rows, y] -= 1.0
            g = p / n
            w -= lr * (x.T @ g)
            b -= lr * g.sum(axis=0)
        return loss, acc

    return run


def softmax_mlp_run(x, y, params, lr, k):
    n = np.float32(x.shape[0])
    lr = np.float32(lr)
    rows = np.arange(x.shape[0])

    def run(iters):
        w1, b1, w2, b2 = (p.copy() for p in params)
        for _ in range(iters):
            h = x @ w1
            h += b1
            np.maximum(h, 0, out=h)
            z = h @ w2
            z += b2
            loss, acc, p = softmax_parts(z, y, k)
            p[rows, y] -= 1.0
            dz = p / n
            gw2 = h.T @ dz
            gb2 = dz.sum(axis=0)
            dh = dz @ w2.T
            dh *= h > 0
            gw1 = x.T @ dh
            gb1 = dh.sum(axis=0)
            w1 -= lr * gw1
            b1 -= lr * gb1
            w2 -= lr * gw2
            b2 -= lr * gb2
        return loss, acc

    return run


def main():
    args = parser(__doc__.splitlines()[0]).parse_args()
    check(args)
    k = args.classes
    x, y = make_data(args.rows, args.features, args.seed, k)
    params = init_params(args.features, args.hidden, args.seed, k)
    if k == 2:
        make = logistic_run if args.hidden == 0 else mlp_run
        run = make(x, y, params, args.lr)
    else:
        make = softmax_logistic_run if args.hidden == 0 else softmax_mlp_run
        run = make(x, y, params, args.lr, k)
    per_iter, last = time_runs(run, args.iters, args.repeats)
    report(f"numpy {np.__version__}", "cpu", args, per_iter, last)


if __name__ == "__main__":
    main()

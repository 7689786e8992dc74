#!/usr/bin/env python3
"""Full-batch gradient descent in float32 PyTorch: logistic regression, or an MLP
F -> H -> 1 (ReLU, sigmoid output), mean binary cross-entropy
(binary_cross_entropy_with_logits), autograd, plain W <- W - lr * grad under no_grad.

Every iteration computes the loss and accuracy of the current weights; with --sync every
(default) both are read to the host each iteration, as an early-stopping loop must (on CUDA
that is one device synchronisation per iteration, like `wgtrain --sync every`); with
--sync end only after the last iteration. Runs on the CPU and, when available, on CUDA.

    python3 benches/peers/torch_loop.py --rows 100000 --features 64 [--hidden 128]
"""

import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the scripts

import torch
import torch.nn.functional as F

from common import check, init_params, make_data, parser, report, time_runs


def make_run(x, y, params, lr, sync_every, cuda):
    n_rows = x.shape[0]

    def forward(ps):
        if len(ps) == 2:
            return x @ ps[0] + ps[1]
        h = torch.relu(x @ ps[0] + ps[1])
        return h @ ps[2] + ps[3]

    def run(iters):
        ps = [p.clone().requires_grad_(True) for p in params]
        loss_h = acc_h = None
        for _ in range(iters):
            z = forward(ps)
            loss = F.binary_cross_entropy_with_logits(z, y)
            with torch.no_grad():
                correct = ((z >= 0) == (y > 0.5)).sum()
            if sync_every:
                loss_h, acc_h = loss.item(), correct.item() / n_rows
            for p in ps:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in ps:
                    p -= lr * p.grad
        if not sync_every:
            loss_h, acc_h = loss.item(), correct.item() / n_rows
        if cuda:
            torch.cuda.synchronize()
        return loss_h, acc_h

    return run


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--device", choices=["all", "cpu", "cuda"], default="all",
                   help="all: the CPU, and CUDA when available")
    p.add_argument("--sync", choices=["every", "end"], default="every",
                   help="read loss and accuracy to the host every iteration, or at the end")
    p.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads (0: PyTorch's default)")
    args = p.parse_args()
    check(args)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    x_np, y_np = make_data(args.rows, args.features, args.seed)
    params_np = init_params(args.features, args.hidden, args.seed)
    devices = ["cpu"] if args.device in ("all", "cpu") else []
    if args.device in ("all", "cuda"):
        if torch.cuda.is_available():
            devices.append("cuda")
        elif args.device == "cuda":
            raise SystemExit("--device cuda: torch.cuda.is_available() is False")
    for dev in devices:
        x = torch.from_numpy(x_np).to(dev)
        y = torch.from_numpy(y_np).to(dev)
        params = [torch.from_numpy(q.copy()).to(dev) for q in params_np]
        run = make_run(x, y, params, args.lr, args.sync == "every", dev == "cuda")
        per_iter, last = time_runs(run, args.iters, args.repeats)
        name = torch.cuda.get_device_name() if dev == "cuda" else f"cpu, {torch.get_num_threads()} threads"
        report(f"torch {torch.__version__}", name, args, per_iter, last, {"sync": args.sync})


if __name__ == "__main__":
    main()

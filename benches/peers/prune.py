#!/usr/bin/env python3
"""The PyTorch peer of `wgtrain prune`: iterative magnitude pruning with a FIXED fine-tuning
budget per round, as the usual tools do it.

    python3 benches/peers/prune.py --train TRAIN.csv --val VAL.csv --hidden 64 --classes K
        [--dense-target T] [--dense-epochs 50] [--target-metric accuracy] [--tolerance 0.005]
        [--step 0.2] [--round-updates 500] [--batch-size 256] [--lr 1e-3] [--max-rounds 20]
        [--target-sparsity S] [--seed 0] [--threads 2] [--json]
    python3 benches/peers/prune.py --train TRAIN.csv --val VAL.csv --init-from DENSE.safetensors
        [the same pruning flags]        # prune a model saved by `wgtrain train --save`

1. Load both CSV files with pandas (header line, the class in the last column, `label`) and
   standardize with the training rows' mean and population standard deviation (0 -> 1).
2. Dense model nn.Sequential(Linear(F, H), ReLU, Linear(H, K or 1)): one logit and
   BCEWithLogits for two classes, K logits and CrossEntropy for K > 2, PyTorch's default
   initialisation after torch.manual_seed(seed). Adam on mini-batches (a fresh permutation
   each epoch, the last batch the remainder, mean loss over the batch), the validation
   accuracy checked after every epoch; stops once it is >= --dense-target, or after
   --dense-epochs epochs.
3. Target to keep: the dense model's validation accuracy minus --tolerance.
4. Rounds: prune.global_unstructured over every Linear's weight (biases are not pruned) with
   L1Unstructured and amount --step, the fraction of the weights still unpruned (a last round
   that would pass --target-sparsity prunes just enough to land on it); the validation
   accuracy right after pruning; then exactly --round-updates Adam updates (a new Adam each
   round; the mini-batches go on from where the last round left the epoch's permutation), no
   early stop; the validation accuracy again; met = (accuracy >= target).
   Stops at the first round that misses the target (the result is then the last round that
   met it), at --target-sparsity, after --max-rounds, or when nothing is left to prune
   (`ended`: round_missed, target_sparsity, max_rounds, nothing_left, as wgtrain prune says).

--init-from FILE.safetensors replaces steps 1-2 with a model saved by `wgtrain train --save`
(read by hand: the 8-byte little-endian header length, the JSON header, the raw F32 data):
the architecture (`wgtrain.architecture`: layer sizes, hidden activation relu/tanh/sigmoid),
`layers.{i}.weight` [out, in] and `layers.{i}.bias` copied into the nn.Linear layers (other
tensors, optimizer.*, ignored), the feature columns picked from the CSV by the file's names
(`wgtrain.features`), the labels mapped with its `wgtrain.label` (binary: positive -> 1;
K classes: the index in its class list), and the features standardized with ITS mean and std
(`wgtrain.standardization`, x' = (x - mean) / std in float64 as wgtrain does, a std of 0 maps
to 0; none when it is null), so both tools see the same inputs. No dense training: the dense
value is this model's validation accuracy (the one `wgtrain eval` prints), dense epochs 0,
dense_s the time to read the file, build the model and evaluate it; --dense-target is only
checked (met_dense_target). --hidden and --classes, if given, must agree with the file.

Timing (imports excluded, as in time_to_target.py; that includes torch._dynamo, which the
first optimizer built imports, ~1.7 s, so one is built with the imports): load_s (read +
standardize), dense_s, prune_s (all the rounds, their evaluations included) and wall_s, their
sum from the CSV on disk (with --init-from, from reading the model file). --json prints one JSON object; otherwise a table of the rounds.
"""

import argparse
import hashlib
import json
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ next to the scripts


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True, help="training CSV (label column last, `label`)")
    p.add_argument("--val", required=True, help="validation CSV with the same columns")
    p.add_argument("--hidden", type=int, default=None,
                   help="units of the one hidden layer (ReLU; default 64; with --init-from, "
                        "checked against the file)")
    p.add_argument("--classes", type=int, default=0,
                   help="K: 2 is one logit (BCEWithLogits), K > 2 softmax (CrossEntropy); "
                        "0: the number of distinct training labels")
    p.add_argument("--target-metric", default="accuracy", choices=["accuracy"],
                   help="the metric that must be kept (validation rows)")
    p.add_argument("--tolerance", type=float, default=0.005,
                   help="target to keep = dense model's metric - tolerance")
    p.add_argument("--step", type=float, default=0.2,
                   help="fraction of the still-unpruned weights pruned per round")
    p.add_argument("--round-updates", type=int, default=500,
                   help="Adam updates of fine-tuning per round (fixed, no early stop)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (dense and fine-tuning)")
    p.add_argument("--max-rounds", type=int, default=20)
    p.add_argument("--target-sparsity", type=float, default=None,
                   help="stop at this fraction of the weights pruned (the last step shortened)")
    p.add_argument("--dense-target", type=float, default=None,
                   help="dense training stops at the first epoch whose validation accuracy is "
                        ">= this (default: no target, all --dense-epochs epochs)")
    p.add_argument("--dense-epochs", type=int, default=50,
                   help="most epochs of dense training")
    p.add_argument("--init-from", metavar="FILE.safetensors", default=None,
                   help="prune this model saved by `wgtrain train --save` (its architecture, "
                        "weights, features and standardization) instead of training a dense one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (0: PyTorch's default)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if not 0.0 < a.step < 1.0:
        p.error(f"--step {a.step}: must lie strictly between 0 and 1")
    if a.target_sparsity is not None and not 0.0 < a.target_sparsity < 1.0:
        p.error(f"--target-sparsity {a.target_sparsity}: must lie strictly between 0 and 1")
    for flag in ("round_updates", "batch_size", "max_rounds", "dense_epochs", "hidden"):
        if getattr(a, flag) is not None and getattr(a, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} {getattr(a, flag)}: must be at least 1")
    if a.tolerance < 0:
        p.error(f"--tolerance {a.tolerance}: must be >= 0")
    if a.lr <= 0:
        p.error(f"--lr {a.lr}: must be > 0")
    if a.classes == 1 or a.classes < 0:
        p.error(f"--classes {a.classes}: must be 0 (from the data) or at least 2")
    return a


def load(train_csv, val_csv):
    """(x, y, xv, yv): float32 features standardized with the training rows' mean and
    population standard deviation (a zero one counts as 1), int64 labels."""
    import numpy as np
    import pandas as pd

    def read(path):
        df = pd.read_csv(path, dtype=np.float32)
        if "label" not in df.columns:
            raise SystemExit(f"{path}: no column named `label`")
        y = df.pop("label").to_numpy()
        if not np.all(y == np.round(y)) or (y.size and y.min() < 0):
            raise SystemExit(f"{path}: labels must be class indices 0, 1, ...")
        return np.ascontiguousarray(df.to_numpy(dtype=np.float32)), y.astype(np.int64)

    x, y = read(train_csv)
    xv, yv = read(val_csv)
    if x.shape[1] != xv.shape[1]:
        raise SystemExit(f"{val_csv}: {xv.shape[1]} feature columns, the training file has "
                         f"{x.shape[1]}")
    mean = x.mean(axis=0)
    std = x.std(axis=0)  # ddof=0: the population standard deviation
    std[std == 0] = 1.0
    x = (x - mean) / std
    xv = (xv - mean) / std
    return np.ascontiguousarray(x), y, np.ascontiguousarray(xv), yv


def read_wgtrain_model(path):
    """A model file of `wgtrain train --save` (safetensors), parsed with json + numpy:
    dict(layers=[F, H.., O], activation, features, standardization (dict or None), label,
    weights=[(W [out, in], b [out]) per layer], report (dict or None))."""
    import numpy as np

    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise SystemExit(f"{path}: too short for a safetensors file")
    n = int.from_bytes(raw[:8], "little")
    if 8 + n > len(raw):
        raise SystemExit(f"{path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(raw[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SystemExit(f"{path}: the safetensors header is not JSON ({e})")
    data = memoryview(raw)[8 + n:]
    meta = header.pop("__metadata__", None) or {}

    def meta_json(key, required=True):
        if key not in meta:
            if required:
                raise SystemExit(f"{path}: no `{key}` in the metadata (not a wgtrain model file?)")
            return None
        return json.loads(meta[key])

    arch = meta_json("wgtrain.architecture")
    layers = [int(v) for v in arch["layers"]]
    activation = arch.get("activation", "relu")
    if activation not in ("relu", "tanh", "sigmoid"):
        raise SystemExit(f"{path}: activation {activation!r}: this peer knows relu, tanh, sigmoid")
    if len(layers) < 2:
        raise SystemExit(f"{path}: architecture {layers}: needs at least inputs and outputs")

    def tensor(name, shape):
        if name not in header:
            raise SystemExit(f"{path}: no tensor `{name}`")
        t = header[name]
        if t.get("dtype") != "F32":
            raise SystemExit(f"{path}: `{name}` is {t.get('dtype')}, expected F32")
        if list(t["shape"]) != shape:
            raise SystemExit(f"{path}: `{name}` has shape {t['shape']}, the architecture "
                             f"{layers} needs {shape}")
        b, e = t["data_offsets"]
        if e - b != 4 * int(np.prod(shape)) or e > len(data):
            raise SystemExit(f"{path}: `{name}`: data_offsets {b}..{e} do not fit shape {shape}")
        return np.frombuffer(data[b:e], dtype="<f4").astype(np.float32).reshape(shape)

    weights = [(tensor(f"layers.{i}.weight", [o, k]), tensor(f"layers.{i}.bias", [o]))
               for i, (k, o) in enumerate(zip(layers[:-1], layers[1:]))]
    features = meta_json("wgtrain.features")
    if len(features) != layers[0]:
        raise SystemExit(f"{path}: {len(features)} feature names for {layers[0]} inputs")
    std = meta_json("wgtrain.standardization", required=False)
    report = meta_json("wgtrain.report", required=False)
    return dict(layers=layers, activation=activation, features=features, standardization=std,
                label=meta_json("wgtrain.label"), weights=weights, report=report,
                sha256=hashlib.sha256(raw).hexdigest(), bytes=len(raw))


def load_for_model(train_csv, val_csv, wm):
    """(x, y, xv, yv) for a wgtrain model `wm`: its feature columns by name, its label
    mapping, standardized with its statistics exactly as wgtrain applies them (float64,
    std 0 -> 0)."""
    import numpy as np
    import pandas as pd

    label = wm["label"]
    col = label.get("column", "label")
    if "classes" in label:
        index = {float(c): i for i, c in enumerate(label["classes"])}
    else:
        index = {float(label["negative"]): 0, float(label["positive"]): 1}

    def read(path):
        df = pd.read_csv(path, dtype=np.float32)
        missing = [c for c in wm["features"] + [col] if c not in df.columns]
        if missing:
            raise SystemExit(f"{path}: no column(s) {', '.join(missing[:5])} that the model needs")
        lab = df[col].to_numpy()
        y = np.full(lab.shape, -1, dtype=np.int64)
        for v, i in index.items():
            y[lab == np.float32(v)] = i
        if (y < 0).any():
            bad = lab[y < 0][0]
            raise SystemExit(f"{path}: label {bad:g} is none of the model's classes "
                             f"{sorted(index)}")
        return df[wm["features"]].to_numpy(dtype=np.float32), y

    x, y = read(train_csv)
    xv, yv = read(val_csv)
    st = wm["standardization"]
    if st is not None:
        mean = np.asarray(st["mean"], dtype=np.float64)
        std = np.asarray(st["std"], dtype=np.float64)
        zero = std == 0
        safe = np.where(zero, 1.0, std)

        def apply(m):
            z = ((m.astype(np.float64) - mean) / safe).astype(np.float32)
            z[:, zero] = 0.0
            return z

        x, xv = apply(x), apply(xv)
    return np.ascontiguousarray(x), y, np.ascontiguousarray(xv), yv


class Batches:
    """An endless stream of mini-batch index tensors: a fresh permutation (from `gen`) each
    epoch, the last batch of an epoch the remainder, as DataLoader(shuffle=True) draws."""

    def __init__(self, n, batch_size, gen):
        import torch

        self.torch, self.n, self.bs, self.gen = torch, n, batch_size, gen
        self.perm, self.pos, self.epochs = None, n, 0

    def epoch_done(self):
        return self.pos >= self.n

    def next(self):
        if self.pos >= self.n:
            self.perm = self.torch.randperm(self.n, generator=self.gen)
            self.pos = 0
            self.epochs += 1
        idx = self.perm[self.pos:self.pos + self.bs]
        self.pos += self.bs
        return idx


def run(a):
    t_imp = time.perf_counter()
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch.nn.utils import prune
    # The first optimizer built imports torch._dynamo (~1.7 s here): an import, so it is done
    # here, where it counts in import_s, not in the dense or the first round's time.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    import_s = time.perf_counter() - t_imp

    if a.threads > 0:
        torch.set_num_threads(a.threads)

    t0 = time.perf_counter()
    wm = None
    if a.init_from:
        wm = read_wgtrain_model(a.init_from)
        model_read_s = time.perf_counter() - t0
        tl = time.perf_counter()
        x_np, y_np, xv_np, yv_np = load_for_model(a.train, a.val, wm)
        load_s = time.perf_counter() - tl
        out_units = wm["layers"][-1]
        file_classes = 2 if out_units == 1 else out_units
        if a.classes and a.classes != file_classes:
            raise SystemExit(f"--classes {a.classes}: the model {a.init_from} has {out_units} "
                             f"output(s), i.e. {file_classes} classes")
        if a.hidden is not None and wm["layers"][1:-1] != [a.hidden]:
            raise SystemExit(f"--hidden {a.hidden}: the model {a.init_from} has hidden layers "
                             f"{wm['layers'][1:-1]}")
        classes = file_classes
    else:
        x_np, y_np, xv_np, yv_np = load(a.train, a.val)
        load_s = time.perf_counter() - t0
        classes = a.classes or max(2, int(np.unique(y_np).size))
    top = int(max(y_np.max(initial=0), yv_np.max(initial=0)))
    if top >= classes:
        raise SystemExit(f"label {top} found, but --classes {classes} allows 0..{classes - 1}")

    torch.manual_seed(a.seed)
    x, xv = torch.from_numpy(x_np), torch.from_numpy(xv_np)
    binary = classes == 2
    y = torch.from_numpy(y_np).float() if binary else torch.from_numpy(y_np)
    yv = torch.from_numpy(yv_np)
    features = x.shape[1]
    t_build = time.perf_counter()
    if wm is None:
        sizes, act_name = [features, a.hidden or 64, 1 if binary else classes], "relu"
    else:
        sizes, act_name = wm["layers"], wm["activation"]
    act = dict(relu=torch.nn.ReLU, tanh=torch.nn.Tanh, sigmoid=torch.nn.Sigmoid)[act_name]
    mods = []
    for i, (k, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            mods.append(act())
        mods.append(torch.nn.Linear(k, o))
    model = torch.nn.Sequential(*mods)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    if wm is not None:
        with torch.no_grad():
            for m, (w, b) in zip(linears, wm["weights"]):
                m.weight.copy_(torch.from_numpy(w))
                m.bias.copy_(torch.from_numpy(b))
    gen = torch.Generator().manual_seed(a.seed)
    batches = Batches(x.shape[0], a.batch_size, gen)

    def loss_of(idx):
        z = model(x[idx])
        if binary:
            return F.binary_cross_entropy_with_logits(z.squeeze(1), y[idx])
        return F.cross_entropy(z, y[idx])

    def val_accuracy():
        model.eval()
        with torch.no_grad():
            z = model(xv)
            pred = (z.squeeze(1) >= 0).long() if binary else z.argmax(dim=1)
            acc = int((pred == yv).sum()) / yv.numel()  # exact count / rows, as wgtrain
        model.train()
        return acc

    def update(opt, idx):
        loss = loss_of(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # --- dense training: whole epochs, the target checked after each --------------------
    t1 = time.perf_counter()
    model.train()
    dense_hist, dense_updates = [], 0
    dense_acc = 0.0
    if wm is not None:  # --init-from: no training, the loaded model's accuracy is the dense one
        dense_acc = val_accuracy()
    else:
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    for _ in range(0 if wm is not None else a.dense_epochs):
        while True:
            update(opt, batches.next())
            dense_updates += 1
            if batches.epoch_done():
                break
        dense_acc = val_accuracy()
        dense_hist.append(dense_acc)
        if a.dense_target is not None and dense_acc >= a.dense_target:
            break
    dense_s = time.perf_counter() - t1
    if wm is not None:  # the model's load time: reading the file, building, evaluating
        dense_s += model_read_s + (t1 - t_build)
    dense_met = a.dense_target is None or dense_acc >= a.dense_target
    target = dense_acc - a.tolerance

    # --- pruning rounds ------------------------------------------------------------------
    total = sum(m.weight.numel() for m in linears)

    def pruned_count():
        return sum(int((m.weight_mask == 0).sum()) if hasattr(m, "weight_mask")
                   else int((m.weight == 0).sum()) for m in linears)

    goal = None if a.target_sparsity is None else round(a.target_sparsity * total)
    t2 = time.perf_counter()
    rounds, ended = [], "max_rounds"
    pruned = 0
    params = [(m, "weight") for m in linears]
    for r in range(1, a.max_rounds + 1):
        remaining = total - pruned
        n_step = round(a.step * remaining)  # what L1Unstructured takes for a float amount
        amount = a.step
        if goal is not None and pruned + n_step >= goal:
            amount = goal - pruned  # an int amount: exactly this many of the remaining
            n_step = amount
        if n_step <= 0:
            ended = "nothing_left" if goal is None or pruned < goal else "target_sparsity"
            break
        tr = time.perf_counter()
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
        pruned = pruned_count()
        after_pruning = val_accuracy()
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)  # a fresh optimizer each round
        for _ in range(a.round_updates):
            update(opt, batches.next())
        after = val_accuracy()
        met = after >= target
        rounds.append(dict(round=r, sparsity=pruned / total, weights_kept=total - pruned,
                           amount=amount, metric_after_pruning=after_pruning,
                           metric_after_finetune=after, updates=a.round_updates, met=met,
                           seconds=time.perf_counter() - tr))
        if not met:
            ended = "round_missed"
            break
        if goal is not None and pruned >= goal:
            ended = "target_sparsity"
            break
    prune_s = time.perf_counter() - t2
    wall_s = time.perf_counter() - t0

    met_rounds = [r for r in rounds if r["met"]]
    best = met_rounds[-1] if met_rounds else None
    result = dict(
        sparsity=best["sparsity"] if best else 0.0,
        weights_kept=best["weights_kept"] if best else total,
        rounds_met=len(met_rounds),
        round=best["round"] if best else 0,
        value=best["metric_after_finetune"] if best else dense_acc,
    )
    return dict(
        tool="pytorch", torch=torch.__version__, threads=torch.get_num_threads(),
        model=f"MLP {'->'.join(map(str, sizes))} ({act_name}, "
              f"{'sigmoid' if binary else 'softmax'})",
        rows=int(x.shape[0]), val_rows=int(xv.shape[0]), classes=classes,
        weights_total=total, metric=a.target_metric,
        settings=dict(step=a.step, round_updates=a.round_updates, batch_size=a.batch_size,
                      lr=a.lr, max_rounds=a.max_rounds, target_sparsity=a.target_sparsity,
                      tolerance=a.tolerance, dense_target=a.dense_target,
                      dense_epochs=a.dense_epochs, seed=a.seed, init_from=a.init_from),
        dense=dict(val_metric=dense_acc, epochs=len(dense_hist), updates=dense_updates,
                   met_dense_target=dense_met, history=dense_hist, seconds=dense_s,
                   source="init_from" if wm is not None else "trained"),
        dense_epochs=len(dense_hist),
        init_from=None if wm is None else dict(
            path=a.init_from, sha256=wm["sha256"], bytes=wm["bytes"], layers=wm["layers"],
            activation=wm["activation"], standardized=wm["standardization"] is not None,
            label=wm["label"],
            report_val_accuracy=((wm["report"] or {}).get("val_metrics") or {}).get("accuracy"),
            report_checksum=((wm["report"] or {}).get("model") or {}).get("checksum")),
        target=target, rounds=rounds, ended=ended, result=result,
        updates_total=sum(r["updates"] for r in rounds),
        import_s=import_s, load_s=load_s, dense_s=dense_s, prune_s=prune_s, wall_s=wall_s,
    )


def print_table(out):
    d = out["dense"]
    print(f"pytorch {out['torch']} ({out['threads']} threads): {out['model']}, {out['rows']} "
          f"training rows, {out['weights_total']} weights (biases not pruned)")
    tgt = out["settings"]["dense_target"]
    if out.get("init_from"):
        print(f"dense: loaded from {out['init_from']['path']} (no training): val {out['metric']} "
              f"{d['val_metric']:.4f} ({d['seconds']:.2f} s)"
              + ("" if tgt is None else f", dense target {tgt}"
                 + ("" if d["met_dense_target"] else " NOT met")))
    else:
        print(f"dense: val {out['metric']} {d['val_metric']:.4f} after {d['epochs']} epochs "
              f"({d['updates']} updates, {d['seconds']:.2f} s)"
              + ("" if tgt is None else f", dense target {tgt}"
                 + ("" if d["met_dense_target"] else " NOT met")))
    print(f"target to keep: {out['target']:.4f} (dense - {out['settings']['tolerance']})")
    print()
    print("| round | sparsity | weights kept | after pruning | after fine-tuning | updates | met |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in out["rounds"]:
        print(f"| {r['round']} | {r['sparsity']:.4f} | {r['weights_kept']} | "
              f"{r['metric_after_pruning']:.4f} | {r['metric_after_finetune']:.4f} | "
              f"{r['updates']} | {'yes' if r['met'] else 'no'} |")
    res = out["result"]
    print()
    print(f"ended: {out['ended']}; result: round {res['round']}, sparsity {res['sparsity']:.4f}, "
          f"{res['weights_kept']} weights kept, val {out['metric']} {res['value']:.4f}; "
          f"{out['updates_total']} fine-tuning updates")
    print(f"time: load {out['load_s']:.2f} s + dense {out['dense_s']:.2f} s + prune "
          f"{out['prune_s']:.2f} s = wall {out['wall_s']:.2f} s (imports {out['import_s']:.2f} s "
          f"not included)")


def main(argv=None):
    a = parse_args(argv)
    out = run(a)
    if a.json:
        print(json.dumps(out))
    else:
        print_table(out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Owns the time-to-target comparison: for each task of ttt_data.py, every tool trains on the
same training CSV, is judged on the same validation CSV against the same target (validation
accuracy >= T), and is timed from the CSV on disk to a model that meets it (wall: loading,
standardization and training) with the training alone beside it.

    python3 benches/peers/time_to_target.py [--tasks moons,logistic,k10] [--tools ...]
        [--repeats 3] [--wgtrain target/release/wgtrain] [--data-dir DIR] [--json]

Tools (--tools takes these names, comma-separated):
  wgtrain-cpu, wgtrain-gpu  `wgtrain train --metric accuracy --threshold T --monitor val`, one
                            process per run, timed whole (wall); training time from its JSON
                            report (timing.train_s). Every configuration in WGTRAIN[task]
                            whose flags this binary knows runs (the others are skipped, with
                            a note). A GPU run on a CPU adapter (lavapipe) is labelled so.
  torch                     a PyTorch CPU loop: Adam, mini-batches (a fresh permutation each
                            epoch, the last batch the remainder, mean loss over the batch),
                            validation accuracy after each epoch, stop once >= T
  sk-logreg                 LogisticRegression(solver="lbfgs")            (linear tasks)
  sk-sgd                    SGDClassifier(loss="log_loss", early_stopping=True)  (linear)
  sk-sgd-pf                 SGDClassifier.partial_fit, one epoch per call, validation
                            accuracy after each, stop once >= T                  (linear)
  sk-mlp                    MLPClassifier(solver="adam", early_stopping=True)  (MLP tasks)
  sk-mlp-pf                 MLPClassifier.partial_fit epochs, stop once >= T   (MLP tasks)

scikit-learn's fit cannot stop on a target: sk-logreg, sk-sgd and sk-mlp fit with their own
stopping rule (sk-sgd/sk-mlp hold out 10% of the training rows for it) and the fitted model
is then checked on the validation rows; "no" says by how much it falls short. The
partial_fit loops (-pf) are the time to target for those two models.

Python tools run in a fresh interpreter per run; their wall time starts after the imports
(import time is recorded apart in --json) at pandas.read_csv of the two files, and includes
standardizing with the training rows' mean and standard deviation (as wgtrain does).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ next to the scripts

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import choices, fmt_time  # noqa: E402

# The tasks: model, target and the files' stem (ttt_data.py writes {stem}_train/_val.csv).
TASKS = {
    "moons": dict(desc="two moons (noise 0.2), 2 features, MLP 2->16->1", hidden=[16],
                  classes=2, target=0.965),
    "logistic": dict(desc="hyperplane + 5% flipped labels, 64 features, logistic regression",
                     hidden=[], classes=2, target=0.935),
    "k10": dict(desc="ReLU-teacher labels, K=10, 64 features, MLP 64->64->10", hidden=[64],
                classes=10, target=0.90),
}

# wgtrain's settings per task: (name, flags). Every configuration whose flags the binary
# knows runs; the rest are skipped with a note. --threshold, --monitor, --data, --val, --label, --hidden,
# --backend, --seed, --json and --max-time are added by the runner.
WGTRAIN = {
    "moons": [
        ("adam b1024 lr0.03", ["--optimizer", "adam", "--lr", "0.03", "--batch-size", "1024",
                               "--max-epochs", "100"]),
        ("sgd m0.9 b512 lr0.1", ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.1",
                                 "--batch-size", "512", "--max-epochs", "100"]),
        ("gd lr5", ["--lr", "5", "--max-iter", "3000"]),
    ],
    "logistic": [
        # Standardized isotropic features: the first full-batch gradient points the right way.
        ("gd lr4", ["--lr", "4", "--max-iter", "1000"]),
        ("adam b512 lr0.01", ["--optimizer", "adam", "--lr", "0.01", "--batch-size", "512",
                              "--max-epochs", "100"]),
    ],
    "k10": [
        ("adam b512 lr0.01", ["--optimizer", "adam", "--lr", "0.01", "--batch-size", "512",
                              "--max-epochs", "100"]),
        # Full-batch GD needs ~1000 iterations here (about 140 s under load): left out of the
        # default runs; add it back to see it.
    ],
}

# The PyTorch loop's settings per task.
TORCH = {
    # The same Adam settings as wgtrain's first configuration, so epochs compare alike.
    "moons": dict(lr=0.03, batch_size=1024, max_epochs=100),
    # lr 0.01 with batch 512 plateaus at 0.933-0.936, lr 0.03 with batch 4096 at 0.935-0.940.
    "logistic": dict(lr=0.03, batch_size=4096, max_epochs=100),
    "k10": dict(lr=0.01, batch_size=512, max_epochs=100),
}

# scikit-learn's settings (keyword arguments) where they differ from its defaults.
SK_MLP = dict(solver="adam", early_stopping=True)
SK_SGD = dict(loss="log_loss", early_stopping=True)
SK_LOGREG = dict(solver="lbfgs")
PF_MAX_EPOCHS = 100

LINEAR_ONLY = {"sk-logreg", "sk-sgd", "sk-sgd-pf"}
MLP_ONLY = {"sk-mlp", "sk-mlp-pf"}
TOOLS = ["wgtrain-cpu", "wgtrain-gpu", "torch", "sk-logreg", "sk-sgd", "sk-sgd-pf", "sk-mlp",
         "sk-mlp-pf"]


def applies(tool, task):
    linear = not TASKS[task]["hidden"]
    return not ((tool in LINEAR_ONLY and not linear) or (tool in MLP_ONLY and linear))


# ---------------------------------------------------------------------------------------
# Workers: one run of one Python tool on one task, in its own interpreter; prints one JSON
# object. Timing starts after the imports.


def load(train_csv, val_csv):
    """(x, y, xv, yv) float32 / int64, standardized with the training rows' statistics."""
    import numpy as np
    import pandas as pd

    def read(path):
        df = pd.read_csv(path, dtype=np.float32)
        y = df.pop("label").to_numpy().astype(np.int64)
        return df.to_numpy(dtype=np.float32), y

    x, y = read(train_csv)
    xv, yv = read(val_csv)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    x = (x - mean) / std
    xv = (xv - mean) / std
    return np.ascontiguousarray(x), y, np.ascontiguousarray(xv), yv


def batch(mlp, x):
    """MLPClassifier's batch size: batch_size="auto" is min(200, rows)."""
    return min(200, x.shape[0]) if mlp.batch_size == "auto" else mlp.batch_size


def sk_fit(model, x, y, xv, yv):
    t0 = time.perf_counter()
    model.fit(x, y)
    train_s = time.perf_counter() - t0
    acc = float((model.predict(xv) == yv).mean())
    import numpy as np

    # n_iter_: an int (SGD, MLP) or one count per class (LogisticRegression).
    return dict(train_s=train_s, val_accuracy=acc, epochs=int(np.max(model.n_iter_)))


def partial_fit_loop(model, x, y, xv, yv, target, max_epochs, budget_s):
    import numpy as np

    classes = np.unique(y)
    t0 = time.perf_counter()
    acc, epoch, history = 0.0, 0, []
    while epoch < max_epochs:
        model.partial_fit(x, y, classes=classes)
        epoch += 1
        acc = float((model.predict(xv) == yv).mean())
        history.append(acc)
        if acc >= target or time.perf_counter() - t0 > budget_s:
            break
    return dict(train_s=time.perf_counter() - t0, val_accuracy=acc, epochs=epoch,
                history=history)


def torch_loop(x, y, xv, yv, hidden, classes, lr, batch_size, max_epochs, target, seed,
               budget_s):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    x, xv = torch.from_numpy(x), torch.from_numpy(xv)
    out = 1 if classes == 2 else classes
    layers, width = [], x.shape[1]
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, out))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if classes == 2:
        y_t = torch.from_numpy(y).float()
        yv_t = torch.from_numpy(yv)
    else:
        y_t = torch.from_numpy(y)
        yv_t = torch.from_numpy(yv)
    n = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    acc, epoch, history = 0.0, 0, []
    while epoch < max_epochs:
        model.train()
        perm = torch.randperm(n, generator=gen)  # as DataLoader(shuffle=True) draws
        for start in range(0, n, batch_size):  # the last batch is the remainder
            idx = perm[start:start + batch_size]
            z = model(x[idx])
            if classes == 2:
                loss = F.binary_cross_entropy_with_logits(z.squeeze(1), y_t[idx])
            else:
                loss = F.cross_entropy(z, y_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        epoch += 1
        model.eval()
        with torch.no_grad():
            zv = model(xv)
            pred = (zv.squeeze(1) >= 0).long() if classes == 2 else zv.argmax(dim=1)
            acc = float((pred == yv_t).float().mean())
        history.append(acc)
        if acc >= target or time.perf_counter() - t0 > budget_s:
            break
    return dict(train_s=time.perf_counter() - t0, val_accuracy=acc, epochs=epoch,
                history=history, threads=torch.get_num_threads(), torch=torch.__version__)


def worker(a):
    task = TASKS[a.task]
    t_imp = time.perf_counter()
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    if a.worker == "torch":
        import torch  # noqa: F401
    else:
        import sklearn  # noqa: F401
        from sklearn.linear_model import LogisticRegression, SGDClassifier
        from sklearn.neural_network import MLPClassifier
    import_s = time.perf_counter() - t_imp

    t0 = time.perf_counter()
    x, y, xv, yv = load(a.train, a.val)
    load_s = time.perf_counter() - t0
    seed, target, hidden = a.seed, task["target"], tuple(task["hidden"])
    if a.worker == "torch":
        cfg = TORCH[a.task]
        r = torch_loop(x, y, xv, yv, task["hidden"], task["classes"], target=target,
                       seed=seed, budget_s=a.budget, **cfg)
        r["settings"] = (f"Adam lr {cfg['lr']}, batch {cfg['batch_size']}, "
                         f"{r['threads']} threads")
        r["unit"] = "epochs"
    elif a.worker == "sk-logreg":
        m = LogisticRegression(random_state=seed, **SK_LOGREG)
        r = sk_fit(m, x, y, xv, yv)
        r.update(settings=f"lbfgs, max_iter {m.max_iter}, C {m.C}", unit="lbfgs iterations")
    elif a.worker == "sk-sgd":
        m = SGDClassifier(random_state=seed, **SK_SGD)
        r = sk_fit(m, x, y, xv, yv)
        r.update(settings=f"log_loss, early_stopping (10% held out), alpha {m.alpha}",
                 unit="epochs")
    elif a.worker == "sk-sgd-pf":
        m = SGDClassifier(loss="log_loss", random_state=seed)
        r = partial_fit_loop(m, x, y, xv, yv, target, PF_MAX_EPOCHS, a.budget)
        r.update(settings="log_loss, partial_fit epochs, stop at target", unit="epochs")
    elif a.worker == "sk-mlp":
        m = MLPClassifier(hidden_layer_sizes=hidden, random_state=seed, **SK_MLP)
        r = sk_fit(m, x, y, xv, yv)
        r.update(settings=f"adam lr {m.learning_rate_init}, batch {batch(m, x)}, "
                          f"early_stopping (10% held out)", unit="epochs")
    elif a.worker == "sk-mlp-pf":
        m = MLPClassifier(hidden_layer_sizes=hidden, random_state=seed, solver="adam")
        r = partial_fit_loop(m, x, y, xv, yv, target, PF_MAX_EPOCHS, a.budget)
        r.update(settings=f"adam lr {m.learning_rate_init}, batch {batch(m, x)}, "
                          f"partial_fit epochs, stop at target", unit="epochs")
    else:
        raise SystemExit(f"unknown worker {a.worker}")
    wall_s = time.perf_counter() - t0
    # setup_s: the rest of the wall time (building the model, torch's first calls, the final
    # validation check of a fit).
    r.update(import_s=import_s, load_s=load_s, wall_s=wall_s,
             setup_s=wall_s - load_s - r["train_s"], met=r["val_accuracy"] >= target)
    if a.worker != "torch":
        import sklearn
        r["sklearn"] = sklearn.__version__
    print(json.dumps(r))


# ---------------------------------------------------------------------------------------
# The runner.


def wgtrain_flags(wgtrain):
    """The long flags `wgtrain train --help` lists."""
    out = subprocess.run([wgtrain, "train", "--help"], capture_output=True, text=True,
                         check=True).stdout
    return set(re.findall(r"(?m)^\s*(?:-\w, )?(--[a-z][a-z0-9-]*)", out))


def run_wgtrain(a, task, files, backend, flags, env):
    """One wgtrain process; the result dict (or an error dict)."""
    train, val = files
    t = TASKS[task]
    cmd = [a.wgtrain, "train", "-q", "--json", "--data", str(train), "--val", str(val),
           "--label", "label", "--metric", "accuracy", "--threshold", str(t["target"]),
           "--monitor", "val", "--backend", backend, "--seed", str(a.seed),
           "--max-time", str(a.budget)]
    if t["hidden"]:
        cmd += ["--hidden", ",".join(map(str, t["hidden"]))]
    cmd += flags
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       timeout=a.budget * 2 + 120)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return dict(error=(p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1],
                    cmd=cmd)
    r = json.loads(p.stdout)
    stop = r["stop"]
    epochs = stop.get("epoch", r.get("epochs"))
    return dict(
        wall_s=wall, train_s=r["timing"]["train_s"], load_s=r["timing"]["setup_s"],
        val_accuracy=r["val_metrics"]["accuracy"], met=stop["reason"] == "threshold",
        epochs=epochs if epochs is not None else stop["iteration"],
        unit="epochs" if epochs is not None else "iterations", stop=stop["message"],
        adapter=r.get("adapter"), cmd=cmd)


def run_python(a, tool, task, files, env):
    train, val = files
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, "--task", task,
           "--train", str(train), "--val", str(val), "--seed", str(a.seed),
           "--budget", str(a.budget)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       timeout=a.budget * 4 + 120)
    if p.returncode != 0:
        return dict(error=(p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1])
    return json.loads(p.stdout.strip().splitlines()[-1])


def summarize(runs):
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return dict(error=runs[0]["error"])

    def stat(k):
        v = [r[k] for r in ok]
        return dict(median=statistics.median(v), min=min(v), max=max(v))

    return dict(n=len(ok), met=sum(r["met"] for r in ok), wall_s=stat("wall_s"),
                train_s=stat("train_s"), load_s=stat("load_s"),
                val_accuracy=stat("val_accuracy"), epochs=stat("epochs"), unit=ok[0]["unit"])


def fmt_range(st, f):
    if st["min"] == st["max"]:
        return f"**{f(st['median'])}**"
    return f"**{f(st['median'])}** ({f(st['min'])} … {f(st['max'])})"


def row(task, label, s, target):
    if "error" in s:
        return f"| {task} | {label} | error: {s['error']} | | | | |"
    acc = s["val_accuracy"]
    if s["met"] == s["n"]:
        met = "yes" if s["n"] == 1 else f"yes ({s['n']}/{s['n']})"
    elif s["met"] == 0:
        met = f"**no**: {target - acc['median']:.4f} short"
    else:
        met = f"{s['met']}/{s['n']} runs"
    accs = fmt_range(acc, lambda v: f"{v:.4f}").replace("**", "")
    ep = fmt_range(s["epochs"], lambda v: f"{v:g}").replace("**", "") + f" {s['unit']}"
    return (f"| {task} | {label} | {met} | {accs} | {ep} | {fmt_range(s['wall_s'], fmt_time)} | "
            f"{fmt_range(s['train_s'], fmt_time)} |")


def machine(a):
    lines = [f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", f"python {platform.python_version()}"]
    try:
        cpu = [l for l in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in l]
        lines.append(f"cpu: {cpu[0].split(':', 1)[1].strip()} x {os.cpu_count()} logical")
    except (OSError, IndexError):
        lines.append(f"cpu: {platform.processor()} x {os.cpu_count()}")
    for mod in ("numpy", "pandas", "sklearn", "torch"):
        try:
            m = __import__(mod)
            lines.append(f"{mod} {m.__version__}")
        except ImportError:
            lines.append(f"{mod}: not installed")
    v = subprocess.run([a.wgtrain, "--version"], capture_output=True, text=True).stdout.strip()
    lines.append(f"{v} ({a.wgtrain})")
    if hasattr(os, "getloadavg"):
        lines.append("load: %.2f %.2f %.2f" % os.getloadavg())
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, of: " + ", ".join(TOOLS))
    p.add_argument("--repeats", type=int, default=3, help="runs per tool and task")
    p.add_argument("--wgtrain", default=str(HERE.parent.parent / "target/release/wgtrain"))
    p.add_argument("--data-dir", help="reuse (or write) the CSV files here instead of a temp dir")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--val-rows", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=float, default=300.0,
                   help="seconds of training after which a run gives up (wgtrain --max-time)")
    p.add_argument("--json", action="store_true", help="one JSON object per task and tool")
    p.add_argument("--out", help="also write those JSON objects to this file (with the table)")
    p.add_argument("--table", nargs="+", metavar="FILE.jsonl",
                   help="only print the table rows of earlier --out/--json files")
    # Worker mode (internal): one run of one Python tool.
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--task", help=argparse.SUPPRESS)
    p.add_argument("--train", help=argparse.SUPPRESS)
    p.add_argument("--val", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a)
    if a.table:
        for path in a.table:
            for line in Path(path).read_text().splitlines():
                r = json.loads(line)
                print(row(r["task"], r["label"], r["summary"], r["target"]))
        return

    import ttt_data

    tasks = choices(a.tasks, TASKS, "task")
    tools = choices(a.tools, TOOLS, "tool")
    if a.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    env = dict(os.environ)
    if not env.get("XDG_RUNTIME_DIR"):  # wgpu/Vulkan complains without one
        env["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="wgtrain-xdg-")
    tmp = None
    if a.data_dir:
        data_dir = Path(a.data_dir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="ttt-")
        data_dir = Path(tmp.name)
    files = {}
    for t in tasks:
        tr, va = ttt_data.paths(data_dir, t)
        if not (tr.exists() and va.exists()):
            ttt_data.generate(data_dir, [t], a.rows, a.val_rows, a.seed)
        files[t] = (tr, va)

    wg_tools = [t for t in tools if t.startswith("wgtrain-")]
    known = wgtrain_flags(a.wgtrain) if wg_tools else set()
    notes, results = [], []
    for task in tasks:
        target = TASKS[task]["target"]
        jobs = []  # (tool, label, run())
        for tool in tools:
            if not applies(tool, task):
                continue
            if tool.startswith("wgtrain-"):
                backend = tool.split("-", 1)[1]
                for name, flags in WGTRAIN[task]:
                    missing = [f for f in flags if f.startswith("--") and f not in known]
                    if missing:
                        notes.append(f"{task}: wgtrain {name!r} skipped: this binary has no "
                                     f"{' '.join(missing)}")
                        continue
                    shown = " ".join(flags)
                    jobs.append((tool, f"wgtrain {backend} {name} ({shown})",
                                 lambda b=backend, f=flags: run_wgtrain(a, task, files[task], b, f, env)))
            else:
                jobs.append((tool, tool, lambda tl=tool: run_python(a, tl, task, files[task], env)))
        for tool, label, fn in jobs:
            runs = []
            for i in range(a.repeats):
                print(f"[{task}] {label}: run {i + 1}/{a.repeats}", file=sys.stderr, flush=True)
                try:
                    r = fn()
                except subprocess.TimeoutExpired:
                    r = dict(error="timed out")
                runs.append(r)
                if "error" in r:
                    print(f"   error: {r['error']}", file=sys.stderr)
                    break
            s = summarize(runs)
            ok = [r for r in runs if "error" not in r]
            if ok and "settings" in ok[0]:
                label = f"{tool} ({ok[0]['settings']})"
            if ok and ok[0].get("adapter"):
                ad = ok[0]["adapter"]
                name = ad.get("name", str(ad)) if isinstance(ad, dict) else str(ad)
                kind = ad.get("device_type", "") if isinstance(ad, dict) else ""
                soft = any(w in (name + kind).lower() for w in ("llvmpipe", "lavapipe", "cpu", "swiftshader"))
                label += f" [{name}{': software Vulkan on the CPU, not a GPU' if soft else ''}]"
            res = dict(task=task, tool=tool, label=label, target=target, summary=s, runs=runs)
            results.append(res)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(res) + "\n")
            if a.json:
                print(json.dumps(res), flush=True)
            else:
                print(f"   {row(task, label, s, target)}", file=sys.stderr, flush=True)
    if a.json:
        return
    print("\n".join(f"- {l}" for l in machine(a)))
    print()
    for t in tasks:
        print(f"- **{t}**: {TASKS[t]['desc']}; {a.rows} training rows; target: validation "
              f"accuracy >= {TASKS[t]['target']} on {a.val_rows} rows")
    print(f"- {a.repeats} runs each: median (min … max). Wall: CSV on disk to a model that meets "
          f"the target (or to the end of the fit), loading and standardizing included; "
          f"Python imports not included.")
    print()
    print("| task | tool (settings) | target met? | val accuracy | epochs / iterations | "
          "wall (load + train) | train |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(row(r["task"], r["label"], r["summary"], r["target"]))
    for n in dict.fromkeys(notes):
        print(f"\n- {n}", end="")
    print()


if __name__ == "__main__":
    main()

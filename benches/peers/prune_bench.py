#!/usr/bin/env python3
"""Owns the pruning comparison: `wgtrain train` + `wgtrain prune` (iterative magnitude pruning
whose fine-tuning stops as soon as the target is met again) against the PyTorch peer
prune.py (the same pruning with a FIXED fine-tuning budget per round, as usual tools do), on
the same CSV files of ttt_data.py, with the same step, batch, learning rate and budget.

    python3 benches/peers/prune_bench.py [--tasks k10,logistic] [--tools wgtrain-cpu,pytorch]
        [--rows 100000] [--val-rows 20000] [--repeats 1] [--wgtrain target/release/wgtrain]
        [--data-dir DIR] [--out FILE.json] [--threads 2] [--t-dense k10=0.78,...]
        [--wgtrain-prune-args "--eval-every 25"] [--same-dense]

Tasks (an MLP with one 64-unit ReLU layer on both; its weights, biases excluded, are pruned):
  k10       ReLU-teacher labels, K = 10, 64 features: MLP 64 -> 64 -> 10 (softmax)
  logistic  hyperplane with 5% flipped labels, 64 features: MLP 64 -> 64 -> 1 (sigmoid)

Each tool first trains the dense model, Adam lr 1e-3, batch 256, until the validation
accuracy reaches T_dense (checked once per epoch, at most 50 epochs), then prunes 20% of the
remaining weights per round, fine-tunes at most 500 updates per round (wgtrain stops a round
early once the target is met; PyTorch always spends the 500), and keeps going while the
validation accuracy after fine-tuning stays >= (dense accuracy - 0.005), 20 rounds at most.

Tools (--tools, comma-separated): wgtrain-cpu, wgtrain-gpu (`--backend cpu|gpu`, two
processes: train --save, then prune --model) and pytorch (prune.py in a fresh interpreter).
Wall times: wgtrain's are its two processes, each from the CSV on disk (the prune process
reads the CSV files again, and the saved model); PyTorch's from pandas.read_csv to the last
round in one process, imports excluded (as in time_to_target.py).

--same-dense separates dense training from pruning: the PyTorch side no longer trains its own
dense model (the tools' dense models differ: wgtrain's He-uniform start trains slower) but
prunes wgtrain's. Per task and repeat it first runs the same `wgtrain train --save` as the
wgtrain-cpu row (backend cpu, same seed), then prune.py --init-from that file, which takes
the file's weights, feature order and standardization statistics, so both tools prune the
same weights on the same inputs. The PyTorch row is labelled "(prunes wgtrain's dense
model)": its dense accuracy is PyTorch's evaluation of that model (checked against what
wgtrain train reported, to 1e-4), its epochs wgtrain's, its dense wall the CSV and model
loading only (wgtrain's training time is in the JSON, `wgtrain_dense`). The wgtrain rows are
as without the flag; the JSON records each dense model's checksum, and the note under the
table says whether both tools pruned the identical model in every repeat.
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ next to the scripts

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ttt_data  # noqa: E402
from common import choices, fmt_time  # noqa: E402

# T_dense: what the dense model must reach before pruning, a little below where a 64-unit MLP
# with Adam lr 1e-3, batch 256 gets within 10 epochs on 100,000 rows, with an epoch or more
# to spare for both tools (measured per epoch, seed 0): k10 passes 0.78 in epoch 7 with
# PyTorch (0.80 in epoch 8) and in epoch 9 with wgtrain (0.80 only in epoch 10: its
# He-uniform start is slower here); logistic passes 0.925 in epoch 1 with PyTorch and in
# epoch 7 with wgtrain (0.93 in epoch 9), then both hover at 0.93-0.94 (5% flipped labels).
TASKS = {
    "k10": dict(desc="ReLU-teacher labels, K=10, 64 features, MLP 64->64->10 (softmax)",
                classes=10, hidden=64, t_dense=0.78),
    "logistic": dict(desc="hyperplane + 5% flipped labels, 64 features, MLP 64->64->1 (sigmoid)",
                     classes=2, hidden=64, t_dense=0.925),
}

# Shared by both tools.
SETTINGS = dict(optimizer="adam", lr=0.001, batch_size=256, dense_max_epochs=50, step=0.2,
                round_updates=500, max_rounds=20, tolerance=0.005)

TOOLS = ["wgtrain-cpu", "wgtrain-gpu", "pytorch"]

# What the wgtrain side relies on: the flags of each subcommand and the keys of prune's JSON.
TRAIN_FLAGS = ["--data", "--val", "--hidden", "--optimizer", "--lr", "--batch-size", "--metric",
               "--threshold", "--max-epochs", "--save", "--backend", "--json", "--quiet",
               "--seed"]
PRUNE_FLAGS = ["--model", "--data", "--val", "--save", "--optimizer", "--lr", "--batch-size",
               "--step", "--round-max-iter", "--max-rounds", "--metric", "--tolerance", "--seed",
               "--backend", "--json", "--quiet"]
PRUNE_KEYS = ["rounds", "result.sparsity", "result.weights_kept", "result.round",
              "totals.updates", "totals.fixed_budget_updates", "timing.wall_s"]
ROUND_KEYS = ["sparsity", "weights_kept", "metric_after_pruning", "metric_after_finetune",
              "updates", "met"]


class InterfaceError(Exception):
    """wgtrain's command line or JSON is not what this runner was written against."""


def get(obj, dotted, what):
    """obj["a"]["b"] for "a.b"; InterfaceError naming the missing key."""
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise InterfaceError(f"{what}: its JSON has no key `{dotted}` (keys there: "
                                 f"{', '.join(sorted(cur)) if isinstance(cur, dict) else type(cur).__name__})")
        cur = cur[part]
    return cur


# ---------------------------------------------------------------------------------------
# wgtrain


def help_flags(wgtrain, sub):
    """The text of `wgtrain SUB --help`, or None when the subcommand does not exist."""
    p = subprocess.run([wgtrain, sub, "--help"], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None


def check_wgtrain(wgtrain):
    """Exits with a clear message unless the binary exists and has `train` and `prune` with
    the flags used here."""
    path = Path(wgtrain)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise SystemExit(
            f"prune_bench: no wgtrain binary at {wgtrain}: build it (cargo build --release) or "
            f"pass --wgtrain PATH; --tools pytorch runs the PyTorch side alone")
    for sub, flags in (("train", TRAIN_FLAGS), ("prune", PRUNE_FLAGS)):
        text = help_flags(wgtrain, sub)
        if text is None:
            raise SystemExit(
                f"prune_bench: {wgtrain} has no `{sub}` subcommand (`{wgtrain} {sub} --help` "
                f"failed): this runner needs a wgtrain with `wgtrain prune`; --tools pytorch "
                f"runs the PyTorch side alone")
        missing = [f for f in flags if f not in text.split() and f"{f}=" not in text
                   and f"{f}," not in text]
        # clap prints `--flag <VALUE>`: split() finds `--flag`; the others catch `--flag=`.
        if missing:
            raise SystemExit(f"prune_bench: `{wgtrain} {sub}` does not list the flags "
                             f"{' '.join(missing)} that this runner passes")


def target_value(rp):
    """The accuracy prune had to keep, if its JSON says (a number at `target` or
    `result.target`, or a `value`/`threshold` inside such an object); else None."""
    for obj in (rp.get("target"), rp.get("result", {}).get("target")):
        if isinstance(obj, (int, float)) and not isinstance(obj, bool):
            return float(obj)
        if isinstance(obj, dict):
            for k in ("value", "threshold", "keep", "metric"):
                if isinstance(obj.get(k), (int, float)) and not isinstance(obj.get(k), bool):
                    return float(obj[k])
    return None


def run_proc(cmd, env, timeout):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        lines = p.stderr.strip().splitlines() or [f"exit status {p.returncode}"]
        raise RuntimeError(f"`{' '.join(map(str, cmd[:2]))}` failed (exit {p.returncode}): {lines[-1]}")
    try:
        out = json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise InterfaceError(f"`{' '.join(map(str, cmd[:2]))} --json` printed no JSON object "
                             f"({e}): {p.stdout[:200]!r}")
    return out, wall


def common_opt():
    s = SETTINGS
    return ["--optimizer", s["optimizer"], "--lr", str(s["lr"]), "--batch-size", str(s["batch_size"])]


def wgtrain_dense(a, task, files, backend, env, dense):
    """`wgtrain train --save DENSE`: the dense model both rows start from. Returns
    (train JSON, wall, command, dense dict)."""
    t = TASKS[task]
    s = SETTINGS
    train, val = files
    train_cmd = [a.wgtrain, "train", "--data", str(train), "--val", str(val),
                 "--hidden", str(t["hidden"]), *common_opt(), "--metric", "accuracy",
                 "--threshold", str(a.t_dense[task]), "--max-epochs", str(s["dense_max_epochs"]),
                 "--save", str(dense), "--backend", backend, "--seed", str(a.seed),
                 "--json", "--quiet"]
    rt, dense_wall = run_proc(train_cmd, env, a.budget)
    what = "wgtrain train"
    dense_acc = get(rt, "val_metrics.accuracy", what)
    stop = get(rt, "stop", what)
    epochs = stop.get("epoch", rt.get("epochs")) if isinstance(stop, dict) else None
    d = dict(val_metric=dense_acc, epochs=epochs,
             met_dense_target=(stop.get("reason") == "threshold") if isinstance(stop, dict) else None,
             wall_s=dense_wall, train_s=rt.get("timing", {}).get("train_s"),
             checksum=(rt.get("model") or {}).get("checksum"))
    return rt, dense_wall, train_cmd, d


def run_wgtrain(a, task, files, backend, env, workdir):
    s = SETTINGS
    train, val = files
    dense = Path(workdir) / f"{task}-{backend}-dense.safetensors"
    pruned = Path(workdir) / f"{task}-{backend}-pruned.safetensors"
    rt, dense_wall, train_cmd, dense_info = wgtrain_dense(a, task, files, backend, env, dense)
    prune_cmd = [a.wgtrain, "prune", "--model", str(dense), "--data", str(train), "--val", str(val),
                 "--save", str(pruned), *common_opt(), "--step", str(s["step"]),
                 "--round-max-iter", str(s["round_updates"]), "--max-rounds", str(s["max_rounds"]),
                 "--metric", "accuracy", "--tolerance", str(s["tolerance"]), "--seed", str(a.seed),
                 "--backend", backend, "--json", "--quiet", *a.prune_args]
    rp, prune_wall = run_proc(prune_cmd, env, a.budget)
    what = "wgtrain prune"
    for k in PRUNE_KEYS:
        get(rp, k, what)
    rounds = []
    for i, r in enumerate(rp["rounds"]):
        for k in ROUND_KEYS:
            get(r, k, f"{what} (rounds[{i}])")
        rounds.append({k: r[k] for k in ROUND_KEYS})
    res = rp["result"]
    met_rounds = [r for r in rounds if r["met"]]
    result_metric = res.get("value")
    if result_metric is None and res["round"] and res["round"] <= len(rounds):
        result_metric = rounds[res["round"] - 1]["metric_after_finetune"]
    return dict(
        raw=dict(train=rt, prune=rp),
        dense=dense_info,
        target=target_value(rp),
        rounds=rounds,
        result=dict(sparsity=res["sparsity"], weights_kept=res["weights_kept"],
                    round=res["round"], rounds_met=len(met_rounds), value=result_metric),
        rounds_run=len(rounds),
        updates=rp["totals"]["updates"], fixed_budget_updates=rp["totals"]["fixed_budget_updates"],
        dense_wall_s=dense_wall, prune_wall_s=prune_wall, wall_s=dense_wall + prune_wall,
        prune_report_wall_s=rp["timing"]["wall_s"], ended=rp.get("ended"),
        adapter=rp.get("adapter") or rt.get("adapter"),
        cmd=[train_cmd, prune_cmd],
    )


# ---------------------------------------------------------------------------------------
# PyTorch


def run_pytorch(a, task, files, env, workdir, rep):
    t = TASKS[task]
    s = SETTINGS
    train, val = files
    wg = None
    if a.same_dense:  # wgtrain trains the dense model, PyTorch prunes it
        dense = Path(workdir) / f"{task}-pytorch-r{rep}-dense.safetensors"
        rt, wall, train_cmd, info = wgtrain_dense(a, task, files, "cpu", env, dense)
        wg = dict(train=rt, wall_s=wall, cmd=train_cmd, dense=info, file=str(dense))
    cmd = [sys.executable, str(HERE / "prune.py"), "--train", str(train), "--val", str(val),
           "--hidden", str(t["hidden"]), "--classes", str(t["classes"]),
           "--target-metric", "accuracy", "--tolerance", str(s["tolerance"]),
           "--dense-target", str(a.t_dense[task]), "--dense-epochs", str(s["dense_max_epochs"]),
           "--step", str(s["step"]), "--round-updates", str(s["round_updates"]),
           "--batch-size", str(s["batch_size"]), "--lr", str(s["lr"]),
           "--max-rounds", str(s["max_rounds"]), "--seed", str(a.seed),
           "--threads", str(a.threads), "--json"]
    if wg is not None:
        cmd += ["--init-from", wg["file"]]
    r, proc_wall = run_proc(cmd, env, a.budget * 2)
    dense = dict(val_metric=r["dense"]["val_metric"], epochs=r["dense"]["epochs"],
                 met_dense_target=r["dense"]["met_dense_target"],
                 wall_s=r["load_s"] + r["dense_s"], train_s=r["dense_s"])
    if wg is not None:
        # PyTorch's evaluation of wgtrain's model against wgtrain's own (both on the val rows)
        diff = abs(r["dense"]["val_metric"] - wg["dense"]["val_metric"])
        dense.update(source="wgtrain", pytorch_epochs=r["dense"]["epochs"],
                     epochs=wg["dense"]["epochs"], checksum=wg["dense"]["checksum"],
                     wgtrain_val_metric=wg["dense"]["val_metric"], abs_diff=diff,
                     matches=diff <= 1e-4, wgtrain_train_wall_s=wg["wall_s"])
    return dict(
        raw=r,
        wgtrain_dense=wg,
        dense=dense,
        target=r["target"],
        rounds=[{k: x[k] for k in ROUND_KEYS} for x in r["rounds"]],
        result=dict(r["result"]),
        rounds_run=len(r["rounds"]),
        updates=r["updates_total"], fixed_budget_updates=len(r["rounds"]) * s["round_updates"],
        dense_wall_s=r["load_s"] + r["dense_s"], prune_wall_s=r["prune_s"], wall_s=r["wall_s"],
        process_wall_s=proc_wall, import_s=r["import_s"], threads=r["threads"],
        torch=r["torch"], ended=r["ended"],
        cmd=[cmd] if wg is None else [wg["cmd"], cmd],
    )


# ---------------------------------------------------------------------------------------
# The runner.


def stat(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return dict(median=statistics.median(v), min=min(v), max=max(v))


def summarize(runs):
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return dict(error=runs[0]["error"])
    keys = dict(dense_val=lambda r: r["dense"]["val_metric"], dense_epochs=lambda r: r["dense"]["epochs"],
                target=lambda r: r["target"], sparsity=lambda r: r["result"]["sparsity"],
                weights_kept=lambda r: r["result"]["weights_kept"],
                rounds_met=lambda r: r["result"]["rounds_met"], rounds_run=lambda r: r["rounds_run"],
                metric=lambda r: r["result"].get("value"), updates=lambda r: r["updates"],
                fixed_budget_updates=lambda r: r["fixed_budget_updates"],
                dense_wall_s=lambda r: r["dense_wall_s"], prune_wall_s=lambda r: r["prune_wall_s"],
                wall_s=lambda r: r["wall_s"])
    out = {k: stat([f(r) for r in ok]) for k, f in keys.items()}
    out["n"] = len(ok)
    out["dense_met"] = sum(bool(r["dense"]["met_dense_target"]) for r in ok)
    return out


def rng(st, f, bold=False):
    if st is None:
        return "?"
    m = f(st["median"])
    m = f"**{m}**" if bold else m
    if st["min"] == st["max"]:
        return m
    return f"{m} ({f(st['min'])} … {f(st['max'])})"


def table(task, entries):
    """Markdown rows of one task: entries = [(label, summary)]."""
    lines = [
        "| tool | dense val acc (epochs) | target kept | sparsity at target | weights kept | "
        "rounds met / run | updates spent (fixed budget) | wall dense | wall prune | wall total |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, s in entries:
        if "error" in s:
            lines.append(f"| {label} | error: {s['error']} | | | | | | | | |")
            continue
        dense = rng(s["dense_val"], lambda v: f"{v:.4f}") + " (" + rng(s["dense_epochs"], lambda v: f"{v:g}") + ")"
        if s["dense_met"] < s["n"]:
            dense += f" — T_dense missed in {s['n'] - s['dense_met']}/{s['n']}"
        upd = rng(s["updates"], lambda v: f"{v:,.0f}")
        budget = rng(s["fixed_budget_updates"], lambda v: f"{v:,.0f}")
        if upd != budget:
            upd += f" ({budget})"
        lines.append(
            f"| {label} | {dense} | {rng(s['target'], lambda v: f'{v:.4f}')} | "
            f"{rng(s['sparsity'], lambda v: f'{v:.3f}', bold=True)} | "
            f"{rng(s['weights_kept'], lambda v: f'{v:,.0f}')} | "
            f"{rng(s['rounds_met'], lambda v: f'{v:g}')} / {rng(s['rounds_run'], lambda v: f'{v:g}')} | "
            f"{upd} | {rng(s['dense_wall_s'], fmt_time)} | {rng(s['prune_wall_s'], fmt_time)} | "
            f"{rng(s['wall_s'], fmt_time, bold=True)} |")
    return lines


def same_dense_notes(tools):
    """Whether PyTorch's dense accuracy matched wgtrain's for the model it pruned, and whether
    that model was the one the wgtrain-cpu row pruned (same checksum, repeat by repeat)."""
    pt = [r for r in tools["pytorch"]["runs"] if "error" not in r]
    diffs = [r["dense"]["abs_diff"] for r in pt]
    match = sum(r["dense"]["matches"] for r in pt)
    parts = [f"dense accuracy of wgtrain's model as PyTorch evaluates it vs wgtrain train's "
             f"report: {match}/{len(pt)} within 1e-4 (largest difference "
             f"{max(diffs, default=0.0):.2g})"]
    out = dict(pytorch_runs=len(pt), accuracy_matches=match, max_abs_diff=max(diffs, default=None))
    wg = tools.get("wgtrain-cpu")
    if wg:
        w = [r for r in wg["runs"] if "error" not in r]
        same = [a["dense"].get("checksum") is not None
                and a["dense"].get("checksum") == b["dense"].get("checksum")
                for a, b in zip(w, pt)]
        out.update(same_model_as_wgtrain_cpu=sum(same), compared=len(same))
        parts.append(f"same dense model (checksum) as the wgtrain-cpu row: {sum(same)}/{len(same)} "
                     f"repeats")
    out["text"] = "; ".join(parts)
    return out


def version(mod):
    try:
        return metadata.version(mod)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(a, wg_used):
    lines = [f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", f"python {platform.python_version()}"]
    try:
        cpu = [l for l in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in l]
        lines.append(f"cpu: {cpu[0].split(':', 1)[1].strip()} x {os.cpu_count()} logical")
    except (OSError, IndexError):
        lines.append(f"cpu: {platform.processor()} x {os.cpu_count()}")
    lines.append(", ".join(f"{m} {version(m)}" for m in ("numpy", "pandas", "torch")))
    if wg_used:
        v = subprocess.run([a.wgtrain, "--version"], capture_output=True, text=True).stdout.strip()
        lines.append(f"{v} ({a.wgtrain})")
    if hasattr(os, "getloadavg"):
        lines.append("load: %.2f %.2f %.2f" % os.getloadavg())
    return lines


def csv_rows(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f) - 1


def data_files(a, tasks):
    """{task: (train, val)}: ttt_data.py's files, written one task at a time (so each task's
    rows are those time_to_target.py uses), reused when present with the right row counts."""
    data_dir = Path(a.data_dir) if a.data_dir else (
        Path(tempfile.gettempdir()) / "wgtrain-prune-bench" / f"r{a.rows}-v{a.val_rows}-s{a.seed}")
    files = {}
    for t in tasks:
        tr, va = ttt_data.paths(data_dir, t)
        if not (tr.exists() and va.exists() and csv_rows(tr) == a.rows and csv_rows(va) == a.val_rows):
            ttt_data.generate(data_dir, [t], a.rows, a.val_rows, a.seed)
        files[t] = (tr, va)
    return data_dir, files


def parse_t_dense(text):
    out = {t: v["t_dense"] for t, v in TASKS.items()}
    for item in filter(None, (text or "").split(",")):
        k, _, v = item.partition("=")
        if k not in TASKS or not v:
            raise SystemExit(f"--t-dense {item!r}: expected TASK=VALUE with TASK one of {', '.join(TASKS)}")
        out[k] = float(v)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--tools", default="wgtrain-cpu,pytorch", help="comma-separated, of: " + ", ".join(TOOLS))
    p.add_argument("--rows", type=int, default=100_000, help="training rows per task")
    p.add_argument("--val-rows", type=int, default=20_000, help="validation rows per task")
    p.add_argument("--repeats", type=int, default=1, help="runs per tool and task")
    p.add_argument("--wgtrain", default=str(HERE.parent.parent / "target/release/wgtrain"))
    p.add_argument("--data-dir", help="where the CSV files are written or reused (default: "
                                      "a folder under the temp dir named by rows and seed)")
    p.add_argument("--out", help="the JSON with everything (default: DATA_DIR/prune_bench.json)")
    p.add_argument("--seed", type=int, default=0, help="the data's and the models' seed")
    p.add_argument("--threads", type=int, default=2, help="PyTorch's torch.set_num_threads")
    p.add_argument("--t-dense", help="override T_dense, e.g. k10=0.75,logistic=0.93")
    p.add_argument("--wgtrain-prune-args", default="", metavar="ARGS",
                   help="more flags for `wgtrain prune`, one shell-quoted string, e.g. "
                        "\"--eval-every 25\" (recorded in the JSON's commands)")
    p.add_argument("--same-dense", action="store_true",
                   help="PyTorch prunes wgtrain's dense model (per task and repeat: wgtrain "
                        "train --backend cpu --save, then prune.py --init-from it) instead of "
                        "training its own")
    p.add_argument("--budget", type=float, default=1800.0,
                   help="seconds after which one process is killed and the run counts as failed")
    a = p.parse_args()
    tasks = choices(a.tasks, TASKS, "task")
    tools = choices(a.tools, TOOLS, "tool")
    if a.repeats < 1 or a.rows < 1 or a.val_rows < 1:
        raise SystemExit("--repeats, --rows and --val-rows must be at least 1")
    a.prune_args = shlex.split(a.wgtrain_prune_args)
    a.t_dense_given = bool(a.t_dense)
    a.t_dense = parse_t_dense(a.t_dense)
    if a.same_dense and "pytorch" not in tools:
        raise SystemExit("--same-dense changes the pytorch row: add pytorch to --tools")
    wg_used = any(t.startswith("wgtrain-") for t in tools) or a.same_dense
    if wg_used:
        check_wgtrain(a.wgtrain)  # before any data or PyTorch run: fail fast

    env = dict(os.environ)
    if not env.get("XDG_RUNTIME_DIR"):  # wgpu/Vulkan complains without one
        env["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="wgtrain-xdg-")
    data_dir, files = data_files(a, tasks)
    out_path = Path(a.out) if a.out else data_dir / "prune_bench.json"
    workdir = tempfile.TemporaryDirectory(prefix="prune-bench-models-")

    report = dict(machine=machine(a, wg_used), settings=SETTINGS, rows=a.rows,
                  wgtrain_prune_args=a.prune_args, same_dense=a.same_dense,
                  val_rows=a.val_rows, seed=a.seed, repeats=a.repeats, torch_threads=a.threads,
                  data_dir=str(data_dir), tasks={})
    failed = False
    for task in tasks:
        entry = dict(desc=TASKS[task]["desc"], t_dense=a.t_dense[task],
                     files=[str(f) for f in files[task]], tools={})
        report["tasks"][task] = entry
        for tool in tools:
            runs = []
            for i in range(a.repeats):
                print(f"[{task}] {tool}: run {i + 1}/{a.repeats}", file=sys.stderr, flush=True)
                try:
                    if tool == "pytorch":
                        r = run_pytorch(a, task, files[task], env, workdir.name, i)
                    else:
                        r = run_wgtrain(a, task, files[task], tool.split("-", 1)[1], env, workdir.name)
                except InterfaceError as e:
                    raise SystemExit(f"prune_bench: {e}\n(this runner was written against the "
                                     f"interface in benches/peers/README.md; adjust one or the other)")
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    r = dict(error=str(e) if not isinstance(e, subprocess.TimeoutExpired)
                             else f"timed out after {e.timeout:.0f} s")
                    failed = True
                    print(f"   error: {r['error']}", file=sys.stderr)
                runs.append(r)
                if "error" in r:
                    break
            s = summarize(runs)
            label = tool
            ok = [r for r in runs if "error" not in r]
            if tool == "pytorch" and ok:
                label = f"pytorch {ok[0]['torch']} ({ok[0]['threads']} threads)"
                if a.same_dense:
                    label += " (prunes wgtrain's dense model)"
            if tool.startswith("wgtrain-") and ok and ok[0].get("adapter"):
                ad = ok[0]["adapter"]
                name = ad.get("name", str(ad)) if isinstance(ad, dict) else str(ad)
                kind = ad.get("device_type", "") if isinstance(ad, dict) else ""
                soft = any(w in (name + str(kind)).lower()
                           for w in ("llvmpipe", "lavapipe", "cpu", "swiftshader"))
                label += f" [{name}{': software Vulkan on the CPU' if soft else ''}]"
            entry["tools"][tool] = dict(label=label, summary=s, runs=runs)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(report, indent=1))

    s = SETTINGS
    print("\n".join(f"- {l}" for l in report["machine"]))
    print(f"- {a.rows:,} training rows, {a.val_rows:,} validation rows (ttt_data.py, seed {a.seed}); "
          f"Adam lr {s['lr']}, batch {s['batch_size']}; dense until val accuracy >= T_dense "
          f"(checked per epoch, <= {s['dense_max_epochs']} epochs); then rounds of "
          f"{s['step']:.0%} of the remaining weights pruned (global L1, biases kept), <= "
          f"{s['round_updates']} fine-tuning updates each, <= {s['max_rounds']} rounds, while "
          f"val accuracy >= dense - {s['tolerance']}")
    print(f"- {a.repeats} run(s) each" + (": median (min … max)" if a.repeats > 1 else "")
          + "; wall: from the CSV on disk (wgtrain: its two processes, the prune process "
            "loading the CSV files again; PyTorch: one process, imports excluded)")
    if a.same_dense:
        print("- --same-dense: the PyTorch row prunes wgtrain's dense model (`wgtrain train "
              "--backend cpu --save` per repeat, loaded by prune.py --init-from with wgtrain's "
              "standardization); its dense accuracy is PyTorch's evaluation of that model, its "
              "epochs wgtrain's, its wall dense the CSV + model loading only")
    if a.rows != 100_000 and not a.t_dense_given:
        print(f"- T_dense was chosen for 100,000 training rows: with {a.rows:,} the dense model "
              f"may not reach it (the table says so); --t-dense sets others")
    for task in tasks:
        e = report["tasks"][task]
        print(f"\n### {task}: {e['desc']}; T_dense {e['t_dense']}\n")
        print("\n".join(table(task, [(v["label"], v["summary"]) for v in e["tools"].values()])))
        if a.same_dense and "pytorch" in e["tools"]:
            notes = same_dense_notes(e["tools"])
            e["same_dense_check"] = notes
            print("\n" + notes["text"])
            out_path.write_text(json.dumps(report, indent=1))
    print(f"\nJSON: {out_path}", file=sys.stderr)
    workdir.cleanup()
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

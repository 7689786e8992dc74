#!/usr/bin/env python3
"""Renders the Markdown table of docs/benchmarks.md from the files run_all.sh wrote.

    python3 benches/peers/table.py OUTDIR
"""

import json
import re
import statistics
import sys
from pathlib import Path


def fmt_time(s):
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} µs"


def cell(t):
    """t: (median, min, max) seconds per iteration, or an error string, or None."""
    if t is None:
        return "—"
    if isinstance(t, str):
        return t
    med, lo, hi = t
    return f"**{fmt_time(med)}** ({fmt_time(lo)} … {fmt_time(hi)})"


def load_wgtrain(out, name):
    """{label: result} of a wgtrain bench JSON report, or an error string."""
    p = out / f"{name}.json"
    if not p.exists() or p.stat().st_size == 0:
        err = out / f"{name}.err"
        msg = err.read_text().strip().splitlines()[-1] if err.exists() and err.read_text().strip() else "not run"
        m = re.search(r"need (\d+) bytes .* more than the (\d+) bytes one storage buffer", msg)
        if m:
            need, limit = int(m.group(1)) / 2**20, int(m.group(2)) / 2**20
            return f"does not fit: needs {need:.0f} MiB in one storage buffer, limit {limit:.0f} MiB"
        return f"not measured: {msg}"
    r = json.loads(p.read_text())
    return {c["label"]: c for c in r["results"]}


def wg_time(res, label):
    if isinstance(res, str):
        return res
    c = res.get(label)
    if c is None:
        return None
    p = c["per_iteration"]
    return (p["median"], p["min"], p["max"])


def load_peer(out, name, device_prefix="cpu"):
    p = out / f"{name}.jsonl"
    if not p.exists() or p.stat().st_size == 0:
        err = out / f"{name}.err"
        text = err.read_text().strip() if err.exists() else ""
        if "No module named 'torch'" in text:
            return "not installed"
        return f"not measured: {text.splitlines()[-1] if text else 'not run'}"
    for line in p.read_text().splitlines():
        r = json.loads(line)
        if r["device"].startswith(device_prefix):
            return (r["median_s"], r["min_s"], r["max_s"])
    return None


def membw(out):
    """Best median read bandwidth over thread counts of the DRAM-sized buffer, in GB/s."""
    p = out / "membw.txt"
    if not p.exists():
        return None, ""
    text = p.read_text()
    best = None
    for m in re.finditer(r"\(DRAM\)\s+(\d+) thread\(s\): median\s+([\d.]+) GB/s", text):
        v = float(m.group(2))
        if best is None or v > best[0]:
            best = (v, int(m.group(1)))
    return best, text


def ratio(a, b):
    """a / b of medians, with the extreme ratios of the min … max ranges."""
    if not (isinstance(a, tuple) and isinstance(b, tuple)):
        return None
    return (a[0] / b[0], a[1] / b[2], a[2] / b[1])


def verdict(r, target):
    if r is None:
        return "not measured"
    med, lo, hi = r
    state = "met" if med >= target else "NOT met"
    return f"{med:.2f}× (range {lo:.2f} … {hi:.2f}): {state} by the medians"


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench-table")
    rows = [
        ("Logistic regression, 100,000 × 64", "lr100k"),
        ("Logistic regression, 1,000,000 × 64", "lr1m"),
        ("MLP 64→128→1, 100,000 rows", "mlp100k"),
        ("Logistic regression, 1,000 × 16", "lr1k16"),
    ]
    print("| Workload (time per iteration: median (min … max)) | wgtrain CPU | wgtrain GPU lavapipe, sync every | wgtrain GPU lavapipe, sync chunk | NumPy | PyTorch CPU |")
    print("|---|---:|---:|---:|---:|---:|")
    got = {}
    for title, key in rows:
        if key == "lr1k16":
            allr = load_wgtrain(out, "lr1k16_all")
            cpu, gpu = allr, allr
        else:
            cpu = load_wgtrain(out, f"{key}_cpu")
            gpu = load_wgtrain(out, f"{key}_gpu")
        cells = {
            "cpu": wg_time(cpu, "cpu"),
            "every": wg_time(gpu, "gpu sync=every"),
            "chunk": wg_time(gpu, "gpu sync=chunk"),
            "numpy": load_peer(out, f"{key}_numpy"),
            "torch": load_peer(out, f"{key}_torch"),
        }
        got[key] = (cells, cpu, gpu)
        print(f"| {title} | " + " | ".join(cell(cells[k]) for k in ("cpu", "every", "chunk", "numpy", "torch")) + " |")

    bw, _ = membw(out)
    print()
    print("Targets of the issue:")
    print()
    c, _, _ = got["lr100k"]
    print(f"- LR 100k×64, wgtrain CPU ≥ 2× NumPy: NumPy / wgtrain CPU = {verdict(ratio(c['numpy'], c['cpu']), 2.0)}")
    c, cpu, _ = got["lr1m"]
    if isinstance(cpu, dict) and "cpu" in cpu and bw:
        c1 = cpu["cpu"]
        gbs = c1["gb_per_s"]
        best = gbs * c1["per_iteration"]["median"] / c1["per_iteration"]["min"]
        print(f"- LR 1M×64 ≥ 60% of memory bandwidth: effective {gbs:.2f} GB/s (rows·features·4 / median time; "
              f"{best:.2f} GB/s in the fastest run) = {100 * gbs / bw[0]:.0f}% ({100 * best / bw[0]:.0f}%) of "
              f"{bw[0]:.2f} GB/s (membw 1 GiB read, {bw[1]} thread(s), median): "
              f"{'met' if gbs >= 0.6 * bw[0] else 'NOT met'}")
    else:
        print("- LR 1M×64 ≥ 60% of memory bandwidth: not measured")
    c, _, _ = got["mlp100k"]
    print(f"- MLP 100k rows, wgtrain CPU ≥ NumPy: NumPy / wgtrain CPU = {verdict(ratio(c['numpy'], c['cpu']), 1.0)}")
    _, allr, _ = got["lr1k16"]
    if isinstance(allr, dict) and "gpu sync=every" in allr and "gpu sync=chunk" in allr:
        e, k = allr["gpu sync=every"], allr["gpu sync=chunk"]
        paired = [a / b for a, b in zip(e["train_s"], k["train_s"])]
        med = statistics.median(paired)
        print(f"- lavapipe LR 1,000×16, chunk ≥ 3× every: every / chunk = {med:.2f}× "
              f"({min(paired):.2f} … {max(paired):.2f}, paired by run): {'met' if med >= 3 else 'NOT met'}")
    else:
        print("- lavapipe LR 1,000×16, chunk ≥ 3× every: not measured")
    by_kernels(out, "lr1k16_kernels", "LR 1,000×16", ("blocked", "one-workgroup"), ("every", "chunk"))
    by_kernels(out, "mlp100k_kernels", "MLP 64→128→1 on 100,000 rows", ("layered", "one-pass"), ("every", "chunk"))


def by_kernels(out, name, what, kernels, syncs):
    """The table of one `--gpu-kernels` side-by-side run, if it was made."""
    kern = load_wgtrain(out, name)
    if not isinstance(kern, dict):
        return
    print()
    print(f"{what} on the GPU by kernels (`--gpu-kernels {','.join(kernels)}`, one run):")
    print()
    print("| Kernels | " + " | ".join(f"sync {s}" for s in syncs) + " |")
    print("|---|" + "---:|" * len(syncs))
    for k in kernels:
        cells = [cell(wg_time(kern, f"gpu sync={s} kernels={k}")) for s in syncs]
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

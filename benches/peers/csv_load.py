#!/usr/bin/env python3
"""CSV loading: pandas.read_csv's time on a file, and a generator of the file.

    csv_load.py gen FILE [--rows 100000] [--features 64] [--seed 0]
    csv_load.py pandas FILE [--repeats 5]

`gen` writes a header row (f0..f{F-1},y), then rows of F floats printed `%.7g` (about half
negative, magnitudes from 1e-3 to 1e3) and a 0/1 label. `pandas` times `pandas.read_csv(FILE)`
alone (the interpreter and the import of pandas are outside the timed part), once per repeat,
and prints each time in seconds, then the median, min and max.
"""

import argparse
import statistics
import sys
import time


def gen(args):
    import numpy as np

    rng = np.random.default_rng(args.seed)
    f = args.features
    with open(args.file, "w", newline="\n") as out:
        out.write(",".join([f"f{j}" for j in range(f)] + ["y"]) + "\n")
        block = 10_000
        for start in range(0, args.rows, block):
            n = min(block, args.rows - start)
            x = rng.standard_normal((n, f)) * 10.0 ** rng.uniform(-3, 3, (n, f))
            y = (x[:, 0] + x[:, 1] > 0).astype(int)
            lines = [
                ",".join(["%.7g" % v for v in row]) + f",{lab}\n"
                for row, lab in zip(x.tolist(), y.tolist())
            ]
            out.write("".join(lines))


def bench(args):
    import pandas

    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        df = pandas.read_csv(args.file)
        times.append(time.perf_counter() - t)
        del df
    for t in times:
        print(f"{t:.4f}")
    print(
        f"median {statistics.median(times):.4f} s, min {min(times):.4f}, max {max(times):.4f}"
        f" (pandas {pandas.__version__})"
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("file")
    g.add_argument("--rows", type=int, default=100_000)
    g.add_argument("--features", type=int, default=64)
    g.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("pandas")
    b.add_argument("file")
    b.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    {"gen": gen, "pandas": bench}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Runs every measurement of docs/benchmarks.md and renders its table:
#   benches/peers/run_all.sh [OUTDIR]        (default: target/bench-table)
# Needs a release build (`cargo build --release`, `cargo bench --no-run --bench membw`),
# numpy, and optionally torch. GPU figures use the default adapter (lavapipe on a machine
# without a GPU). QUICK=1 shrinks every size to check the script itself.
# Run it on an otherwise idle machine: it takes ~10 minutes on 2 cores with lavapipe.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-target/bench-table}"
mkdir -p "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/wgtrain-xdg-$(id -u)}"
mkdir -p -m700 "$XDG_RUNTIME_DIR"
WG=target/release/wgtrain
PEERS=benches/peers
q() { if [ "${QUICK:-0}" = 1 ]; then echo "$2"; else echo "$1"; fi; }

{
    echo "date: $(date -u +%FT%TZ)"
    echo "tree: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src shaders Cargo.toml || echo ' + uncommitted changes in src/shaders/Cargo.toml') ($(git diff --stat HEAD -- src shaders | tail -1))"
    echo "sources: sha256 $(git ls-files -co --exclude-standard src shaders Cargo.toml | sort | xargs cat | sha256sum | cut -c1-16) of src/, shaders/, Cargo.toml as built"
    lscpu | grep -E "Model name|^CPU\(s\)|L3"
    grep MemTotal /proc/meminfo
    $WG devices | sed -n 1,2p
    echo "rustc: $(rustc --version)"
    python3 -c "import numpy; print('numpy', numpy.__version__)"
    python3 -c "import torch; print('torch', torch.__version__)" 2>/dev/null || echo "torch: not installed"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"

membw=$(ls -t target/release/deps/membw-* 2>/dev/null | grep -v '\.d$' | head -1)
if [ -n "$membw" ]; then "$membw" "$(q 1024 64)" > "$OUT/membw.txt"; else echo "membw not built" > "$OUT/membw.txt"; fi

# wgtrain NAME ARGS...: one JSON report (or the error) per call.
wgtrain() {
    local name=$1; shift
    echo "== wgtrain $name: $*" >&2
    $WG bench -q --json "$@" > "$OUT/$name.json" 2> "$OUT/$name.err" || echo "   failed: $(tail -1 "$OUT/$name.err")" >&2
}
peer() {
    local name=$1 script=$2; shift 2
    echo "== $script $name: $*" >&2
    python3 "$PEERS/$script" --json "$@" > "$OUT/$name.jsonl" 2> "$OUT/$name.err" || echo "   failed: $(tail -1 "$OUT/$name.err")" >&2
}

LR100K="--rows $(q 100000 2000) --features 64"
LR1M="--rows $(q 1000000 20000) --features 64"
MLP="--rows $(q 100000 2000) --features 64 --hidden 128"
SMALL="--rows 1000 --features 16"

wgtrain lr100k_cpu     $LR100K --backends cpu --iters $(q 100 5) --repeats 5
wgtrain lr100k_gpu     $LR100K --backends gpu --sync every,chunk --iters $(q 20 3) --repeats 3
peer    lr100k_numpy   numpy_loop.py $LR100K --iters $(q 100 5) --repeats 5
peer    lr100k_torch   torch_loop.py $LR100K --iters $(q 100 5) --repeats 5 --device cpu

wgtrain lr1m_cpu       $LR1M --backends cpu --iters $(q 30 3) --repeats 5
peer    lr1m_numpy     numpy_loop.py $LR1M --iters $(q 30 3) --repeats 5
peer    lr1m_torch     torch_loop.py $LR1M --iters $(q 30 3) --repeats 5 --device cpu
wgtrain lr1m_gpu       $LR1M --backends gpu --sync every,chunk --iters $(q 3 2) --repeats 2

wgtrain mlp100k_cpu    $MLP --backends cpu --iters $(q 10 3) --repeats 5
peer    mlp100k_numpy  numpy_loop.py $MLP --iters $(q 10 3) --repeats 5
peer    mlp100k_torch  torch_loop.py $MLP --iters $(q 10 3) --repeats 5 --device cpu
wgtrain mlp100k_gpu    $MLP --backends gpu --sync every,chunk --iters $(q 3 1) --repeats 2
wgtrain mlp100k_kernels $MLP --backends gpu --sync every,chunk --gpu-kernels layered,one-pass --iters $(q 3 1) --repeats 2

wgtrain lr1k16_all     $SMALL --backends cpu,gpu --sync every,chunk --iters $(q 1000 20) --repeats 5
peer    lr1k16_numpy   numpy_loop.py $SMALL --iters $(q 1000 20) --repeats 5
peer    lr1k16_torch   torch_loop.py $SMALL --iters $(q 1000 20) --repeats 5 --device cpu
wgtrain lr1k16_kernels $SMALL --backends gpu --sync every,chunk --gpu-kernels blocked,one-workgroup --iters $(q 1000 20) --repeats 5

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
python3 "$PEERS/table.py" "$OUT" | tee "$OUT/table.md"

// reduce_stats.wgsl: adds the loss sums of a set of rows' parts (blocks or segments, written
// by lr_pass.wgsl, mlp_pass.wgsl or loss_metrics.wgsl) and moves the set's confusion tally
// into the record the host and stop_rule.wgsl read, zeroing the tally for the next
// evaluation.
//
// Bindings (group 0):
//   0  partials  storage, read        u32[..]  part j's Σ loss (f32 bits) at
//                                              (part0 + j)·stride + col
//   1  result    storage, read_write  u32[..]  the record (reduction.wgsl, which this file
//                                              is appended to): this set's loss and counts
//   2  cfg       uniform              Stats
//   3  tally     storage, read_write  atomic<u32>[2·cells]  each set's [K, K] counts (tally.wgsl)
// Workgroup: exactly one workgroup of STATS_WORKGROUP (64, from the prelude) invocations.
// Invocation k adds parts k, k+64, ... in order; the 64 partial sums then meet in a fixed
// binary tree (deterministic, no float atomics). Invocation k moves cells k, k+64, ...

struct Stats {
    part0: u32,
    parts: u32,
    stride: u32,
    col: u32,
    out_set: u32,       // 0: the training rows, 1: the validation rows
    cells: u32,         // K·K
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> partials: array<u32>;
@group(0) @binding(1) var<storage, read_write> result: array<u32>;
@group(0) @binding(2) var<uniform> cfg: Stats;
@group(0) @binding(3) var<storage, read_write> tally: array<atomic<u32>>;

var<workgroup> loss_part: array<f32, STATS_WORKGROUP>;

@compute @workgroup_size(STATS_WORKGROUP)
fn main(@builtin(local_invocation_index) k: u32) {
    var loss = 0.0;
    for (var j = k; j < cfg.parts; j += STATS_WORKGROUP) {
        loss += bitcast<f32>(partials[(cfg.part0 + j) * cfg.stride + cfg.col]);
    }
    loss_part[k] = loss;
    let t0 = cfg.out_set * cfg.cells;
    for (var i = k; i < cfg.cells; i += STATS_WORKGROUP) {
        result[HEAD_WORDS + t0 + i] = atomicLoad(&tally[t0 + i]);
        atomicStore(&tally[t0 + i], 0u);
    }
    workgroupBarrier();
    for (var s = STATS_WORKGROUP / 2u; s > 0u; s >>= 1u) {
        if (k < s) {
            loss_part[k] += loss_part[k + s];
        }
        workgroupBarrier();
    }
    if (k == 0u) {
        result[cfg.out_set] = bitcast<u32>(loss_part[0]);
    }
}

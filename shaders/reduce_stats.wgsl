// reduce_stats.wgsl: adds the loss and confusion counts of a set of rows' parts (blocks or
// segments, written by lr_pass.wgsl or loss_metrics.wgsl) into the result the host and
// stop_rule.wgsl read.
//
// Bindings (group 0):
//   0  partials  storage, read        u32[..]  part j's stats at (part0 + j)·stride + col:
//                                              Σ loss (f32 bits), TP, FP, FN, TN
//   1  result    storage, read_write  Reduction  (reduction.wgsl, which this file is appended
//                                              to): the sums written as SetStats `out_set`
//   2  cfg       uniform              Stats
// Workgroup: exactly one workgroup of STATS_WORKGROUP (64, from the prelude) invocations.
// Invocation k adds parts k, k+64, ... in order; the 64 partial sums then meet in a fixed
// binary tree (deterministic, no atomics).

struct Stats {
    part0: u32,
    parts: u32,
    stride: u32,
    col: u32,
    out_set: u32,       // 0: the training rows, 1: the validation rows
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> partials: array<u32>;
@group(0) @binding(1) var<storage, read_write> result: array<SetStats, 2>;
@group(0) @binding(2) var<uniform> cfg: Stats;

var<workgroup> loss_part: array<f32, STATS_WORKGROUP>;
var<workgroup> count_part: array<vec4<u32>, STATS_WORKGROUP>;

@compute @workgroup_size(STATS_WORKGROUP)
fn main(@builtin(local_invocation_index) k: u32) {
    var loss = 0.0;
    var c = vec4<u32>(0u);
    for (var j = k; j < cfg.parts; j += STATS_WORKGROUP) {
        let o = (cfg.part0 + j) * cfg.stride + cfg.col;
        loss += bitcast<f32>(partials[o]);
        c += vec4<u32>(partials[o + 1u], partials[o + 2u], partials[o + 3u], partials[o + 4u]);
    }
    loss_part[k] = loss;
    count_part[k] = c;
    workgroupBarrier();
    for (var s = STATS_WORKGROUP / 2u; s > 0u; s >>= 1u) {
        if (k < s) {
            loss_part[k] += loss_part[k + s];
            count_part[k] += count_part[k + s];
        }
        workgroupBarrier();
    }
    if (k == 0u) {
        let c = count_part[0];
        result[cfg.out_set] = SetStats(bitcast<u32>(loss_part[0]), c.x, c.y, c.z, c.w, 0u, 0u, 0u);
    }
}

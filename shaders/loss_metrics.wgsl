// loss_metrics.wgsl: loss, confusion counts and ∂L/∂z of the output logits.
//
// Bindings (group 0):
//   0  acts    storage, read        f32[..]  logits z [rows] at logit_off
//   1  labels  storage, read        f32[rows] y, each 0 or 1
//   2  deltas  storage, read_write  f32[..]  ∂L/∂z [rows] written at delta_off
//   3  result  storage, read_write  u32[..]  at result_off: [+0] Σ loss (f32 bits), [+1] TP,
//                                            [+2] FP, [+3] FN, [+4] TN
//   4  cfg     uniform              LossCfg
// Workgroup: exactly one workgroup of LOSS_WORKGROUP (256, from the prelude) invocations.
// Invocation k handles rows k, k+256, ... in order; the 256 partial sums then meet in a fixed
// binary tree, so the result does not depend on scheduling (no atomics). Per row:
//   loss = max(z, 0) + log(1 + exp(−|z|)) − y·z     (softplus(z) − y·z, stable)
//   ∂L/∂z = (σ(z) − y) / rows;  predicted positive iff z ≥ 0

struct LossCfg {
    rows: u32,
    logit_off: u32,
    delta_off: u32,
    inv_rows: f32,
    result_off: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> acts: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<f32>;
@group(0) @binding(2) var<storage, read_write> deltas: array<f32>;
@group(0) @binding(3) var<storage, read_write> result: array<u32>;
@group(0) @binding(4) var<uniform> cfg: LossCfg;

var<workgroup> loss_part: array<f32, LOSS_WORKGROUP>;
var<workgroup> count_part: array<vec4<u32>, LOSS_WORKGROUP>;

@compute @workgroup_size(LOSS_WORKGROUP)
fn main(@builtin(local_invocation_index) k: u32) {
    var loss = 0.0;
    var c = vec4<u32>(0u);
    for (var r = k; r < cfg.rows; r += LOSS_WORKGROUP) {
        let z = acts[cfg.logit_off + r];
        let y = labels[r];
        loss += max(z, 0.0) + log(1.0 + exp(-abs(z))) - y * z;
        deltas[cfg.delta_off + r] = (1.0 / (1.0 + exp(-z)) - y) * cfg.inv_rows;
        let pos = z >= 0.0;
        let lab = y == 1.0;
        c += vec4<u32>(u32(pos && lab), u32(pos && !lab), u32(!pos && lab), u32(!pos && !lab));
    }
    loss_part[k] = loss;
    count_part[k] = c;
    workgroupBarrier();
    for (var s = LOSS_WORKGROUP / 2u; s > 0u; s >>= 1u) {
        if (k < s) {
            loss_part[k] += loss_part[k + s];
            count_part[k] += count_part[k + s];
        }
        workgroupBarrier();
    }
    if (k == 0u) {
        let o = cfg.result_off;
        result[o] = bitcast<u32>(loss_part[0]);
        result[o + 1u] = count_part[0].x;
        result[o + 2u] = count_part[0].y;
        result[o + 3u] = count_part[0].z;
        result[o + 4u] = count_part[0].w;
    }
}

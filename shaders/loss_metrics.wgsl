// loss_metrics.wgsl: loss, confusion counts and ∂L/∂z of the output logits of one segment.
//
// Bindings (group 0):
//   0  acts     storage, read        f32[..]  logits z [rows, K] at logit_off
//   1  labels   storage, read        f32[rows] y, class indices (0 or 1 for one logit)
//   2  deltas   storage, read_write  f32[..]  ∂L/∂z [rows, K] written at delta_off
//   3  result   storage, read_write  u32[..]  Σ loss (f32 bits) at result_off
//   4  cfg      uniform              LossCfg
//   5  tally    storage, read_write  atomic<u32>[..]  the set's [K, K] counts at tally_off
//                                    (tally.wgsl, which this file is appended to)
// Pipeline constant: K, the logits per row (1: a sigmoid head, whose counts are [2, 2]).
// Workgroup: exactly one workgroup of LOSS_WORKGROUP (256, from the prelude) invocations.
// Invocation k handles rows k, k+256, ... in order; the 256 partial loss sums then meet in a
// fixed binary tree, so the result does not depend on scheduling (no float atomics). Per row,
// with one logit (sigmoid, K = 2):
//   loss = max(z, 0) + log(1 + exp(−|z|)) − y·z     (softplus(z) − y·z, stable)
//   ∂L/∂z = (σ(z) − y) / rows;  predicted class 1 iff z ≥ 0
// with K logits (softmax), m = max_j z_j, s = Σ_j exp(z_j − m) in order of j:
//   loss = m + log(s) − z_y;  ∂L/∂z_j = (exp(z_j − m)/s − [j = y]) / rows;
//   predicted class argmax_j z_j (the lowest j among equals)

struct LossCfg {
    rows: u32,
    logit_off: u32,
    delta_off: u32,
    inv_rows: f32,
    result_off: u32,
    pad_k: u32,
    tally_off: u32,
    pad0: u32,
}

@group(0) @binding(0) var<storage, read> acts: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<f32>;
@group(0) @binding(2) var<storage, read_write> deltas: array<f32>;
@group(0) @binding(3) var<storage, read_write> result: array<u32>;
@group(0) @binding(4) var<uniform> cfg: LossCfg;
@group(0) @binding(5) var<storage, read_write> tally: array<atomic<u32>>;

// Logits per row: 1 (a sigmoid head) or the K ≥ 2 classes of a softmax head.
override K: u32 = 1u;

var<workgroup> loss_part: array<f32, LOSS_WORKGROUP>;

@compute @workgroup_size(LOSS_WORKGROUP)
fn main(@builtin(local_invocation_index) k: u32) {
    var loss = 0.0;
    let kk = K;
    let classes = max(kk, 2u);
    let cells = classes * classes;
    for (var r = k; r < cfg.rows; r += LOSS_WORKGROUP) {
        let y = labels[r];
        if (kk == 1u) {
            let z = acts[cfg.logit_off + r];
            loss += max(z, 0.0) + log(1.0 + exp(-abs(z))) - y * z;
            deltas[cfg.delta_off + r] = (1.0 / (1.0 + exp(-z)) - y) * cfg.inv_rows;
            let lab = select(0u, 1u, y == 1.0);
            tally_row(cfg.tally_off, cells, lab * 2u + select(0u, 1u, z >= 0.0));
            continue;
        }
        let o = cfg.logit_off + r * kk;
        var m = acts[o];
        var best = 0u;
        for (var j = 1u; j < kk; j += 1u) {
            let v = acts[o + j];
            if (v > m) {
                m = v;
                best = j;
            }
        }
        var s = 0.0;
        for (var j = 0u; j < kk; j += 1u) {
            s += exp(acts[o + j] - m);
        }
        let yi = min(u32(y), kk - 1u);
        loss += m + log(s) - acts[o + yi];
        let d = cfg.delta_off + r * kk;
        for (var j = 0u; j < kk; j += 1u) {
            let t = select(0.0, 1.0, j == yi);
            deltas[d + j] = (exp(acts[o + j] - m) / s - t) * cfg.inv_rows;
        }
        tally_row(cfg.tally_off, cells, tally_cell(kk, y, best));
    }
    loss_part[k] = loss;
    workgroupBarrier();
    tally_flush(k, LOSS_WORKGROUP, cfg.tally_off, cells);
    for (var s = LOSS_WORKGROUP / 2u; s > 0u; s >>= 1u) {
        if (k < s) {
            loss_part[k] += loss_part[k + s];
        }
        workgroupBarrier();
    }
    if (k == 0u) {
        result[cfg.result_off] = bitcast<u32>(loss_part[0]);
    }
}

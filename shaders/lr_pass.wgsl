// lr_pass.wgsl: one pass of logistic regression over a block of rows: the logits, loss,
// confusion counts and ∂L/∂z of each row, and the block's partial gradient, reading each row of
// X from memory once (the gradient re-reads the block while it is still in cache).
//
// Bindings (group 0):
//   0  params    storage, read        f32[f + 1]  w [f] then the bias b
//   1  acts      storage, read_write  f32[..]     X [rows, f] at 0 (read); z [rows] at z_off
//                                                 (written, for logits())
//   2  labels    storage, read        f32[rows]   y, each 0 or 1
//   3  partials  storage, read_write  u32[..]     one row of `stride` words per block, at
//                                                 (part0 + block)·stride: [0..f] Σ ∂L/∂z·x and
//                                                 Σ ∂L/∂z (f32 bits, only with grad = 1), then
//                                                 at [f + 1] Σ loss (f32 bits), TP, FP, FN, TN
//   4  cfg       uniform              Pass
// Workgroup: WORKGROUP (64, from the prelude) invocations; one workgroup per block of `block`
// rows (a multiple of 64, at most the prelude's MAX_BLOCK), on a grid (min(G, max_x),
// ceil(G / max_x)), block = x + y·nwg.x.
// Invocation k takes the block's rows in fours, 4k..4k+3, 4(k+64)..., sharing each weight's
// load among four rows, and keeps their ∂L/∂z in workgroup memory; after one barrier,
// invocation k sums the gradient of features 4k..4k+3, 4(k+64)... (the bias is feature f)
// over the block's rows in row order, and invocation 0 adds the 64 loss and count partials in
// order. Nothing depends on scheduling (no atomics), so results are bit-identical run to run.
// Per row:
//   z = b + Σ_i x_i·w_i;  loss = max(z, 0) + log(1 + exp(−|z|)) − y·z;
//   ∂L/∂z = (σ(z) − y)·inv_rows;  predicted positive iff z ≥ 0

struct Pass {
    rows: u32,
    features: u32,
    z_off: u32,
    part0: u32,
    stride: u32,
    grad: u32,
    inv_rows: f32,
    block: u32,
}

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read_write> acts: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<u32>;
@group(0) @binding(4) var<uniform> cfg: Pass;

var<workgroup> dz: array<f32, MAX_BLOCK>;
var<workgroup> loss_part: array<f32, WORKGROUP>;
var<workgroup> count_part: array<vec4<u32>, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) k: u32) {
    let blk = wid.x + wid.y * nwg.x;
    // blk is the same for the whole workgroup, so this exit keeps the barrier uniform.
    if (blk * cfg.block >= cfg.rows) {
        return;
    }
    let f = cfg.features;
    let r0 = blk * cfg.block;
    let n = min(cfg.block, cfg.rows - r0);
    var loss = 0.0;
    var c = vec4<u32>(0u);
    for (var q0 = 4u * k; q0 < n; q0 += 4u * WORKGROUP) {
        var z = vec4<f32>(params[f]);
        for (var i = 0u; i < f; i += 1u) {
            let w = params[i];
            for (var j = 0u; j < 4u; j += 1u) {
                if (q0 + j < n) {
                    z[j] += acts[(r0 + q0 + j) * f + i] * w;
                }
            }
        }
        for (var j = 0u; j < 4u; j += 1u) {
            let q = q0 + j;
            if (q < n) {
                let r = r0 + q;
                acts[cfg.z_off + r] = z[j];
                let y = labels[r];
                loss += max(z[j], 0.0) + log(1.0 + exp(-abs(z[j]))) - y * z[j];
                dz[q] = (1.0 / (1.0 + exp(-z[j])) - y) * cfg.inv_rows;
                let pos = z[j] >= 0.0;
                let lab = y == 1.0;
                c += vec4<u32>(u32(pos && lab), u32(pos && !lab), u32(!pos && lab),
                               u32(!pos && !lab));
            }
        }
    }
    loss_part[k] = loss;
    count_part[k] = c;
    workgroupBarrier();
    let base = (cfg.part0 + blk) * cfg.stride;
    if (cfg.grad == 1u) {
        for (var i0 = 4u * k; i0 <= f; i0 += 4u * WORKGROUP) {
            var g = vec4<f32>(0.0);
            for (var q = 0u; q < n; q += 1u) {
                let d = dz[q];
                let a0 = (r0 + q) * f;
                var x = vec4<f32>(0.0);
                for (var j = 0u; j < 4u; j += 1u) {
                    if (i0 + j < f) {
                        x[j] = acts[a0 + i0 + j];
                    } else if (i0 + j == f) {
                        x[j] = 1.0;
                    }
                }
                g += d * x;
            }
            for (var j = 0u; j < 4u; j += 1u) {
                if (i0 + j <= f) {
                    partials[base + i0 + j] = bitcast<u32>(g[j]);
                }
            }
        }
    }
    if (k == 0u) {
        var l = 0.0;
        var s = vec4<u32>(0u);
        for (var j = 0u; j < WORKGROUP; j += 1u) {
            l += loss_part[j];
            s += count_part[j];
        }
        let o = base + f + 1u;
        partials[o] = bitcast<u32>(l);
        partials[o + 1u] = s.x;
        partials[o + 2u] = s.y;
        partials[o + 3u] = s.z;
        partials[o + 4u] = s.w;
    }
}

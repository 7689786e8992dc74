// lr_pass.wgsl: one pass of logistic regression over a block of rows: the logits, loss,
// confusion counts and ∂L/∂z of each row, and the block's partial gradient, reading each row of
// X from memory once (the gradient re-reads the block while it is still in cache). One logit
// per row (a sigmoid head) or K ≥ 2 (a softmax head): the pipeline constant K.
//
// Bindings (group 0):
//   0  params    storage, read        f32[K(f + 1)]  W [K, f] then the biases b [K]
//   1  acts      storage, read_write  f32[..]     X [rows, f] at 0 (read); z [rows, K] at z_off
//                                                 (written, for logits())
//   2  labels    storage, read        f32[rows]   y, class indices (0 or 1 for one logit)
//   3  partials  storage, read_write  u32[..]     one row of `stride` words per block, at
//                                                 (part0 + block)·stride: [0..K(f + 1)] the
//                                                 gradient laid out as params (f32 bits, only
//                                                 with grad = 1), then Σ loss (f32 bits)
//   4  cfg       uniform              Pass
//   5  tally     storage, read_write  atomic<u32>[..]  the set's [K, K] counts at tally_off
//                                                 (tally.wgsl, which this file is appended to;
//                                                 K = 2 for one logit)
// Workgroup: WORKGROUP (64, from the prelude) invocations; one workgroup per block of `block`
// rows (a multiple of 64, block·K at most the prelude's MAX_BLOCK), on a grid
// (min(G, max_x), ceil(G / max_x)), block = x + y·nwg.x.
// Invocation k takes the block's rows in fours, 4k..4k+3, 4(k+64)..., sharing each weight's
// load among four rows (and, with K logits, four classes at a time: the four rows are re-read
// from cache per four classes), and keeps their ∂L/∂z in workgroup memory (dz [block, K]);
// after one barrier, invocation k sums the gradient of items k, k + 64, ... over the block's
// rows in row order: an item is four features 4i..4i+3 (the bias is feature f) and, with K
// logits, four classes. Invocation 0 adds the 64 loss partials in order; counts are exact
// integers (tally.wgsl). Nothing else depends on scheduling, so results are bit-identical run
// to run. Per row, one logit:
//   z = b + Σ_i x_i·w_i;  loss = max(z, 0) + log(1 + exp(−|z|)) − y·z;
//   ∂L/∂z = (σ(z) − y)·inv_rows;  predicted class 1 iff z ≥ 0
// K logits: z_c = b_c + Σ_i x_i·W[c, i]; m = max_c z_c, s = Σ_c exp(z_c − m);
//   loss = m + log(s) − z_y;  ∂L/∂z_c = (exp(z_c − m)/s − [c = y])·inv_rows;
//   predicted class argmax_c z_c (the lowest among equals)

struct Pass {
    rows: u32,
    features: u32,
    z_off: u32,
    part0: u32,
    stride: u32,
    grad: u32,
    inv_rows: f32,
    block: u32,
    pad_k: u32,
    tally_off: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read_write> acts: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<u32>;
@group(0) @binding(4) var<uniform> cfg: Pass;
@group(0) @binding(5) var<storage, read_write> tally: array<atomic<u32>>;

// Logits per row: 1 (a sigmoid head) or the K ≥ 2 classes of a softmax head.
override K: u32 = 1u;

var<workgroup> dz: array<f32, MAX_BLOCK>;
var<workgroup> loss_part: array<f32, WORKGROUP>;

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
    let kk = K;
    let cells = max(kk, 2u) * max(kk, 2u);
    if (kk > 1u) {
        loss = softmax_rows(k, r0, n);
    }
    for (var q0 = 4u * k; q0 < n && kk == 1u; q0 += 4u * WORKGROUP) {
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
                let lab = select(0u, 1u, y == 1.0);
                tally_row(cfg.tally_off, cells, lab * 2u + select(0u, 1u, z[j] >= 0.0));
            }
        }
    }
    loss_part[k] = loss;
    workgroupBarrier();
    tally_flush(k, WORKGROUP, cfg.tally_off, cells);
    let base = (cfg.part0 + blk) * cfg.stride;
    if (cfg.grad == 1u && kk > 1u) {
        softmax_grad(k, r0, n, base);
    }
    if (cfg.grad == 1u && kk == 1u) {
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
        for (var j = 0u; j < WORKGROUP; j += 1u) {
            l += loss_part[j];
        }
        partials[base + kk * (f + 1u)] = bitcast<u32>(l);
    }
}

// K logits: this invocation's rows of the block (fours from 4k), their logits into dz and z,
// then each row's loss (returned, summed in row order), counts and ∂L/∂z (into dz).
fn softmax_rows(k: u32, r0: u32, n: u32) -> f32 {
    let f = cfg.features;
    let kk = K;
    let cells = kk * kk;
    let bo = kk * f;
    var loss = 0.0;
    for (var q0 = 4u * k; q0 < n; q0 += 4u * WORKGROUP) {
        for (var c0 = 0u; c0 < kk; c0 += 4u) {
            var b = vec4<f32>(0.0);
            for (var cc = 0u; cc < 4u; cc += 1u) {
                if (c0 + cc < kk) {
                    b[cc] = params[bo + c0 + cc];
                }
            }
            var z = array<vec4<f32>, 4>(b, b, b, b);  // z[j][cc]: row q0 + j, class c0 + cc
            // Rows of W, the last one repeated past K (those lanes are not stored).
            let w0 = c0 * f;
            let w1 = min(c0 + 1u, kk - 1u) * f;
            let w2 = min(c0 + 2u, kk - 1u) * f;
            let w3 = min(c0 + 3u, kk - 1u) * f;
            for (var i = 0u; i < f; i += 1u) {
                let w = vec4<f32>(params[w0 + i], params[w1 + i], params[w2 + i], params[w3 + i]);
                for (var j = 0u; j < 4u; j += 1u) {
                    if (q0 + j < n) {
                        z[j] += acts[(r0 + q0 + j) * f + i] * w;
                    }
                }
            }
            for (var j = 0u; j < 4u; j += 1u) {
                for (var cc = 0u; cc < 4u; cc += 1u) {
                    if (q0 + j < n && c0 + cc < kk) {
                        let q = q0 + j;
                        dz[q * kk + c0 + cc] = z[j][cc];
                        acts[cfg.z_off + (r0 + q) * kk + c0 + cc] = z[j][cc];
                    }
                }
            }
        }
        for (var j = 0u; j < 4u; j += 1u) {
            let q = q0 + j;
            if (q < n) {
                let o = q * kk;
                var m = dz[o];
                var top = 0u;
                for (var c = 1u; c < kk; c += 1u) {
                    if (dz[o + c] > m) {
                        m = dz[o + c];
                        top = c;
                    }
                }
                var s = 0.0;
                for (var c = 0u; c < kk; c += 1u) {
                    s += exp(dz[o + c] - m);
                }
                let y = labels[r0 + q];
                let yi = min(u32(y), kk - 1u);
                loss += m + log(s) - dz[o + yi];
                tally_row(cfg.tally_off, cells, tally_cell(kk, y, top));
                for (var c = 0u; c < kk; c += 1u) {
                    let t = select(0.0, 1.0, c == yi);
                    dz[o + c] = (exp(dz[o + c] - m) / s - t) * cfg.inv_rows;
                }
            }
        }
    }
    return loss;
}

// K logits: the block's partial gradient, item by item (four features × four classes), each
// summed over the block's rows in row order.
fn softmax_grad(k: u32, r0: u32, n: u32, base: u32) {
    let f = cfg.features;
    let kk = K;
    let fg = (f + 4u) / 4u;
    let items = fg * ((kk + 3u) / 4u);
    for (var it = k; it < items; it += WORKGROUP) {
        let i0 = 4u * (it % fg);
        let c0 = 4u * (it / fg);
        var g = array<vec4<f32>, 4>();  // g[cc][e]: class c0 + cc, feature i0 + e
        for (var q = 0u; q < n; q += 1u) {
            let a0 = (r0 + q) * f;
            var x = vec4<f32>(0.0);
            for (var e = 0u; e < 4u; e += 1u) {
                if (i0 + e < f) {
                    x[e] = acts[a0 + i0 + e];
                } else if (i0 + e == f) {
                    x[e] = 1.0;
                }
            }
            for (var cc = 0u; cc < 4u; cc += 1u) {
                if (c0 + cc < kk) {
                    g[cc] += dz[q * kk + c0 + cc] * x;
                }
            }
        }
        for (var cc = 0u; cc < 4u; cc += 1u) {
            for (var e = 0u; e < 4u; e += 1u) {
                let c = c0 + cc;
                let i = i0 + e;
                if (c < kk && i <= f) {
                    let p = select(kk * f + c, c * f + i, i < f);
                    partials[base + p] = bitcast<u32>(g[cc][e]);
                }
            }
        }
    }
}

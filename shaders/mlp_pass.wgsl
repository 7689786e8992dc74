// mlp_pass.wgsl: one pass of a one-hidden-layer MLP (F → H → K) over a block of rows: the
// hidden layer, the logits, loss and confusion counts of each row, and (training) the block's
// partial gradient of every parameter, reading each row of X from memory once: a tile of S
// rows is loaded into workgroup memory, and both the hidden layer and the first layer's
// gradient read it there.
//
// Bindings (group 0):
//   0  params    storage, read        f32[P]   W0 [H, F] at w0, b0 [H] at b0, W1 [K, H] at w1,
//                                              b1 [K] at b1 (K, a pipeline constant: 1 for a
//                                              sigmoid head, else a softmax head's classes)
//   1  acts      storage, read_write  f32[..]  X [rows, F] at 0 (read); z [rows, K] at z_off
//                                              (written, for logits())
//   2  labels    storage, read        f32[rows] y, class indices (0 or 1 for one logit)
//   3  partials  storage, read_write  u32[..]  one row of `stride` words per block, at
//                                              (part0 + block)·stride: each parameter's
//                                              partial gradient at its own index (f32 bits,
//                                              only with grad = 1), then at [P] Σ loss (f32
//                                              bits)
//   4  cfg       uniform              Mlp
//   5  tally     storage, read_write  atomic<u32>[..]  the set's [K, K] confusion counts
//                                              at tally_off ([2, 2] for one logit; tally.wgsl,
//                                              which this file is appended to)
// Workgroup: 256 invocations; one workgroup per block of `block` rows on a grid
// (min(G, max_x), ceil(G / max_x)), block = x + y·nwg.x. Limits: F ≤ MLP_MAX_F (64),
// H ≤ MLP_MAX_H (128), K ≤ MLP_MAX_K (16), from the prelude (as WG = MLP_WORKGROUP and
// S = MLP_TILE).
// Per tile of S = 16 rows (in row order):
//   xs[s, i] = X[r0 + s, i]                                  element e = k, k + 256, ...
//   hs[s, j] = act(b0[j] + Σ_i xs[s, i]·W0[j, i])            invocation k: rows 2(k / 32)
//                                                            and 2(k / 32) + 1, units
//                                                            4(k % 32)..+3
//   z[s, c] = b1[c] + Σ_j hs[s, j]·W1[c, j]                 one logit: invocation s; K:
//                                                            element e = k, k + 256, ...
//   loss, counts, d[s, c] = ∂L/∂z (as lr_pass.wgsl: sigmoid or softmax)   invocation s
//   gW1[c, j] += Σ_s d[s, c]·hs[s, j]                        invocation k: weights k + 256·l,
//                                                            l < MLP_W1_SLOTS, in registers
//   gb1[c] += Σ_s d[s, c]                                    invocation c
//   hs[s, j] ← (Σ_c d[s, c]·W1[c, j])·act'(hs[s, j])   (δ of the hidden layer)   element e
//   gb0[j] += Σ_s hs[s, j]                                   invocation j
//   gW0[j, i] += Σ_s hs[s, j]·xs[s, i]     invocation k: units 4(k / 8)..+3, inputs
//                                           8(k % 8)..+7, in registers across tiles
// Lanes of a block past h, f or the tile's rows compute on whatever lies there (within the
// workgroup arrays, or W0's last row) and are never stored.
// Every float sum runs in a fixed order, and invocation 0 adds the S loss partials in order;
// counts are exact integers (tally.wgsl): results are bit-identical run to run.
// act: 1 relu, 2 tanh, 3 sigmoid, with act' from the output a: activate() and activate_grad()
// of activation.wgsl, which this file is appended to.

// The first eight words as lr_pass.wgsl's Pass.
struct Mlp {
    rows: u32,
    f: u32,
    z_off: u32,
    part0: u32,
    stride: u32,
    grad: u32,
    inv_rows: f32,
    block: u32,
    h: u32,
    act: u32,
    w0: u32,
    b0: u32,
    w1: u32,
    b1: u32,
    params: u32,
    pad_k: u32,
    tally_off: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

const WG: u32 = MLP_WORKGROUP;
const S: u32 = MLP_TILE;
const MAX_F: u32 = MLP_MAX_F;
const MAX_H: u32 = MLP_MAX_H;
// Invocations per pair of rows in the hidden layer (four units each), and per four units in
// the first layer's gradient (eight inputs each): WG = (S / 2)·HQ = (MAX_H / 4)·FO, checked
// where kernels.rs defines the limits.
const HQ: u32 = MAX_H / 4u;
const FO: u32 = MAX_F / 8u;

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read_write> acts: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<u32>;
@group(0) @binding(4) var<uniform> cfg: Mlp;
@group(0) @binding(5) var<storage, read_write> tally: array<atomic<u32>>;

// Logits per row: 1 (a sigmoid head) or the K ≥ 2 classes of a softmax head.
override K: u32 = 1u;

var<workgroup> xs: array<f32, S * MAX_F>;  // [S, f], packed
var<workgroup> hs: array<f32, S * MAX_H>;  // [S, h], packed
var<workgroup> zs: array<f32, S * MLP_MAX_K>;  // [S, K], packed (K logits)
var<workgroup> ds: array<f32, S * MLP_MAX_K>;  // [S, K], packed
var<workgroup> loss_part: array<f32, S>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) k: u32) {
    let part = wid.x + wid.y * nwg.x;
    let begin = part * cfg.block;
    if (begin >= cfg.rows) {
        return;
    }
    let end = min(begin + cfg.block, cfg.rows);
    let f = cfg.f;
    let h = cfg.h;
    let train = cfg.grad != 0u;
    // The first layer's gradient block: rows gj..gj + 3 of W0, columns gi..gi + 7, as
    // g0[2c] (columns gi..gi + 3 of row gj + c) and g0[2c + 1] (gi + 4..gi + 7).
    var g0: array<vec4<f32>, 8>;
    let gj = 4u * (k / FO);
    let gi = 8u * (k % FO);
    var gw1: array<f32, MLP_W1_SLOTS>;
    var gb0 = 0.0;
    var gb1 = 0.0;
    var loss = 0.0;
    let kk = K;
    let cells = max(kk, 2u) * max(kk, 2u);
    for (var r0 = begin; r0 < end; r0 += S) {
        let n = min(S, end - r0);
        for (var e = k; e < n * f; e += WG) {
            xs[e] = acts[r0 * f + e];
        }
        workgroupBarrier();
        // Hidden units j0..j0 + 3 of rows s0 and s0 + 1 (lanes past h or n are discarded).
        let s0 = 2u * (k / HQ);
        let j0 = 4u * (k % HQ);
        if (s0 < n && j0 < h) {
            var b = vec4<f32>(0.0);
            for (var c = 0u; c < 4u; c += 1u) {
                if (j0 + c < h) {
                    b[c] = params[cfg.b0 + j0 + c];
                }
            }
            var a0 = b;
            var a1 = b;
            // Rows of W0, the last one repeated past h (those lanes are not stored).
            let w0 = cfg.w0 + j0 * f;
            let w1 = cfg.w0 + min(j0 + 1u, h - 1u) * f;
            let w2 = cfg.w0 + min(j0 + 2u, h - 1u) * f;
            let w3 = cfg.w0 + min(j0 + 3u, h - 1u) * f;
            for (var i = 0u; i < f; i += 1u) {
                let w = vec4<f32>(params[w0 + i], params[w1 + i], params[w2 + i], params[w3 + i]);
                a0 += xs[s0 * f + i] * w;
                a1 += xs[(s0 + 1u) * f + i] * w;
            }
            for (var c = 0u; c < 4u; c += 1u) {
                if (j0 + c < h) {
                    hs[s0 * h + j0 + c] = activate(a0[c], cfg.act);
                    if (s0 + 1u < n) {
                        hs[(s0 + 1u) * h + j0 + c] = activate(a1[c], cfg.act);
                    }
                }
            }
        }
        workgroupBarrier();
        if (kk == 1u && k < n) {
            var z = params[cfg.b1];
            for (var j = 0u; j < h; j += 1u) {
                z += hs[k * h + j] * params[cfg.w1 + j];
            }
            let r = r0 + k;
            acts[cfg.z_off + r] = z;
            let y = labels[r];
            loss += max(z, 0.0) + log(1.0 + exp(-abs(z))) - y * z;
            let lab = select(0u, 1u, y == 1.0);
            tally_row(cfg.tally_off, cells, lab * 2u + select(0u, 1u, z >= 0.0));
            ds[k] = (1.0 / (1.0 + exp(-z)) - y) * cfg.inv_rows;
        }
        if (kk > 1u) {
            for (var e = k; e < n * kk; e += WG) {
                let s = e / kk;
                let o = e % kk;
                var z = params[cfg.b1 + o];
                for (var j = 0u; j < h; j += 1u) {
                    z += hs[s * h + j] * params[cfg.w1 + o * h + j];
                }
                zs[e] = z;
                acts[cfg.z_off + (r0 + s) * kk + o] = z;
            }
            workgroupBarrier();
            if (k < n) {
                loss += softmax_row(k, labels[r0 + k], kk, cells);
            }
        }
        workgroupBarrier();
        if (train) {
            for (var l = 0u; l < MLP_W1_SLOTS; l += 1u) {
                let p = k + l * WG;
                if (p < kk * h) {
                    let o = p / h;
                    let j = p % h;
                    for (var s = 0u; s < n; s += 1u) {
                        gw1[l] += ds[s * kk + o] * hs[s * h + j];
                    }
                }
            }
            if (k < kk) {
                for (var s = 0u; s < n; s += 1u) {
                    gb1 += ds[s * kk + k];
                }
            }
            workgroupBarrier();
            for (var e = k; e < n * h; e += WG) {
                let s = e / h;
                let j = e % h;
                var back = ds[s * kk] * params[cfg.w1 + j];
                for (var o = 1u; o < kk; o += 1u) {
                    back += ds[s * kk + o] * params[cfg.w1 + o * h + j];
                }
                hs[e] = back * activate_grad(hs[e], cfg.act);
            }
            workgroupBarrier();
            if (k < h) {
                for (var s = 0u; s < n; s += 1u) {
                    gb0 += hs[s * h + k];
                }
            }
            if (gj < h && gi < f) {
                for (var s = 0u; s < n; s += 1u) {
                    let d = vec4<f32>(hs[s * h + gj], hs[s * h + gj + 1u], hs[s * h + gj + 2u],
                                      hs[s * h + gj + 3u]);
                    let a = s * f + gi;
                    let lo = vec4<f32>(xs[a], xs[a + 1u], xs[a + 2u], xs[a + 3u]);
                    let hi = vec4<f32>(xs[a + 4u], xs[a + 5u], xs[a + 6u], xs[a + 7u]);
                    for (var c = 0u; c < 4u; c += 1u) {
                        g0[2u * c] += d[c] * lo;
                        g0[2u * c + 1u] += d[c] * hi;
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (k < S) {
        loss_part[k] = loss;
    }
    let base = (cfg.part0 + part) * cfg.stride;
    if (train) {
        for (var c = 0u; c < 4u; c += 1u) {
            for (var l = 0u; l < 8u; l += 1u) {
                let j = gj + c;
                let i = gi + l;
                if (j < h && i < f) {
                    partials[base + cfg.w0 + j * f + i] = bitcast<u32>(g0[2u * c + l / 4u][l % 4u]);
                }
            }
        }
        if (k < h) {
            partials[base + cfg.b0 + k] = bitcast<u32>(gb0);
        }
        for (var l = 0u; l < MLP_W1_SLOTS; l += 1u) {
            let p = k + l * WG;
            if (p < kk * h) {
                partials[base + cfg.w1 + p] = bitcast<u32>(gw1[l]);
            }
        }
        if (k < kk) {
            partials[base + cfg.b1 + k] = bitcast<u32>(gb1);
        }
    }
    workgroupBarrier();
    tally_flush(k, WG, cfg.tally_off, cells);
    if (k == 0u) {
        var l = 0.0;
        for (var j = 0u; j < S; j += 1u) {
            l += loss_part[j];
        }
        partials[base + cfg.params] = bitcast<u32>(l);
    }
}

// K logits: tile row s's loss from its logits zs[s, ..] (returned), its count, and its
// ∂L/∂z into ds[s, ..].
fn softmax_row(s: u32, y: f32, kk: u32, cells: u32) -> f32 {
    let o = s * kk;
    var m = zs[o];
    var top = 0u;
    for (var c = 1u; c < kk; c += 1u) {
        if (zs[o + c] > m) {
            m = zs[o + c];
            top = c;
        }
    }
    var sum = 0.0;
    for (var c = 0u; c < kk; c += 1u) {
        sum += exp(zs[o + c] - m);
    }
    let yi = min(u32(y), kk - 1u);
    tally_row(cfg.tally_off, cells, tally_cell(kk, y, top));
    for (var c = 0u; c < kk; c += 1u) {
        let t = select(0.0, 1.0, c == yi);
        ds[o + c] = (exp(zs[o + c] - m) / sum - t) * cfg.inv_rows;
    }
    return m + log(sum) - zs[o + yi];
}

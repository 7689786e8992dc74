// lr_loop.wgsl: logistic regression on small data, whole iterations in one workgroup: per
// iteration the update, then the logits, loss, counts and gradient of every training row, the
// validation rows' loss and counts, and (in a chunk) the stop rule, judge() of
// stop_rule_core.wgsl; the update is apply_update() of update.wgsl (this file is appended to
// reduction.wgsl, stop_rule_core.wgsl and update.wgsl). A chunk of K iterations is one dispatch,
// where the layered path needs four per iteration; a pause breaks out of the loop.
//
// Pipeline constants: F, the features (1..=LOOP_MAX_FEATURES), and WG, the invocations (a
// power of two, 2..=LOOP_MAX_WORKGROUP); both limits come from the prelude. With F fixed the
// loops over a row have a constant trip count, so drivers can unroll them and keep a row and
// the weights in registers.
//
// Bindings (group 0), besides stop_rule_core.wgsl's state (1), history (2) and rule (4):
//   0  cfg     uniform              Loop
//   3  src     storage, read_write  f32[P]     weights (P = F + 1: w [F], then the bias b)
//   5  dst     storage, read_write  f32[P]     the other weight buffer: iteration i's weights
//                                              are in src when i + update_first is even, else
//                                              in dst
//   6  best    storage, read_write  f32[P]     written when an iteration improves and
//                                              rule.copy_groups != 0
//   7  acts    storage, read        vec4[..]   X [rows, F4], each row F4 = ⌈F/4⌉ vec4s,
//                                              zero-padded
//   8  labels  storage, read        f32[rows]  y, each 0 or 1
//   9  val_x   storage, read        vec4[..]   validation X [val_rows, F4], padded alike (a
//                                              dummy if none)
//   10 val_y   storage, read        f32[..]    validation y [val_rows]
//   11 grad    storage, read_write  f32[P]     ∇L of the last evaluation: written by each
//                                              one, read by an update_first step
//   12 result  storage, read_write  u32[..]    the last evaluation's record (reduction.wgsl,
//                                              K = 2: training rows, then validation rows)
//   13 zs      storage, read_write  f32[rows]  z, written only when cfg.keep_z = 1 (for
//                                              logits(); training skips it)
// Workgroup: exactly one, of WG invocations. Invocation k takes rows k, k + WG, ... in order
// and keeps its own partial gradient (F4 vec4s, then the bias's in slot F4), loss and counts;
// the gradient partials of k + WG/2 are added onto k's, then the owner of vec4 q (invocation
// q mod WG) adds the WG/2 in order, and invocation 0 adds the WG loss and count partials in
// order. No atomics, so results are bit-identical run to run; every update of a run (the
// first one of an update_first dispatch included) is the one statement below, so chunked and
// per-iteration runs agree bit for bit.
// Per row: z = b + Σ_q dot(x_q, w_q); loss = max(z, 0) + log(1 + exp(−|z|)) − y·z;
// ∂L/∂z = (σ(z) − y)·inv_rows; predicted positive iff z ≥ 0. One logit only (a sigmoid head):
// the planner sends softmax heads to lr_pass.wgsl.

struct Loop {
    rows: u32,
    features: u32,      // F again (the kernel uses the constant)
    val_rows: u32,
    iters: u32,         // evaluations; 0 with update_first = 1 makes an update-only dispatch
    lr: f32,
    inv_rows: f32,
    update_first: u32,  // 1: apply `grad` to src into dst before the first evaluation
    judge: u32,         // 1: judge every evaluation (a chunk); 0: evaluate only
    keep_z: u32,        // 1: write z (for logits()); training skips it
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

override F: u32;
override WG: u32;
override F4: u32 = (F + 3u) / 4u;
override HALF: u32 = WG / 2u;

const MAX_F4: u32 = LOOP_MAX_FEATURES / 4u;
const MAX_P: u32 = LOOP_MAX_FEATURES + 1u;
const MAX_WG: u32 = LOOP_MAX_WORKGROUP;
const GS: u32 = MAX_F4 + 1u;  // vec4s per partial gradient in gpart

@group(0) @binding(0) var<uniform> cfg: Loop;
@group(0) @binding(3) var<storage, read_write> src: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;
@group(0) @binding(6) var<storage, read_write> best: array<f32>;
@group(0) @binding(7) var<storage, read> acts: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> labels: array<f32>;
@group(0) @binding(9) var<storage, read> val_x: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> val_y: array<f32>;
@group(0) @binding(11) var<storage, read_write> grad: array<f32>;
@group(0) @binding(12) var<storage, read_write> result: array<u32>;
@group(0) @binding(13) var<storage, read_write> zs: array<f32>;

var<workgroup> w: array<f32, MAX_P>;
var<workgroup> g: array<f32, MAX_P>;
var<workgroup> gpart: array<vec4<f32>, MAX_WG / 2u * GS>; // [MAX_WG / 2, GS]
var<workgroup> lpart: array<f32, MAX_WG>;
var<workgroup> cpart: array<vec4<u32>, MAX_WG>;
var<workgroup> vlpart: array<f32, MAX_WG>;
var<workgroup> vcpart: array<vec4<u32>, MAX_WG>;
var<workgroup> verdict: u32;
var<workgroup> rec: array<u32, HEAD_WORDS + 8u>;  // the record, K = 2

fn record_at(i: u32) -> u32 {
    return rec[i];
}

fn bce(z: f32, y: f32) -> f32 {
    return max(z, 0.0) + log(1.0 + exp(-abs(z))) - y * z;
}

fn confusion(z: f32, y: f32) -> vec4<u32> {
    let pos = z >= 0.0;
    let lab = y == 1.0;
    return vec4<u32>(u32(pos && lab), u32(pos && !lab), u32(!pos && lab), u32(!pos && !lab));
}

// Weight j, or 0 past the features (the padding, which must not see the bias).
fn wj(j: u32) -> f32 {
    return select(0.0, w[j], j < F);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) k: u32) {
    let np = F + 1u;
    let uf = cfg.update_first;
    for (var p = k; p < np; p += WG) {
        w[p] = src[p];
        if (uf != 0u) {
            g[p] = grad[p];
        }
    }
    // grad[p] is written below by the owner of its vec4, another invocation.
    storageBarrier();
    // This invocation's weights (bias in wb), row, and partial gradient (bias's in gl[F4].x).
    var wl: array<vec4<f32>, MAX_F4>;
    var xr: array<vec4<f32>, MAX_F4>;
    var gl: array<vec4<f32>, GS>;
    let steps = max(cfg.iters, uf);
    for (var i = 0u; i < steps; i += 1u) {
        if (i > 0u || uf != 0u) {
            // Parameter p is owned by one invocation from here to its gradient below.
            for (var p = k; p < np; p += WG) {
                let next = apply_update(p, w[p], g[p], cfg.lr);
                w[p] = next;
                if (((i + uf) & 1u) == 1u) {
                    dst[p] = next;
                } else {
                    src[p] = next;
                }
            }
        }
        if (i >= cfg.iters) {
            break;
        }
        workgroupBarrier();
        for (var q = 0u; q < F4; q += 1u) {
            let j = 4u * q;
            wl[q] = vec4<f32>(wj(j), wj(j + 1u), wj(j + 2u), wj(j + 3u));
            gl[q] = vec4<f32>(0.0);
        }
        let wb = w[F];
        var gb = 0.0;
        var loss = 0.0;
        var c = vec4<u32>(0u);
        for (var r = k; r < cfg.rows; r += WG) {
            let a = r * F4;
            var z = wb;
            for (var q = 0u; q < F4; q += 1u) {
                xr[q] = acts[a + q];
                z += dot(xr[q], wl[q]);
            }
            if (cfg.keep_z != 0u) {
                zs[r] = z;
            }
            let y = labels[r];
            loss += bce(z, y);
            c += confusion(z, y);
            let d = (1.0 / (1.0 + exp(-z)) - y) * cfg.inv_rows;
            for (var q = 0u; q < F4; q += 1u) {
                gl[q] += d * xr[q];
            }
            gb += d;
        }
        gl[F4] = vec4<f32>(gb, 0.0, 0.0, 0.0);
        var vloss = 0.0;
        var vc = vec4<u32>(0u);
        for (var r = k; r < cfg.val_rows; r += WG) {
            let a = r * F4;
            var z = wb;
            for (var q = 0u; q < F4; q += 1u) {
                z += dot(val_x[a + q], wl[q]);
            }
            vloss += bce(z, val_y[r]);
            vc += confusion(z, val_y[r]);
        }
        lpart[k] = loss;
        cpart[k] = c;
        vlpart[k] = vloss;
        vcpart[k] = vc;
        if (k >= HALF) {
            for (var q = 0u; q <= F4; q += 1u) {
                gpart[(k - HALF) * GS + q] = gl[q];
            }
        }
        workgroupBarrier();
        if (k < HALF) {
            for (var q = 0u; q <= F4; q += 1u) {
                gpart[k * GS + q] = gl[q] + gpart[k * GS + q];
            }
        }
        if (k == 0u) {
            var l = 0.0;
            var s = vec4<u32>(0u);
            var vl = 0.0;
            var vs = vec4<u32>(0u);
            for (var j = 0u; j < WG; j += 1u) {
                l += lpart[j];
                s += cpart[j];
                vl += vlpart[j];
                vs += vcpart[j];
            }
            // Counts (TP, FP, FN, TN) as the [true][predicted] matrix (TN, FP, FN, TP).
            let words = array<u32, HEAD_WORDS + 8u>(bitcast<u32>(l), bitcast<u32>(vl), 2u, 0u,
                                                    s.w, s.y, s.z, s.x, vs.w, vs.y, vs.z, vs.x);
            for (var j = 0u; j < HEAD_WORDS + 8u; j += 1u) {
                rec[j] = words[j];
                result[j] = words[j];
            }
            var flags = 0u;
            if (cfg.judge != 0u) {
                class_sums(0u, 1u);
                flags = judge(rec[0], rec[1]);
                let e = entry_base(stop.head.slot - 1u) + HEAD_WORDS;
                for (var j = 0u; j < HEAD_WORDS + 8u; j += 1u) {
                    history[e + j] = rec[j];
                }
            }
            verdict = flags;
        }
        workgroupBarrier();
        for (var q = k; q <= F4; q += WG) {
            var s = vec4<f32>(0.0);
            for (var j = 0u; j < HALF; j += 1u) {
                s += gpart[j * GS + q];
            }
            if (q == F4) {
                g[F] = s.x;
                grad[F] = s.x;
            } else {
                for (var e = 0u; e < 4u; e += 1u) {
                    let p = 4u * q + e;
                    if (p < F) {
                        g[p] = s[e];
                        grad[p] = s[e];
                    }
                }
            }
        }
        let flags = workgroupUniformLoad(&verdict);
        if ((flags & ENTRY_IMPROVED) != 0u && rule.copy_groups != 0u) {
            for (var p = k; p < np; p += WG) {
                best[p] = w[p];
            }
        }
        if ((flags & ENTRY_PAUSED) != 0u) {
            break;
        }
    }
}

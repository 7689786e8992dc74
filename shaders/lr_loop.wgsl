// lr_loop.wgsl: logistic regression on small data, whole iterations in one workgroup: per
// iteration the update, then the logits, loss, counts and gradient of every training row, the
// validation rows' loss and counts, and (in a chunk) the stop rule, judge() of
// stop_rule_core.wgsl, which this file is appended to. A chunk of K iterations is one dispatch,
// where the layered path needs four per iteration; a pause breaks out of the loop.
//
// Bindings (group 0), besides stop_rule_core.wgsl's state (1), history (2) and rule (4):
//   0  cfg     uniform              Loop
//   3  src     storage, read_write  f32[P]     weights (P = f + 1: w [f], then the bias b)
//   5  dst     storage, read_write  f32[P]     the other weight buffer: iteration i's weights
//                                              are in src when i + update_first is even, else
//                                              in dst
//   6  best    storage, read_write  f32[P]     written when an iteration improves and
//                                              rule.copy_groups != 0
//   7  acts    storage, read_write  f32[..]    X [rows, f] at 0 (read); z [rows] at z_off
//                                              (written, for logits())
//   8  labels  storage, read        f32[rows]  y, each 0 or 1
//   9  val_x   storage, read        f32[..]    validation X [val_rows, f] (a dummy if none)
//   10 val_y   storage, read        f32[..]    validation y [val_rows]
//   11 grad    storage, read_write  f32[P]     ∇L of the last evaluation: written by each
//                                              one, read by an update_first step
//   12 result  storage, read_write  u32[16]    the last evaluation: training Σ loss (f32
//                                              bits), TP, FP, FN, TN at 0..5, validation at 8..13
// Workgroup: exactly one, of 64 invocations. Invocation k takes rows k, k + 64, ... in order
// and keeps its own partial gradient, loss and counts; the gradient partials of k + 32 are
// added onto k's, then parameter p's owner (invocations p, p − 64) adds the 32 in order, and
// invocation 0 adds the 64 loss and count partials in order. No atomics, so results are
// bit-identical run to run; every update of a run (the first one of an update_first dispatch
// included) is the one statement below, so chunked and per-iteration runs agree bit for bit.
// Per row: z = b + Σ_i x_i·w_i; loss = max(z, 0) + log(1 + exp(−|z|)) − y·z;
// ∂L/∂z = (σ(z) − y)·inv_rows; predicted positive iff z ≥ 0. Limits: f ≤ MAX_F.

struct Loop {
    rows: u32,
    features: u32,
    val_rows: u32,
    iters: u32,         // evaluations; 0 with update_first = 1 makes an update-only dispatch
    lr: f32,
    inv_rows: f32,
    update_first: u32,  // 1: apply `grad` to src into dst before the first evaluation
    judge: u32,         // 1: judge every evaluation (a chunk); 0: evaluate only
    z_off: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

const WG: u32 = 64u;
const HALF: u32 = 32u;
const MAX_F: u32 = 64u;
const MAX_P: u32 = 65u;

@group(0) @binding(0) var<uniform> cfg: Loop;
@group(0) @binding(3) var<storage, read_write> src: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;
@group(0) @binding(6) var<storage, read_write> best: array<f32>;
@group(0) @binding(7) var<storage, read_write> acts: array<f32>;
@group(0) @binding(8) var<storage, read> labels: array<f32>;
@group(0) @binding(9) var<storage, read> val_x: array<f32>;
@group(0) @binding(10) var<storage, read> val_y: array<f32>;
@group(0) @binding(11) var<storage, read_write> grad: array<f32>;
@group(0) @binding(12) var<storage, read_write> result: array<u32, 16>;

var<workgroup> w: array<f32, MAX_P>;
var<workgroup> g: array<f32, MAX_P>;
var<workgroup> gpart: array<f32, 2080>; // [HALF, MAX_P]
var<workgroup> lpart: array<f32, WG>;
var<workgroup> cpart: array<vec4<u32>, WG>;
var<workgroup> vlpart: array<f32, WG>;
var<workgroup> vcpart: array<vec4<u32>, WG>;
var<workgroup> verdict: u32;

fn bce(z: f32, y: f32) -> f32 {
    return max(z, 0.0) + log(1.0 + exp(-abs(z))) - y * z;
}

fn confusion(z: f32, y: f32) -> vec4<u32> {
    let pos = z >= 0.0;
    let lab = y == 1.0;
    return vec4<u32>(u32(pos && lab), u32(pos && !lab), u32(!pos && lab), u32(!pos && !lab));
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) k: u32) {
    let f = cfg.features;
    let np = f + 1u;
    let uf = cfg.update_first;
    for (var p = k; p < np; p += WG) {
        w[p] = src[p];
        if (uf != 0u) {
            g[p] = grad[p];
        }
    }
    let steps = max(cfg.iters, uf);
    for (var i = 0u; i < steps; i += 1u) {
        if (i > 0u || uf != 0u) {
            // Parameter p is owned by one invocation from here to its gradient below.
            for (var p = k; p < np; p += WG) {
                let next = w[p] - cfg.lr * g[p];
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
        var gl: array<f32, MAX_P>;
        for (var p = 0u; p < np; p += 1u) {
            gl[p] = 0.0;
        }
        var loss = 0.0;
        var c = vec4<u32>(0u);
        for (var r = k; r < cfg.rows; r += WG) {
            let a = r * f;
            var z = w[f];
            for (var j = 0u; j < f; j += 1u) {
                z += acts[a + j] * w[j];
            }
            acts[cfg.z_off + r] = z;
            let y = labels[r];
            loss += bce(z, y);
            c += confusion(z, y);
            let d = (1.0 / (1.0 + exp(-z)) - y) * cfg.inv_rows;
            for (var j = 0u; j < f; j += 1u) {
                gl[j] += d * acts[a + j];
            }
            gl[f] += d;
        }
        var vloss = 0.0;
        var vc = vec4<u32>(0u);
        for (var r = k; r < cfg.val_rows; r += WG) {
            let a = r * f;
            var z = w[f];
            for (var j = 0u; j < f; j += 1u) {
                z += val_x[a + j] * w[j];
            }
            vloss += bce(z, val_y[r]);
            vc += confusion(z, val_y[r]);
        }
        lpart[k] = loss;
        cpart[k] = c;
        vlpart[k] = vloss;
        vcpart[k] = vc;
        if (k >= HALF) {
            for (var p = 0u; p < np; p += 1u) {
                gpart[(k - HALF) * MAX_P + p] = gl[p];
            }
        }
        workgroupBarrier();
        if (k < HALF) {
            for (var p = 0u; p < np; p += 1u) {
                gpart[k * MAX_P + p] = gl[p] + gpart[k * MAX_P + p];
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
            var res = array<u32, 16>(bitcast<u32>(l), s.x, s.y, s.z, s.w, 0u, 0u, 0u,
                                     bitcast<u32>(vl), vs.x, vs.y, vs.z, vs.w, 0u, 0u, 0u);
            result = res;
            var flags = 0u;
            if (cfg.judge != 0u) {
                flags = judge(res);
            }
            verdict = flags;
        }
        workgroupBarrier();
        for (var p = k; p < np; p += WG) {
            var s = 0.0;
            for (var j = 0u; j < HALF; j += 1u) {
                s += gpart[j * MAX_P + p];
            }
            g[p] = s;
            grad[p] = s;
        }
        let flags = workgroupUniformLoad(&verdict);
        if ((flags & 2u) != 0u && rule.copy_groups != 0u) {
            for (var p = k; p < np; p += WG) {
                best[p] = w[p];
            }
        }
        if ((flags & 4u) != 0u) {
            break;
        }
    }
}

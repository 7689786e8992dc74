// lr_loop.wgsl: logistic regression on small data, whole iterations in one workgroup: per
// iteration the update, then the logits, loss, counts and gradient of every training row, the
// validation rows' loss and counts, and (in a chunk) the stop rule, judge() of
// stop_rule_core.wgsl; the update is step_param() of update.wgsl (this file is appended to
// reduction.wgsl, stop_rule_core.wgsl and update.wgsl). A chunk of iterations is one dispatch,
// where the layered path needs four per iteration; a pause breaks out of the loop.
//
// Pipeline constants: F, the features (1..=LOOP_MAX_FEATURES), WG, the invocations (a power
// of two, 2..=LOOP_MAX_WORKGROUP), and K, the logits (1: a sigmoid head; 2..=LOOP_MAX_K: a
// softmax head, with K·(F4 + 1) ≤ LOOP_MAX_FEATURES / 4 + 1 vec4s of registers); the limits
// come from the prelude. With F and K fixed the loops over a row have constant trip counts,
// so drivers can unroll them and keep a row and the weights in registers.
//
// Bindings (group 0), besides stop_rule_core.wgsl's state (1), history (2) and rule (4):
//   0  cfg     uniform              Loop
//   3  src     storage, read_write  f32[P]     weights (P = K(F + 1): W [K, F], then the
//                                              biases b [K])
//   5  dst     storage, read_write  f32[P]     the other weight buffer: iteration i's weights
//                                              are in src when i + update_first is even, else
//                                              in dst
//   6  best    storage, read_write  f32[P]     written when an iteration improves and
//                                              rule.copy_groups != 0
//   7  acts    storage, read        vec4[..]   X [rows, F4], each row F4 = ⌈F/4⌉ vec4s,
//                                              zero-padded
//   8  labels  storage, read        f32[rows]  y, class indices (0 or 1 for one logit)
//   9  val_x   storage, read        vec4[..]   validation X [val_rows, F4], padded alike (a
//                                              dummy if none)
//   10 val_y   storage, read        f32[..]    validation y [val_rows]
//   11 grad    storage, read_write  f32[P]     ∇L of the last evaluation: written by each
//                                              one, read by an update_first step
//   12 result  storage, read_write  u32[..]    the last evaluation's record (reduction.wgsl;
//                                              training rows, then validation rows)
//   13 zs      storage, read_write  f32[rows, K]  z, written only when cfg.keep_z = 1 (for
//                                              logits(); training skips it)
//   14 opt     uniform              OptConsts  (update.wgsl)
//   15 scalars storage, read        StepScalars[MAX_CHUNK + 1]  entry i: the scalars of the
//                                              update at step i of the loop below (the one
//                                              before the dispatch's evaluation i)
//   16 pflags  storage, read        u32[P]     bit PARAM_DECAYS: a weight (decayed), else a
//                                              bias; bit PARAM_PRUNED: held at 0
//   17 m_buf   storage, read_write  f32[P]     the first optimizer state buffer, in place (a
//                                              dummy of 4 if opt.buffers = 0)
//   18 v_buf   storage, read_write  f32[P]     the second, in place (a dummy if < 2)
//   19 best_m  storage, read_write  f32[P]     m's copy, written with `best` (a dummy alike)
//   20 best_v  storage, read_write  f32[P]     v's copy, written with `best` (a dummy alike)
// Workgroup: exactly one, of WG invocations. Invocation k takes rows k, k + WG, ... in order
// and keeps its own partial gradient (per logit c, F4 vec4s from slot c(F4 + 1), then the
// bias's in the next slot), loss and, with one logit, counts; with K logits rows are counted
// in khist with u32 atomics (exact in any order). The gradient partials of k + WG/2 are
// added onto k's, then the owner of vec4 q (invocation q mod WG) adds the WG/2 in order, and
// invocation 0 adds the WG loss (and count) partials in order. No float atomics, so results
// are bit-identical run to run; every update of a run (the first one of an update_first
// dispatch included) is the one statement below, so chunked and per-iteration runs agree
// bit for bit. Parameter p's update, its state m_buf[p], v_buf[p] and its best copies are
// all the work of invocation p mod WG.
// Per row, one logit: z = b + Σ_q dot(x_q, w_q); loss = max(z, 0) + log(1 + exp(−|z|)) − y·z;
// ∂L/∂z = (σ(z) − y)·inv_rows; predicted positive iff z ≥ 0. K logits: z_c = b_c +
// Σ_q dot(x_q, W_c,q); m = max z, s = Σ_c exp(z_c − m); loss = m + log(s) − z_y;
// ∂L/∂z_c = (exp(z_c − m)/s − [c = y])·inv_rows; predicted argmax z (lowest among equals).

struct Loop {
    rows: u32,
    features: u32,      // F again (the kernel uses the constant)
    val_rows: u32,
    iters: u32,         // evaluations; 0 with update_first = 1 makes an update-only dispatch
    inv_rows: f32,
    update_first: u32,  // 1: apply `grad` to src into dst before the first evaluation
    judge: u32,         // 1: judge every evaluation (a chunk); 0: evaluate only
    keep_z: u32,        // 1: write z (for logits()); training skips it
    pad0: u32,
    pad1: u32,
    pad2: u32,
    pad3: u32,
}

override F: u32;
override WG: u32;
override K: u32 = 1u;
override F4: u32 = (F + 3u) / 4u;
override HALF: u32 = WG / 2u;
override NG: u32 = K * (F4 + 1u);  // vec4s of a partial gradient
override NP: u32 = K * (F + 1u);   // parameters

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
@group(0) @binding(14) var<uniform> opt: OptConsts;
@group(0) @binding(15) var<storage, read> scalars: array<StepScalars>;
@group(0) @binding(16) var<storage, read> pflags: array<u32>;
@group(0) @binding(17) var<storage, read_write> m_buf: array<f32>;
@group(0) @binding(18) var<storage, read_write> v_buf: array<f32>;
@group(0) @binding(19) var<storage, read_write> best_m: array<f32>;
@group(0) @binding(20) var<storage, read_write> best_v: array<f32>;

var<workgroup> w: array<f32, MAX_P>;
var<workgroup> g: array<f32, MAX_P>;
var<workgroup> gpart: array<vec4<f32>, MAX_WG / 2u * GS>; // [MAX_WG / 2, GS]
var<workgroup> lpart: array<f32, MAX_WG>;
var<workgroup> cpart: array<vec4<u32>, MAX_WG>;
var<workgroup> vlpart: array<f32, MAX_WG>;
var<workgroup> vcpart: array<vec4<u32>, MAX_WG>;
var<workgroup> verdict: u32;
const MAX_REC: u32 = HEAD_WORDS + 2u * LOOP_MAX_K * LOOP_MAX_K;
var<workgroup> rec: array<u32, MAX_REC>;  // the record
// K logits: the training rows' counts [K, K], then the validation rows'.
var<workgroup> khist: array<atomic<u32>, 2u * LOOP_MAX_K * LOOP_MAX_K>;

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

// Logit c's weight j, or 0 past the features.
fn wcj(c: u32, j: u32) -> f32 {
    return select(0.0, w[c * F + j], j < F);
}

// K logits: a row's loss, and its count in khist at `base`, from z [K] (becoming its
// ∂L/∂z).
fn softmax_row(z: ptr<function, array<f32, LOOP_MAX_K>>, y: f32, base: u32) -> f32 {
    var m = (*z)[0];
    var top = 0u;
    for (var c = 1u; c < K; c += 1u) {
        if ((*z)[c] > m) {
            m = (*z)[c];
            top = c;
        }
    }
    var s = 0.0;
    for (var c = 0u; c < K; c += 1u) {
        s += exp((*z)[c] - m);
    }
    let yi = min(u32(y), K - 1u);
    let loss = m + log(s) - (*z)[yi];
    atomicAdd(&khist[base + yi * K + top], 1u);
    for (var c = 0u; c < K; c += 1u) {
        (*z)[c] = (exp((*z)[c] - m) / s - select(0.0, 1.0, c == yi)) * cfg.inv_rows;
    }
    return loss;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) k: u32) {
    let np = NP;
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
            let s = scalars[min(i, arrayLength(&scalars) - 1u)];
            for (var p = k; p < np; p += WG) {
                let next = step_param(p, s, w[p], g[p]);
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
        // The last iteration's counts were read before its last barrier.
        for (var e = k; e < 2u * K * K && K > 1u; e += WG) {
            atomicStore(&khist[e], 0u);
        }
        workgroupBarrier();
        var loss = 0.0;
        var c = vec4<u32>(0u);
        var vloss = 0.0;
        var vc = vec4<u32>(0u);
        if (K > 1u) {
            for (var o = 0u; o < K; o += 1u) {
                for (var q = 0u; q < F4; q += 1u) {
                    let j = 4u * q;
                    wl[o * F4 + q] = vec4<f32>(wcj(o, j), wcj(o, j + 1u), wcj(o, j + 2u),
                                               wcj(o, j + 3u));
                }
            }
            for (var q = 0u; q < NG; q += 1u) {
                gl[q] = vec4<f32>(0.0);
            }
            for (var r = k; r < cfg.rows; r += WG) {
                let a = r * F4;
                for (var q = 0u; q < F4; q += 1u) {
                    xr[q] = acts[a + q];
                }
                var z: array<f32, LOOP_MAX_K>;
                for (var o = 0u; o < K; o += 1u) {
                    var v = w[K * F + o];
                    for (var q = 0u; q < F4; q += 1u) {
                        v += dot(xr[q], wl[o * F4 + q]);
                    }
                    z[o] = v;
                    if (cfg.keep_z != 0u) {
                        zs[r * K + o] = v;
                    }
                }
                loss += softmax_row(&z, labels[r], 0u);
                for (var o = 0u; o < K; o += 1u) {
                    let b = o * (F4 + 1u);
                    for (var q = 0u; q < F4; q += 1u) {
                        gl[b + q] += z[o] * xr[q];
                    }
                    gl[b + F4].x += z[o];
                }
            }
            for (var r = k; r < cfg.val_rows; r += WG) {
                let a = r * F4;
                var z: array<f32, LOOP_MAX_K>;
                for (var o = 0u; o < K; o += 1u) {
                    var v = w[K * F + o];
                    for (var q = 0u; q < F4; q += 1u) {
                        v += dot(val_x[a + q], wl[o * F4 + q]);
                    }
                    z[o] = v;
                }
                vloss += softmax_row(&z, val_y[r], K * K);
            }
        }
        for (var q = 0u; q < F4 && K == 1u; q += 1u) {
            let j = 4u * q;
            wl[q] = vec4<f32>(wj(j), wj(j + 1u), wj(j + 2u), wj(j + 3u));
            gl[q] = vec4<f32>(0.0);
        }
        let wb = w[F];
        var gb = 0.0;
        for (var r = k; r < cfg.rows && K == 1u; r += WG) {
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
        if (K == 1u) {
            gl[F4] = vec4<f32>(gb, 0.0, 0.0, 0.0);
        }
        for (var r = k; r < cfg.val_rows && K == 1u; r += WG) {
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
            for (var q = 0u; q < NG; q += 1u) {
                gpart[(k - HALF) * GS + q] = gl[q];
            }
        }
        workgroupBarrier();
        if (k < HALF) {
            for (var q = 0u; q < NG; q += 1u) {
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
            // One logit: counts (TP, FP, FN, TN) as the [true][predicted] matrix (TN, FP, FN,
            // TP); K logits: khist.
            let kc = max(K, 2u);
            let words = array<u32, HEAD_WORDS + 8u>(bitcast<u32>(l), bitcast<u32>(vl), kc, 0u,
                                                    s.w, s.y, s.z, s.x, vs.w, vs.y, vs.z, vs.x);
            let n = record_len(kc);
            for (var j = 0u; j < n; j += 1u) {
                var v = 0u;
                if (j < HEAD_WORDS || K == 1u) {
                    v = words[j];
                } else {
                    v = atomicLoad(&khist[j - HEAD_WORDS]);
                }
                rec[j] = v;
                result[j] = v;
            }
            var flags = 0u;
            if (cfg.judge != 0u) {
                class_sums(0u, 1u);
                flags = judge(rec[0], rec[1]);
                let e = entry_base(stop.head.slot - 1u) + HEAD_WORDS;
                for (var j = 0u; j < n; j += 1u) {
                    history[e + j] = rec[j];
                }
            }
            verdict = flags;
        }
        workgroupBarrier();
        for (var q = k; q < NG; q += WG) {
            var s = vec4<f32>(0.0);
            for (var j = 0u; j < HALF; j += 1u) {
                s += gpart[j * GS + q];
            }
            // Logit o's slot qq: its bias in slot F4, else four of its weights.
            let o = q / (F4 + 1u);
            let qq = q % (F4 + 1u);
            if (qq == F4) {
                g[K * F + o] = s.x;
                grad[K * F + o] = s.x;
            } else {
                for (var e = 0u; e < 4u; e += 1u) {
                    let p = 4u * qq + e;
                    if (p < F) {
                        g[o * F + p] = s[e];
                        grad[o * F + p] = s[e];
                    }
                }
            }
        }
        let flags = workgroupUniformLoad(&verdict);
        if ((flags & ENTRY_IMPROVED) != 0u && rule.copy_groups != 0u) {
            for (var p = k; p < np; p += WG) {
                best[p] = w[p];
                if (opt.buffers > 0u) {
                    best_m[p] = m_buf[p];
                }
                if (opt.buffers > 1u) {
                    best_v[p] = v_buf[p];
                }
            }
        }
        if ((flags & ENTRY_PAUSED) != 0u) {
            break;
        }
    }
}

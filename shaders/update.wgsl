// update.wgsl: the one place the parameter update is written, shared (by concatenation, see
// src/backend/gpu/kernels.rs) by reduce_update.wgsl and lr_loop.wgsl. No bindings of its
// own: step_param() uses the including file's `opt` (OptConsts), `pflags` (u32[P]) and the
// state buffers `m_buf`, `v_buf` (f32[P], dummies where unused), which both declare.
// step_param(p, s, w, g) is parameter p's weight after one step: its state loaded, stepped by
// apply_update and stored back (only the buffers the optimizer has); a pruned parameter
// (pflags bit PARAM_PRUNED) gets exactly 0, and its state 0.
// apply_update(c, s, w, g, &m, &v, decays) is one parameter's weight after one step from w
// with the gradient g (of the full batch, or of a mini-batch) and optimizer state m, v (unused
// ones are ignored), with the optimizer constants c and update k's scalars s; `decays`: it is
// a weight, not a bias. It
// is src/optim.rs's step_one, the same f32 operations in the same order:
//   SGD (kind 0): g += λw (weights, λ ≠ 0); with a momentum buffer m = μm + g, then g = g + μm
//     (Nesterov) or g = m; w − lr·g.
//   Adam (1) / AdamW (2): weights with λ ≠ 0 decay first (AdamW w *= s.decay; Adam g += λw);
//     m = β₁m + (1 − β₁)g, v = β₂v + (1 − β₂)g², w − step_size·(m / (√v / bc2_sqrt + ε)).

// Optimizer::consts() of src/optim.rs (OptConsts there).
struct OptConsts {
    kind: u32,          // 0 sgd, 1 adam, 2 adamw
    nesterov: u32,
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    buffers: u32,       // state buffers per parameter: 0, 1 (m) or 2 (m, v)
    pad0: u32,
    pad1: u32,
}

// Optim::scalars(k) of src/optim.rs (StepScalars there): one update's scalars.
struct StepScalars {
    lr: f32,
    step_size: f32,
    bc2_sqrt: f32,
    decay: f32,
}

fn apply_update(c: OptConsts, s: StepScalars, w0: f32, g0: f32, m: ptr<function, f32>,
                v: ptr<function, f32>, decays: bool) -> f32 {
    let decay = decays && c.weight_decay != 0.0;
    if (c.kind == 0u) {
        var g = g0;
        if (decay) {
            g += c.weight_decay * w0;
        }
        if (c.buffers != 0u) {
            *m = c.momentum * *m + g;
            if (c.nesterov != 0u) {
                g = g + c.momentum * *m;
            } else {
                g = *m;
            }
        }
        return w0 - s.lr * g;
    }
    var w = w0;
    var g = g0;
    if (decay) {
        if (c.kind == 2u) {
            w *= s.decay;
        } else {
            g += c.weight_decay * w;
        }
    }
    *m = c.beta1 * *m + c.one_minus_beta1 * g;
    *v = c.beta2 * *v + c.one_minus_beta2 * (g * g);
    let denom = sqrt(*v) / s.bc2_sqrt + c.eps;
    return w - s.step_size * (*m / denom);
}

fn step_param(p: u32, s: StepScalars, w: f32, g: f32) -> f32 {
    var m = 0.0;
    var v = 0.0;
    if (opt.buffers > 0u) {
        m = m_buf[p];
    }
    if (opt.buffers > 1u) {
        v = v_buf[p];
    }
    let decays = (pflags[p] & PARAM_DECAYS) != 0u;
    var next = apply_update(opt, s, w, g, &m, &v, decays);
    if ((pflags[p] & PARAM_PRUNED) != 0u) {
        next = 0.0;
        m = 0.0;
        v = 0.0;
    }
    if (opt.buffers > 0u) {
        m_buf[p] = m;
    }
    if (opt.buffers > 1u) {
        v_buf[p] = v;
    }
    return next;
}

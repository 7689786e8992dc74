//! The plain reference: what one iteration computes, in obvious f32 loops (slow, allocating).
//!
//! The fast CPU path and the GPU kernels are held to it. Shapes are row-major; `n` is the
//! row count, `f` the feature count, and each layer's W is [outputs, inputs] and b is
//! [outputs] in the flat parameter vector (see `ModelSpec::layout`).

use crate::backend::cpu::apply_update;
use crate::metrics::Counts;
use crate::model::{Activation, LayerLayout};

/// softplus(z) − y·z, the binary cross-entropy of a logit, stable for any finite z.
/// Written as the WGSL kernel writes it so both round alike.
pub fn bce_from_logit(z: f32, y: f32) -> f32 {
    z.max(0.0) + (1.0 + (-z.abs()).exp()).ln() - y * z
}

pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// The hidden activation; tanh's input is clamped to ±15 as in the kernels (tanh(15) is
/// 1 in f32) so that no implementation's overflow leaks in.
pub fn activate(a: Activation, z: f32) -> f32 {
    match a {
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.clamp(-15.0, 15.0).tanh(),
        Activation::Sigmoid => sigmoid(z),
    }
}

/// dA/dZ expressed through the activation's output A.
pub fn activate_grad(act: Activation, a: f32) -> f32 {
    match act {
        Activation::Relu => {
            if a > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Tanh => 1.0 - a * a,
        Activation::Sigmoid => a * (1.0 - a),
    }
}

/// Adds one row's prediction (positive iff z ≥ 0) against its label to the confusion counts.
pub fn count(c: &mut Counts, z: f32, y: f32) {
    c.record(usize::from(y == 1.0), usize::from(z >= 0.0));
}

/// The forward pass over the `n` rows of `x` ([n, f]): outs[l] is [n, outputs_l], the
/// activation output of layer l (the logits, untransformed, for the last layer).
pub fn forward(
    x: &[f32],
    n: usize,
    params: &[f32],
    layout: &[LayerLayout],
    act: Activation,
) -> Vec<Vec<f32>> {
    let last = layout.len() - 1;
    let mut outs: Vec<Vec<f32>> = Vec::new();
    // Z[r, o] = b[o] + Σ_i In[r, i]·W[o, i]; Out = act(Z), the identity for the last layer.
    for (l, lay) in layout.iter().enumerate() {
        let input: &[f32] = if l == 0 { x } else { &outs[l - 1] }; // [n, inputs]
        let w = &params[lay.w_off..lay.b_off]; // [outputs, inputs]
        let b = &params[lay.b_off..lay.b_off + lay.outputs]; // [outputs]
        let mut out = vec![0.0; n * lay.outputs]; // [n, outputs]
        for r in 0..n {
            let row = &input[r * lay.inputs..(r + 1) * lay.inputs];
            for o in 0..lay.outputs {
                let wo = &w[o * lay.inputs..(o + 1) * lay.inputs];
                let mut z = b[o];
                for (a, wv) in row.iter().zip(wo) {
                    z += a * wv;
                }
                out[r * lay.outputs + o] = if l == last { z } else { activate(act, z) };
            }
        }
        outs.push(out);
    }
    outs
}

/// The output layer's logits of the rows of `x` ([n, f]): [n, outputs] (outputs = 1 today).
pub fn logits(
    x: &[f32],
    n: usize,
    params: &[f32],
    layout: &[LayerLayout],
    act: Activation,
) -> Vec<f32> {
    forward(x, n, params, layout, act).pop().unwrap_or_default()
}

/// The BCE sum and confusion counts of logits z ([n]) against labels y ([n]).
pub fn loss_and_counts(z: &[f32], y: &[f32]) -> Counts {
    let mut c = Counts::default();
    for (&z, &y) in z.iter().zip(y) {
        c.loss_sum += bce_from_logit(z, y) as f64;
        count(&mut c, z, y);
    }
    c
}

/// ∇ of the mean BCE over the rows, laid out as `params`, by backpropagation from the
/// forward pass `outs` (of [`forward`]) of `x` ([n, f]) with labels y ([n]).
pub fn gradient(
    x: &[f32],
    y: &[f32],
    params: &[f32],
    layout: &[LayerLayout],
    act: Activation,
    outs: &[Vec<f32>],
) -> Vec<f32> {
    let n = y.len();
    let last = layout.len() - 1;
    // D = ∂L/∂z = (σ(z) − y)/n of the logits: [n, 1].
    let inv_n = 1.0 / n as f32;
    let mut d: Vec<f32> = outs[last]
        .iter()
        .zip(y)
        .map(|(&z, &y)| (sigmoid(z) - y) * inv_n)
        .collect();
    // Backward, last layer first.
    let mut grad = vec![0.0; params.len()];
    for l in (0..layout.len()).rev() {
        let lay = layout[l];
        let input: &[f32] = if l == 0 { x } else { &outs[l - 1] }; // [n, inputs]
        // ∇W[o, i] = Σ_r D[r, o]·In[r, i]; ∇b[o] = Σ_r D[r, o].
        let (gw, gb) = grad[lay.w_off..lay.b_off + lay.outputs].split_at_mut(lay.b_off - lay.w_off);
        for r in 0..n {
            let row = &input[r * lay.inputs..(r + 1) * lay.inputs];
            for o in 0..lay.outputs {
                let dv = d[r * lay.outputs + o];
                gb[o] += dv;
                for (g, a) in gw[o * lay.inputs..(o + 1) * lay.inputs].iter_mut().zip(row) {
                    *g += dv * a;
                }
            }
        }
        // Back through the layer: D_prev[r, i] = (Σ_o D[r, o]·W[o, i])·act'(Out_prev[r, i]).
        if l > 0 {
            let w = &params[lay.w_off..lay.b_off]; // [outputs, inputs]
            let prev_out = &outs[l - 1]; // [n, inputs]
            let mut dprev = vec![0.0; n * lay.inputs]; // [n, inputs]
            for r in 0..n {
                for i in 0..lay.inputs {
                    let mut s = 0.0f32;
                    for o in 0..lay.outputs {
                        s += d[r * lay.outputs + o] * w[o * lay.inputs + i];
                    }
                    let a = prev_out[r * lay.inputs + i];
                    dprev[r * lay.inputs + i] = s * activate_grad(act, a);
                }
            }
            d = dprev;
        }
    }
    grad
}

/// One iteration's evaluation of `n` rows of `x` ([n, f]) with labels `y` ([n]): the
/// counts, ∇ of the mean BCE laid out as `params`, and the logits ([n]).
pub fn evaluate(
    x: &[f32],
    y: &[f32],
    params: &[f32],
    layout: &[LayerLayout],
    act: Activation,
) -> (Counts, Vec<f32>, Vec<f32>) {
    let n = y.len();
    let outs = forward(x, n, params, layout, act);
    let logits = outs[layout.len() - 1].clone();
    let c = loss_and_counts(&logits, y);
    let grad = gradient(x, y, params, layout, act, &outs);
    (c, grad, logits)
}

/// The update W ← W − lr·∇L, through the CPU's one update site.
pub fn update(params: &mut [f32], grad: &[f32], lr: f32) {
    apply_update(params, grad, lr);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSpec;

    /// The gradient against central differences of the mean loss, for each activation.
    #[test]
    fn gradient_matches_finite_differences() {
        let (n, f) = (5, 3);
        let x: Vec<f32> = (0..n * f).map(|i| (i as f32 * 0.7).sin()).collect(); // [n, f]
        let y: Vec<f32> = (0..n).map(|r| (r % 2) as f32).collect(); // [n]
        for act in [Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
            let spec = ModelSpec::new(f, &[4], act).unwrap();
            let layout = spec.layout();
            let params = spec.init_params(1);
            let (_, grad, _) = evaluate(&x, &y, &params, &layout, act);
            let mean_loss = |p: &[f32]| {
                loss_and_counts(&logits(&x, n, p, &layout, act), &y).loss_sum / n as f64
            };
            let eps = 1e-2f32;
            for k in 0..params.len() {
                let (mut up, mut down) = (params.clone(), params.clone());
                up[k] += eps;
                down[k] -= eps;
                let fd = (mean_loss(&up) - mean_loss(&down)) / (2.0 * eps as f64);
                assert!(
                    (fd - grad[k] as f64).abs() <= 2e-3,
                    "{act:?} param {k}: finite difference {fd}, gradient {}",
                    grad[k]
                );
            }
        }
    }

    #[test]
    fn update_steps_against_the_gradient() {
        let mut p = vec![1.0, -2.0, 0.5];
        update(&mut p, &[0.5, -1.0, 0.0], 0.1);
        assert_eq!(p, vec![1.0 - 0.1 * 0.5, -2.0 + 0.1, 0.5]);
    }
}

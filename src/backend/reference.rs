//! The plain reference: what one iteration computes, in obvious f32 loops (slow, allocating).
//!
//! The fast CPU path and the GPU kernels are held to it. Shapes are row-major; `n` is the
//! row count, `f` the feature count, and each layer's W is [outputs, inputs] and b is
//! [outputs] in the flat parameter vector (see `ModelSpec::layout`). The output layer's
//! width K decides the head: one logit is a sigmoid (binary cross-entropy, class 1 iff
//! z ≥ 0), K ≥ 2 logits a softmax (cross-entropy logsumexp(z) − z_y, class argmax z with a
//! tie going to the lowest class). Labels y are class indices as f32.

use crate::metrics::Counts;
use crate::model::{Activation, LayerLayout};
use crate::optim::{self, OptState, Optim};

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

/// logsumexp(z) − z_y, the cross-entropy of a row's K logits z ([K]) for class y, stable
/// for any finite z: m + ln Σ_j exp(z_j − m) − z_y with m = max z.
pub fn softmax_ce(z: &[f32], y: usize) -> f32 {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f32 = z.iter().map(|&v| (v - m).exp()).sum();
    m + s.ln() - z[y]
}

/// The softmax of a row's logits z ([K]): exp(z_j − m) / Σ exp(z − m), m = max z.
pub fn softmax(z: &[f32]) -> Vec<f32> {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = z.iter().map(|&v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|&v| v / s).collect()
}

/// The class a row's logits predict: 1 iff z ≥ 0 for one logit, else the argmax (the
/// lowest class among equals).
pub fn predicted(z: &[f32]) -> usize {
    if z.len() == 1 {
        return usize::from(z[0] >= 0.0);
    }
    let mut best = 0;
    for (j, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = j;
        }
    }
    best
}

/// Adds one row's prediction from its logits z ([outputs]) against its class y.
pub fn count(c: &mut Counts, z: &[f32], y: f32) {
    c.record(y as usize, predicted(z));
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

/// The output layer's logits of the rows of `x` ([n, f]): [n, outputs].
pub fn logits(
    x: &[f32],
    n: usize,
    params: &[f32],
    layout: &[LayerLayout],
    act: Activation,
) -> Vec<f32> {
    forward(x, n, params, layout, act).pop().unwrap_or_default()
}

/// The loss sum (each row's loss in f32, summed in f64) and the K × K confusion counts of
/// logits z ([n, outputs]) against labels y ([n]); K = 2 for one output.
pub fn loss_and_counts(z: &[f32], y: &[f32], outputs: usize) -> Counts {
    let k = outputs.max(2);
    let mut c = Counts::new(k);
    for (z, &y) in z.chunks(outputs).zip(y) {
        c.loss_sum += if outputs == 1 {
            bce_from_logit(z[0], y)
        } else {
            softmax_ce(z, y as usize)
        } as f64;
        count(&mut c, z, y);
    }
    c
}

/// ∂L/∂z of the mean loss for the logits z ([n, outputs]) of labels y ([n]):
/// (σ(z) − y)/n for one output, (softmax(z)_j − [j = y])/n for K.
pub fn output_delta(z: &[f32], y: &[f32], outputs: usize) -> Vec<f32> {
    let inv_n = 1.0 / y.len() as f32;
    let mut d = Vec::with_capacity(z.len());
    for (z, &y) in z.chunks(outputs).zip(y) {
        if outputs == 1 {
            d.push((sigmoid(z[0]) - y) * inv_n);
        } else {
            for (j, p) in softmax(z).into_iter().enumerate() {
                let t = if j == y as usize { 1.0 } else { 0.0 };
                d.push((p - t) * inv_n);
            }
        }
    }
    d
}

/// ∇ of the mean loss over the rows, laid out as `params`, by backpropagation from the
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
    // D = ∂L/∂z of the logits: [n, outputs].
    let mut d = output_delta(&outs[last], y, layout[last].outputs);
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
/// counts, ∇ of the mean loss laid out as `params`, and the logits ([n, outputs]).
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
    let c = loss_and_counts(&logits, y, layout[layout.len() - 1].outputs);
    let grad = gradient(x, y, params, layout, act, &outs);
    (c, grad, logits)
}

/// The update W ← W − lr·∇L, through the CPU's one update site (plain SGD decays nothing,
/// so it needs no layout).
pub fn update(params: &mut [f32], grad: &[f32], lr: f32) {
    let mut none = OptState::default();
    optim::apply(&Optim::sgd(lr), &[], params, grad, &mut none, 0, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Head, ModelSpec};

    /// The gradient against central differences of the mean loss, for each activation, with
    /// a sigmoid head and with softmax heads of 2 and 3 classes.
    #[test]
    fn gradient_matches_finite_differences() {
        let (n, f) = (5, 3);
        let x: Vec<f32> = (0..n * f).map(|i| (i as f32 * 0.7).sin()).collect(); // [n, f]
        let heads = [(Head::Sigmoid, 2), (Head::Softmax, 2), (Head::Softmax, 3)];
        for (act, (head, k)) in [Activation::Relu, Activation::Tanh, Activation::Sigmoid]
            .into_iter()
            .flat_map(|a| heads.map(|h| (a, h)))
        {
            let y: Vec<f32> = (0..n).map(|r| (r % k) as f32).collect(); // [n]
            let spec = ModelSpec::with_head(f, &[4], act, head, k).unwrap();
            let layout = spec.layout();
            let params = spec.init_params(1);
            let (_, grad, _) = evaluate(&x, &y, &params, &layout, act);
            let outputs = spec.outputs();
            let mean_loss = |p: &[f32]| {
                loss_and_counts(&logits(&x, n, p, &layout, act), &y, outputs).loss_sum / n as f64
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
    fn softmax_loss_is_stable_and_ties_go_to_the_lowest_class() {
        assert_eq!(softmax_ce(&[1000.0, 0.0], 0), 0.0);
        assert_eq!(softmax_ce(&[0.0, 1000.0], 0), 1000.0);
        assert!((softmax_ce(&[0.0, 0.0, 0.0], 2) - 3f32.ln()).abs() < 1e-7);
        assert_eq!(predicted(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(predicted(&[-1.0]), 0);
        assert_eq!(predicted(&[0.0]), 1);
        let c = loss_and_counts(&[0.0, 2.0, 2.0, 1.0, 5.0, 0.0], &[2.0, 0.0], 3);
        assert_eq!(
            c.matrix(),
            vec![vec![0, 1, 0], vec![0, 0, 0], vec![0, 1, 0]]
        );
    }

    #[test]
    fn update_steps_against_the_gradient() {
        let mut p = vec![1.0, -2.0, 0.5];
        update(&mut p, &[0.5, -1.0, 0.0], 0.1);
        assert_eq!(p, vec![1.0 - 0.1 * 0.5, -2.0 + 0.1, 0.5]);
    }
}

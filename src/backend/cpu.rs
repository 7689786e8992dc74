//! The CPU reference: plain f32 loops with shape comments. It defines what the GPU kernels
//! must compute; tests hold the GPU to it.

use crate::backend::{AdapterDesc, Session, SessionConfig};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::metrics::Counts;
use crate::model::{Activation, LayerLayout, ModelSpec};

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

pub struct CpuSession {
    /// [n, f]
    x: Vec<f32>,
    /// [n]
    y: Vec<f32>,
    n: usize,
    act: Activation,
    layout: Vec<LayerLayout>,
    lr: f32,
    params: Vec<f32>,
    prev: Vec<f32>,
    /// ∇L, same layout as params.
    grad: Vec<f32>,
    /// outs[l]: [n, outputs_l], the activation output of layer l (the logits for the last).
    outs: Vec<Vec<f32>>,
    /// deltas[l]: [n, outputs_l], ∂L/∂Z of layer l.
    deltas: Vec<Vec<f32>>,
    evaluated: bool,
}

impl CpuSession {
    pub fn new(data: &Dataset, spec: &ModelSpec, cfg: &SessionConfig) -> Result<Self> {
        if spec.parameter_count() != cfg.params.len() || spec.layers[0] != data.features {
            return Err(Error::Config(
                "the initial parameters do not match the model and data".into(),
            ));
        }
        let layout = spec.layout();
        let n = data.rows;
        Ok(CpuSession {
            x: data.x.clone(),
            y: data.y.clone(),
            n,
            act: spec.activation,
            lr: cfg.lr,
            params: cfg.params.clone(),
            prev: cfg.params.clone(),
            grad: vec![0.0; cfg.params.len()],
            outs: layout.iter().map(|l| vec![0.0; n * l.outputs]).collect(),
            deltas: layout.iter().map(|l| vec![0.0; n * l.outputs]).collect(),
            layout,
            evaluated: false,
        })
    }
}

impl Session for CpuSession {
    fn evaluate(&mut self) -> Result<Counts> {
        let n = self.n;
        let last = self.layout.len() - 1;
        // Forward: Z[r, o] = b[o] + Σ_i In[r, i]·W[o, i]; Out = act(Z), identity for the logit.
        for (l, lay) in self.layout.iter().enumerate() {
            let (done, rest) = self.outs.split_at_mut(l);
            let input: &[f32] = if l == 0 { &self.x } else { &done[l - 1] };
            let out = &mut rest[0];
            let w = &self.params[lay.w_off..lay.b_off]; // [outputs, inputs]
            let b = &self.params[lay.b_off..lay.b_off + lay.outputs]; // [outputs]
            for r in 0..n {
                let row = &input[r * lay.inputs..(r + 1) * lay.inputs];
                for o in 0..lay.outputs {
                    let wo = &w[o * lay.inputs..(o + 1) * lay.inputs];
                    let mut z = b[o];
                    for (a, wv) in row.iter().zip(wo) {
                        z += a * wv;
                    }
                    out[r * lay.outputs + o] = if l == last { z } else { activate(self.act, z) };
                }
            }
        }
        // Loss, confusion counts and ∂L/∂z = (σ(z) − y)/n for the logits: [n, 1].
        let inv_n = 1.0 / n as f32;
        let mut c = Counts::default();
        let logits = &self.outs[last];
        let dz = &mut self.deltas[last];
        for r in 0..n {
            let (z, y) = (logits[r], self.y[r]);
            c.loss_sum += bce_from_logit(z, y) as f64;
            dz[r] = (sigmoid(z) - y) * inv_n;
            match (z >= 0.0, y == 1.0) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        self.evaluated = true;
        Ok(c)
    }

    fn update(&mut self) -> Result<()> {
        if !self.evaluated {
            return Err(Error::Config("update() needs an evaluate() first".into()));
        }
        let n = self.n;
        for l in (0..self.layout.len()).rev() {
            let lay = self.layout[l];
            let input: &[f32] = if l == 0 { &self.x } else { &self.outs[l - 1] };
            let (before, here) = self.deltas.split_at_mut(l);
            let d = &here[0]; // [n, outputs]
            // ∇W[o, i] = Σ_r D[r, o]·In[r, i]; ∇b[o] = Σ_r D[r, o].
            let (gw, gb) =
                self.grad[lay.w_off..lay.b_off + lay.outputs].split_at_mut(lay.b_off - lay.w_off);
            gw.fill(0.0);
            gb.fill(0.0);
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
                let w = &self.params[lay.w_off..lay.b_off];
                let prev_out = &self.outs[l - 1];
                let dprev = &mut before[l - 1]; // [n, inputs]
                for r in 0..n {
                    for i in 0..lay.inputs {
                        let mut s = 0.0f32;
                        for o in 0..lay.outputs {
                            s += d[r * lay.outputs + o] * w[o * lay.inputs + i];
                        }
                        let a = prev_out[r * lay.inputs + i];
                        dprev[r * lay.inputs + i] = s * activate_grad(self.act, a);
                    }
                }
            }
        }
        self.prev.copy_from_slice(&self.params);
        for (p, g) in self.params.iter_mut().zip(&self.grad) {
            *p -= self.lr * g;
        }
        self.evaluated = false;
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn previous_params(&mut self) -> Result<Vec<f32>> {
        Ok(self.prev.clone())
    }

    fn adapter(&self) -> Option<AdapterDesc> {
        None
    }
}

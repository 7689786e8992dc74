//! The CPU reference: plain f32 loops with shape comments. It defines what the GPU kernels
//! must compute; tests hold the GPU to it.

use crate::backend::{AdapterDesc, Evaluation, Session, SessionConfig, check_shapes};
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

/// One set of rows and its forward-pass scratch.
struct Rows {
    /// [n, f]
    x: Vec<f32>,
    /// [n]
    y: Vec<f32>,
    n: usize,
    /// outs[l]: [n, outputs_l], the activation output of layer l (the logits for the last).
    outs: Vec<Vec<f32>>,
}

impl Rows {
    fn new(data: &Dataset, layout: &[LayerLayout]) -> Self {
        Rows {
            x: data.x.clone(),
            y: data.y.clone(),
            n: data.rows,
            outs: layout
                .iter()
                .map(|l| vec![0.0; data.rows * l.outputs])
                .collect(),
        }
    }

    /// Forward: Z[r, o] = b[o] + Σ_i In[r, i]·W[o, i]; Out = act(Z), identity for the logit.
    /// Then the loss and confusion counts, and ∂L/∂z = (σ(z) − y)/n into `dz` ([n]) if given.
    fn evaluate(
        &mut self,
        params: &[f32],
        layout: &[LayerLayout],
        act: Activation,
        dz: Option<&mut [f32]>,
    ) -> Counts {
        let n = self.n;
        let last = layout.len() - 1;
        for (l, lay) in layout.iter().enumerate() {
            let (done, rest) = self.outs.split_at_mut(l);
            let input: &[f32] = if l == 0 { &self.x } else { &done[l - 1] };
            let out = &mut rest[0];
            let w = &params[lay.w_off..lay.b_off]; // [outputs, inputs]
            let b = &params[lay.b_off..lay.b_off + lay.outputs]; // [outputs]
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
        }
        let inv_n = 1.0 / n as f32;
        let mut c = Counts::default();
        let logits = &self.outs[last];
        let mut dz = dz;
        for r in 0..n {
            let (z, y) = (logits[r], self.y[r]);
            c.loss_sum += bce_from_logit(z, y) as f64;
            if let Some(d) = dz.as_deref_mut() {
                d[r] = (sigmoid(z) - y) * inv_n;
            }
            match (z >= 0.0, y == 1.0) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }
}

pub struct CpuSession {
    train: Rows,
    val: Option<Rows>,
    act: Activation,
    layout: Vec<LayerLayout>,
    lr: f32,
    params: Vec<f32>,
    prev: Vec<f32>,
    best: Vec<f32>,
    /// ∇L, same layout as params.
    grad: Vec<f32>,
    /// deltas[l]: [n, outputs_l], ∂L/∂Z of layer l on the training rows.
    deltas: Vec<Vec<f32>>,
    evaluated: bool,
}

impl CpuSession {
    pub fn new(
        data: &Dataset,
        val: Option<&Dataset>,
        spec: &ModelSpec,
        cfg: &SessionConfig,
    ) -> Result<Self> {
        check_shapes(data, val, spec, cfg)?;
        let layout = spec.layout();
        Ok(CpuSession {
            train: Rows::new(data, &layout),
            val: val.map(|v| Rows::new(v, &layout)),
            act: spec.activation,
            lr: cfg.lr,
            params: cfg.params.clone(),
            prev: cfg.params.clone(),
            best: cfg.params.clone(),
            grad: vec![0.0; cfg.params.len()],
            deltas: layout
                .iter()
                .map(|l| vec![0.0; data.rows * l.outputs])
                .collect(),
            layout,
            evaluated: false,
        })
    }
}

impl Session for CpuSession {
    fn evaluate(&mut self) -> Result<Evaluation> {
        let last = self.layout.len() - 1;
        let train = self.train.evaluate(
            &self.params,
            &self.layout,
            self.act,
            Some(&mut self.deltas[last]),
        );
        let val = self
            .val
            .as_mut()
            .map(|v| v.evaluate(&self.params, &self.layout, self.act, None));
        self.evaluated = true;
        Ok(Evaluation { train, val })
    }

    fn update(&mut self) -> Result<()> {
        if !self.evaluated {
            return Err(Error::Config("update() needs an evaluate() first".into()));
        }
        let n = self.train.n;
        for l in (0..self.layout.len()).rev() {
            let lay = self.layout[l];
            let input: &[f32] = if l == 0 {
                &self.train.x
            } else {
                &self.train.outs[l - 1]
            };
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
                let prev_out = &self.train.outs[l - 1];
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

    fn save_best(&mut self) -> Result<()> {
        self.best.copy_from_slice(&self.params);
        Ok(())
    }

    fn best_params(&mut self) -> Result<Vec<f32>> {
        Ok(self.best.clone())
    }

    fn adapter(&self) -> Option<AdapterDesc> {
        None
    }
}

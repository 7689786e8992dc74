//! A model file's optimizer state, which `--save` writes and `--init-weights` resumes from
//! (predict and eval ignore it): the metadata `wgtrain.optimizer` (the optimizer, its
//! hyperparameters and its step count) and, per dense layer and state buffer, the tensors
//! `optimizer.layers.{i}.weight.{buffer}` and `optimizer.layers.{i}.bias.{buffer}`, shaped
//! like the parameter they belong to (PyTorch's names: `momentum_buffer`, `exp_avg`,
//! `exp_avg_sq`).

use serde::{Deserialize, Serialize};

use crate::model::LayerLayout;
use crate::optim::{MAX_STEP, OptState, Optimizer, OptimizerKind};

pub const OPTIMIZER: &str = "wgtrain.optimizer";

/// The optimizer and its state beside a model's weights.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedOptimizer {
    pub optimizer: Optimizer,
    pub state: OptState,
}

/// `wgtrain.optimizer` as JSON.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Meta {
    optimizer: String,
    /// Updates applied so far.
    step: u64,
    momentum: f64,
    nesterov: bool,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl Meta {
    pub(super) fn of(s: &SavedOptimizer) -> Meta {
        let o = &s.optimizer;
        Meta {
            optimizer: o.kind.name().into(),
            step: s.state.step,
            momentum: o.momentum,
            nesterov: o.nesterov,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weight_decay: o.weight_decay,
        }
    }

    /// The optimizer and step count, or why they are not ones wgtrain writes.
    pub(super) fn checked(&self) -> std::result::Result<(Optimizer, u64), String> {
        let kind = OptimizerKind::from_name(&self.optimizer)
            .ok_or_else(|| format!("unknown optimizer \"{}\"", self.optimizer))?;
        let finite = [
            self.momentum,
            self.beta1,
            self.beta2,
            self.eps,
            self.weight_decay,
        ]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0);
        if !finite || self.beta1 >= 1.0 || self.beta2 >= 1.0 {
            return Err(
                "a hyperparameter is negative, not finite, or a beta is not below 1".into(),
            );
        }
        if self.step > MAX_STEP {
            return Err(format!(
                "step {} is more updates than an optimizer counts (at most 2^53)",
                self.step
            ));
        }
        Ok((
            Optimizer {
                kind,
                momentum: self.momentum,
                nesterov: self.nesterov,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
            },
            self.step,
        ))
    }
}

/// The saved state of `optimizer` at `step` from its buffers' floats (`floats`, p each);
/// Adam's second moments must not be negative (their square roots are taken).
pub(super) fn saved(
    name: &str,
    optimizer: Optimizer,
    step: u64,
    floats: &[f32],
    layout: &[LayerLayout],
) -> crate::error::Result<SavedOptimizer> {
    let p: usize = layout.iter().map(|l| l.b_off + l.outputs - l.w_off).sum();
    let buffers: Vec<Vec<f32>> = floats.chunks(p.max(1)).map(<[f32]>::to_vec).collect();
    if let Some(v) = buffers.get(1) {
        if let Some(i) = v.iter().position(|&x| x < 0.0) {
            // The tensor and element of parameter i.
            let (layer, l) = layout
                .iter()
                .enumerate()
                .find(|(_, l)| i < l.b_off + l.outputs)
                .expect("i is a parameter");
            let (part, k) = if i < l.b_off {
                ("weight", i - l.w_off)
            } else {
                ("bias", i - l.b_off)
            };
            return Err(crate::error::Error::data(
                name,
                format!(
                    "tensor \"optimizer.layers.{layer}.{part}.exp_avg_sq\" holds a negative \
                     second moment ({}) at element {k}",
                    v[i]
                ),
            ));
        }
    }
    Ok(SavedOptimizer {
        optimizer,
        state: OptState { step, buffers },
    })
}

/// The state tensors of `opt` over `layout` (p parameters): (name, shape, offset), the offset
/// counted in the parameters followed by each buffer in turn (buffer b starts at p·(1 + b)).
pub(super) fn tensors(
    layout: &[LayerLayout],
    p: usize,
    opt: &Optimizer,
) -> Vec<(String, Vec<usize>, usize)> {
    let mut out = Vec::new();
    for (b, buffer) in opt.buffer_names().iter().enumerate() {
        let base = p * (1 + b);
        for (i, l) in layout.iter().enumerate() {
            out.push((
                format!("optimizer.layers.{i}.weight.{buffer}"),
                vec![l.outputs, l.inputs],
                base + l.w_off,
            ));
            out.push((
                format!("optimizer.layers.{i}.bias.{buffer}"),
                vec![l.outputs],
                base + l.b_off,
            ));
        }
    }
    out
}

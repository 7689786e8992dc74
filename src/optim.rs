//! The optimizers and learning-rate schedules, defined once for both backends (PyTorch's
//! formulas, docs/optimizers.md): the hyperparameters, the scalars of each update (computed
//! on the host in f64, rounded once to f32, and handed to either backend) and the
//! elementwise step the CPU applies and `shaders/update.wgsl` mirrors.

use bytemuck::{Pod, Zeroable};
use serde::Serialize;

use crate::model::LayerLayout;

/// Which optimizer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// torch.optim.SGD (dampening 0): plain, with momentum, or Nesterov.
    #[default]
    Sgd,
    /// torch.optim.Adam: weight decay added to the gradient.
    Adam,
    /// torch.optim.AdamW: weight decay decoupled (w ← w·(1 − lr·λ) first).
    Adamw,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adamw => "adamw",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        [Self::Sgd, Self::Adam, Self::Adamw]
            .into_iter()
            .find(|k| k.name() == s)
    }
}

/// An optimizer's hyperparameters (the rate and its schedule are apart, in [`Schedule`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    /// SGD's μ (0: no momentum buffer).
    pub momentum: f64,
    pub nesterov: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// λ, applied to weights only, never to biases.
    pub weight_decay: f64,
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer {
            kind: OptimizerKind::Sgd,
            momentum: 0.0,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl Optimizer {
    /// State buffers per parameter: 0 (plain SGD), 1 (SGD's momentum buffer), 2 (Adam's first
    /// and second moments).
    pub fn buffers(&self) -> usize {
        match self.kind {
            OptimizerKind::Sgd if self.momentum == 0.0 => 0,
            OptimizerKind::Sgd => 1,
            OptimizerKind::Adam | OptimizerKind::Adamw => 2,
        }
    }

    /// The state tensors' names in a model file (`optimizer.` + name), PyTorch's.
    pub fn buffer_names(&self) -> &'static [&'static str] {
        match self.buffers() {
            0 => &[],
            1 => &["momentum_buffer"],
            _ => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// The f32 constants the elementwise step uses, as both backends see them.
    pub fn consts(&self) -> OptConsts {
        OptConsts {
            kind: match self.kind {
                OptimizerKind::Sgd => 0,
                OptimizerKind::Adam => 1,
                OptimizerKind::Adamw => 2,
            },
            nesterov: u32::from(self.nesterov),
            momentum: self.momentum as f32,
            weight_decay: self.weight_decay as f32,
            beta1: self.beta1 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            eps: self.eps as f32,
            buffers: self.buffers() as u32,
            _pad: [0; 2],
        }
    }
}

/// `--lr-schedule`: the schedule's kind, before its horizon is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleKind {
    #[default]
    Constant,
    Step,
    Cosine,
}

/// The learning rate's schedule, stepped once per update: update k (from 0, counted over
/// warm starts) uses [`Schedule::lr`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    #[default]
    Constant,
    /// StepLR: lr·γ^⌊k / step⌋.
    Step { step: u64, gamma: f64 },
    /// CosineAnnealingLR with η_min = 0: lr·(1 + cos(πk / T_max)) / 2.
    Cosine { t_max: u64 },
}

impl Schedule {
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Step { .. } => "step",
            Schedule::Cosine { .. } => "cosine",
        }
    }

    /// The rate of update k, in f64. The constant schedule gives `lr` exactly.
    pub fn lr(&self, lr: f32, k: u64) -> f64 {
        let lr = f64::from(lr);
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { step, gamma } => {
                let e = k / step.max(1);
                lr * gamma.powf(e as f64)
            }
            Schedule::Cosine { t_max } => {
                let t_max = t_max.max(1) as f64;
                lr * (1.0 + (std::f64::consts::PI * k as f64 / t_max).cos()) / 2.0
            }
        }
    }
}

/// The optimizer constants as WGSL's `OptConsts` lays them out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct OptConsts {
    /// 0 sgd, 1 adam, 2 adamw.
    pub kind: u32,
    pub nesterov: u32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    pub eps: f32,
    /// [`Optimizer::buffers`].
    pub buffers: u32,
    pub _pad: [u32; 2],
}

/// The scalars of one update, as WGSL's `StepScalars` lays them out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct StepScalars {
    /// The scheduled rate lr_k.
    pub lr: f32,
    /// Adam: lr_k / (1 − β₁ᵗ) with t = k + 1; otherwise lr_k.
    pub step_size: f32,
    /// Adam: √(1 − β₂ᵗ); otherwise 1.
    pub bc2_sqrt: f32,
    /// AdamW: 1 − lr_k·λ; otherwise 1.
    pub decay: f32,
}

/// Everything that defines the updates: the base rate, its schedule and the optimizer.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Optim {
    pub lr: f32,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
}

impl Optim {
    /// Plain gradient descent at a constant rate (the default).
    pub fn sgd(lr: f32) -> Self {
        Optim {
            lr,
            ..Default::default()
        }
    }

    /// The scalars of update k (0-based over the whole run, warm starts included).
    pub fn scalars(&self, k: u64) -> StepScalars {
        let lr = self.schedule.lr(self.lr, k);
        let o = &self.optimizer;
        let t = (k + 1) as f64;
        match o.kind {
            OptimizerKind::Sgd => StepScalars {
                lr: lr as f32,
                step_size: lr as f32,
                bc2_sqrt: 1.0,
                decay: 1.0,
            },
            OptimizerKind::Adam | OptimizerKind::Adamw => StepScalars {
                lr: lr as f32,
                step_size: (lr / (1.0 - o.beta1.powf(t))) as f32,
                bc2_sqrt: (1.0 - o.beta2.powf(t)).sqrt() as f32,
                decay: if o.kind == OptimizerKind::Adamw {
                    (1.0 - lr * o.weight_decay) as f32
                } else {
                    1.0
                },
            },
        }
    }
}

/// One parameter's step from weight `w` with gradient `g` and state `m`, `v` (unused ones
/// are ignored); `decays`: it is a weight, not a bias. The one definition of the step:
/// `shaders/update.wgsl` writes the same operations in the same order.
#[inline(always)]
pub fn step_one(
    c: &OptConsts,
    s: &StepScalars,
    w: f32,
    g: f32,
    m: &mut f32,
    v: &mut f32,
    decays: bool,
) -> f32 {
    let decay = decays && c.weight_decay != 0.0;
    match c.kind {
        0 => {
            let mut g = g;
            if decay {
                g += c.weight_decay * w;
            }
            if c.buffers != 0 {
                // b starts at 0, so b₁ = μ·0 + g₁ = g₁ exactly.
                *m = c.momentum * *m + g;
                g = if c.nesterov != 0 {
                    g + c.momentum * *m
                } else {
                    *m
                };
            }
            w - s.lr * g
        }
        kind => {
            let (mut w, mut g) = (w, g);
            if decay {
                if kind == 2 {
                    w *= s.decay;
                } else {
                    g += c.weight_decay * w;
                }
            }
            *m = c.beta1 * *m + c.one_minus_beta1 * g;
            *v = c.beta2 * *v + c.one_minus_beta2 * (g * g);
            let denom = v.sqrt() / s.bc2_sqrt + c.eps;
            w - s.step_size * (*m / denom)
        }
    }
}

/// The most updates an optimizer counts (2⁵³, exact in f64, where the bias corrections and
/// schedules are computed).
pub const MAX_STEP: u64 = 1 << 53;

/// An optimizer's state beside the weights: the updates applied so far and the buffers
/// ([`Optimizer::buffers`] of them, each laid out as the parameters). A session's
/// `optimizer_state` gives the step it started from; the caller adds the returned weights'
/// iteration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptState {
    pub step: u64,
    pub buffers: Vec<Vec<f32>>,
}

impl OptState {
    /// Zero buffers for `params` parameters.
    pub fn new(opt: &Optimizer, params: usize) -> Self {
        OptState {
            step: 0,
            buffers: vec![vec![0.0; params]; opt.buffers()],
        }
    }
}

/// The CPU's one parameter update (params, grad and the state's buffers laid out alike):
/// update number `k` of `optim`, weights decayed, biases not.
pub fn apply(
    optim: &Optim,
    layout: &[LayerLayout],
    params: &mut [f32],
    grad: &[f32],
    state: &mut OptState,
    k: u64,
    mask: Option<&[bool]>,
) {
    debug_assert_eq!(params.len(), grad.len());
    let c = optim.optimizer.consts();
    let s = optim.scalars(k);
    if c.buffers == 0 && c.weight_decay == 0.0 {
        // Plain gradient descent: W ← W − lr·∇L.
        for (p, g) in params.iter_mut().zip(grad) {
            *p -= s.lr * g;
        }
    } else {
        step_all(&c, &s, layout, params, grad, state);
    }
    if let Some(mask) = mask {
        // Pruned parameters stay exactly 0, and so does their state.
        for (i, _) in mask.iter().enumerate().filter(|(_, keep)| !**keep) {
            params[i] = 0.0;
            for b in &mut state.buffers {
                b[i] = 0.0;
            }
        }
    }
}

/// The optimizer's step on every parameter of `layout`.
fn step_all(
    c: &OptConsts,
    s: &StepScalars,
    layout: &[LayerLayout],
    params: &mut [f32],
    grad: &[f32],
    state: &mut OptState,
) {
    let (mut none_m, mut none_v) = (0.0f32, 0.0f32);
    let mut bufs = state.buffers.iter_mut();
    let mut m = bufs.next();
    let mut v = bufs.next();
    for l in layout {
        let end = l.b_off + l.outputs;
        for i in l.w_off..end {
            let mi = m.as_deref_mut().map_or(&mut none_m, |b| &mut b[i]);
            let vi = v.as_deref_mut().map_or(&mut none_v, |b| &mut b[i]);
            params[i] = step_one(c, s, params[i], grad[i], mi, vi, i < l.b_off);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_layer() -> Vec<LayerLayout> {
        // A 2 → 1 layer: weights 0, 1; bias 2.
        vec![LayerLayout {
            inputs: 2,
            outputs: 1,
            w_off: 0,
            b_off: 2,
        }]
    }

    /// `steps` updates with the given gradients, from `w`.
    fn run(optim: &Optim, w: &[f32], grads: &[[f32; 3]]) -> Vec<f32> {
        let layout = one_layer();
        let mut p = w.to_vec();
        let mut st = OptState::new(&optim.optimizer, 3);
        for (k, g) in grads.iter().enumerate() {
            apply(optim, &layout, &mut p, g, &mut st, k as u64, None);
        }
        p
    }

    fn close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (f64::from(*x) - y).abs() <= 1e-6 * y.abs().max(1.0),
                "{a:?} vs {b:?}"
            );
        }
    }

    const G: [[f32; 3]; 3] = [[0.5, -1.0, 2.0], [0.25, 0.5, -1.0], [-0.5, 1.0, 0.5]];

    #[test]
    fn plain_sgd_is_today_s_update_bit_for_bit() {
        let p = run(&Optim::sgd(0.1), &[1.0, 2.0, 3.0], &G[..1]);
        assert_eq!(
            p,
            vec![1.0 - 0.1f32 * 0.5, 2.0 + 0.1f32, 3.0 - 0.1f32 * 2.0]
        );
    }

    #[test]
    fn sgd_momentum_and_nesterov_by_hand() {
        let mut o = Optim::sgd(0.1);
        o.optimizer.momentum = 0.9;
        // b1 = g1, b2 = 0.9 b1 + g2; w -= lr b.
        let w0 = [1.0f64, 2.0, 3.0];
        let b1: Vec<f64> = G[0].iter().map(|&g| f64::from(g)).collect();
        let b2: Vec<f64> = (0..3).map(|i| 0.9 * b1[i] + f64::from(G[1][i])).collect();
        let want: Vec<f64> = (0..3).map(|i| w0[i] - 0.1 * b1[i] - 0.1 * b2[i]).collect();
        close(&run(&o, &[1.0, 2.0, 3.0], &G[..2]), &want);
        // Nesterov: g + μ b.
        o.optimizer.nesterov = true;
        let want: Vec<f64> = (0..3)
            .map(|i| {
                let n1 = f64::from(G[0][i]) + 0.9 * b1[i];
                let n2 = f64::from(G[1][i]) + 0.9 * b2[i];
                w0[i] - 0.1 * n1 - 0.1 * n2
            })
            .collect();
        close(&run(&o, &[1.0, 2.0, 3.0], &G[..2]), &want);
    }

    #[test]
    fn sgd_weight_decay_spares_the_bias() {
        let mut o = Optim::sgd(0.1);
        o.optimizer.weight_decay = 0.5;
        let p = run(&o, &[1.0, 2.0, 3.0], &G[..1]);
        close(
            &p,
            &[
                1.0 - 0.1 * (0.5 + 0.5),
                2.0 - 0.1 * (-1.0 + 1.0),
                3.0 - 0.1 * 2.0,
            ],
        );
    }

    /// Adam or AdamW by hand in f64, three steps.
    fn adam_by_hand(w: &[f64; 3], lr: f64, wd: f64, decoupled: bool) -> Vec<f64> {
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        let mut w = *w;
        let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
        for (k, g) in G.iter().enumerate() {
            let t = (k + 1) as f64;
            for i in 0..3 {
                let mut g = f64::from(g[i]);
                let weight = i < 2;
                if weight && decoupled {
                    w[i] *= 1.0 - lr * wd;
                } else if weight {
                    g += wd * w[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let mh = m[i] / (1.0 - b1.powf(t));
                let vh = v[i] / (1.0 - b2.powf(t));
                w[i] -= lr * mh / (vh.sqrt() + eps);
            }
        }
        w.to_vec()
    }

    #[test]
    fn adam_and_adamw_by_hand() {
        for (kind, wd) in [
            (OptimizerKind::Adam, 0.0),
            (OptimizerKind::Adam, 0.1),
            (OptimizerKind::Adamw, 0.1),
        ] {
            let o = Optim {
                lr: 0.01,
                optimizer: Optimizer {
                    kind,
                    weight_decay: wd,
                    ..Default::default()
                },
                schedule: Schedule::Constant,
            };
            let want = adam_by_hand(&[1.0, 2.0, 3.0], 0.01, wd, kind == OptimizerKind::Adamw);
            close(&run(&o, &[1.0, 2.0, 3.0], &G), &want);
        }
    }

    #[test]
    fn schedules_step_once_per_update() {
        let s = Schedule::Step {
            step: 2,
            gamma: 0.5,
        };
        let lrs: Vec<f64> = (0..5).map(|k| s.lr(1.0, k)).collect();
        assert_eq!(lrs, [1.0, 1.0, 0.5, 0.5, 0.25]);
        let c = Schedule::Cosine { t_max: 4 };
        let lrs: Vec<f64> = (0..5).map(|k| c.lr(1.0, k)).collect();
        let want = [
            1.0,
            0.853_553_390_593_273_8,
            0.5,
            0.146_446_609_406_726_24,
            0.0,
        ];
        for (a, b) in lrs.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{lrs:?}");
        }
        assert_eq!(Schedule::Constant.lr(0.1, 7), f64::from(0.1f32));
    }

    #[test]
    fn a_scheduled_rate_reaches_the_update() {
        let o = Optim {
            lr: 1.0,
            schedule: Schedule::Step {
                step: 1,
                gamma: 0.5,
            },
            ..Default::default()
        };
        // Updates at lr 1 and 0.5.
        let p = run(&o, &[0.0, 0.0, 0.0], &[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]);
        assert_eq!(p, vec![-1.5, -1.5, -1.5]);
    }
}

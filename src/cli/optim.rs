//! The optimizer, schedule and mini-batch flags of `train`, and their checks into
//! [`TrainingSettings`].

use anyhow::{Result, bail};
use clap::Args;

use super::non_negative;
use crate::job::TrainingSettings;
use crate::optim::{Optimizer, OptimizerKind, ScheduleKind};

#[derive(Args, Clone, Debug)]
pub struct OptimArgs {
    /// The optimizer: PyTorch's SGD, Adam or AdamW (docs/optimizers.md).
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    /// SGD's momentum μ ≥ 0 (dampening 0) [default: 0].
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Nesterov momentum (needs --momentum above 0).
    #[arg(long)]
    pub nesterov: bool,
    /// Adam's β₁, 0 ≤ β₁ < 1 [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub beta1: Option<f64>,
    /// Adam's β₂, 0 ≤ β₂ < 1 [default: 0.999].
    #[arg(long, allow_negative_numbers = true)]
    pub beta2: Option<f64>,
    /// Adam's ε > 0 [default: 1e-8].
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f64>,
    /// Weight decay λ ≥ 0 on the weights, never the biases: added to the gradient (sgd, adam)
    /// or decoupled (adamw) [default: 0].
    #[arg(long, value_name = "λ", allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// The learning rate's schedule, stepped once per update.
    #[arg(long, value_enum, default_value = "constant")]
    pub lr_schedule: ScheduleKind,
    /// --lr-schedule step: multiply the rate by --lr-gamma every N updates.
    #[arg(long, value_name = "N")]
    pub lr_step: Option<u64>,
    /// --lr-schedule step: the factor γ > 0 [default: 0.1].
    #[arg(long, value_name = "γ", allow_negative_numbers = true)]
    pub lr_gamma: Option<f64>,
    /// --lr-schedule cosine: T_max in updates, counted from the first update of the
    /// optimizer (warm starts included) [default: the run's last update].
    #[arg(long, value_name = "T")]
    pub lr_tmax: Option<u64>,
    /// Rows per update [default: all training rows, full batch].
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// A new permutation of the rows every epoch [default with --batch-size below the rows].
    #[arg(long, conflicts_with = "no_shuffle")]
    pub shuffle: bool,
    /// Batches in file order.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Most epochs (⌈rows / B⌉ updates each); shorthand for --max-iter.
    #[arg(long, value_name = "E", conflicts_with = "max_iter")]
    pub max_epochs: Option<u64>,
    /// Ignore an --init-weights file's optimizer state (start it at step 0, zero moments).
    #[arg(long)]
    pub reset_optimizer: bool,
}

impl OptimArgs {
    /// The checked settings; every error names the flag and echoes the value.
    pub fn settings(&self, eval_every_given: bool) -> Result<TrainingSettings> {
        let kind = self.optimizer;
        let name = kind.name();
        let d = Optimizer::default();
        non_negative("--momentum", self.momentum)?;
        non_negative("--weight-decay", self.weight_decay)?;
        if kind != OptimizerKind::Sgd {
            if let Some(m) = self.momentum {
                bail!(
                    "--momentum {m}: only with --optimizer sgd (--optimizer {name} keeps its own \
                     moments: --beta1, --beta2)"
                );
            }
            if self.nesterov {
                bail!("--nesterov: only with --optimizer sgd and --momentum above 0");
            }
        } else {
            for (flag, v) in [
                ("--beta1", self.beta1),
                ("--beta2", self.beta2),
                ("--eps", self.eps),
            ] {
                if let Some(v) = v {
                    bail!("{flag} {v}: only with --optimizer adam or adamw");
                }
            }
        }
        let momentum = self.momentum.unwrap_or(0.0);
        if self.nesterov && momentum == 0.0 {
            bail!(
                "--nesterov: needs --momentum above 0 (Nesterov momentum with μ = 0 is plain SGD)"
            );
        }
        for (flag, v) in [("--beta1", self.beta1), ("--beta2", self.beta2)] {
            if let Some(b) = v {
                if !(0.0..1.0).contains(&b) {
                    bail!("{flag} {b}: must be at least 0 and below 1");
                }
            }
        }
        if let Some(e) = self.eps {
            if !(e.is_finite() && e > 0.0) {
                bail!("--eps {e}: must be a finite number above 0");
            }
        }
        let step_only = |flag: &str, given: Option<String>, wanted: ScheduleKind| -> Result<()> {
            match given {
                Some(v) if self.lr_schedule != wanted => bail!(
                    "{flag} {v}: only with --lr-schedule {}",
                    if wanted == ScheduleKind::Step {
                        "step"
                    } else {
                        "cosine"
                    }
                ),
                _ => Ok(()),
            }
        };
        step_only(
            "--lr-step",
            self.lr_step.map(|v| v.to_string()),
            ScheduleKind::Step,
        )?;
        step_only(
            "--lr-gamma",
            self.lr_gamma.map(|v| v.to_string()),
            ScheduleKind::Step,
        )?;
        step_only(
            "--lr-tmax",
            self.lr_tmax.map(|v| v.to_string()),
            ScheduleKind::Cosine,
        )?;
        if self.lr_step == Some(0) {
            bail!("--lr-step 0: must be at least 1 update");
        }
        if self.lr_schedule == ScheduleKind::Step && self.lr_step.is_none() {
            bail!("--lr-schedule step: needs --lr-step N (updates between rate changes)");
        }
        if let Some(g) = self.lr_gamma {
            if !(g.is_finite() && g > 0.0) {
                bail!("--lr-gamma {g}: must be a finite number above 0");
            }
        }
        if self.lr_tmax == Some(0) {
            bail!("--lr-tmax 0: must be at least 1 update");
        }
        if self.batch_size == Some(0) {
            bail!("--batch-size 0: must be at least 1 row");
        }
        if self.batch_size.is_none() {
            if self.shuffle {
                bail!("--shuffle: only with --batch-size (a full batch has no order to shuffle)");
            }
            if self.no_shuffle {
                bail!(
                    "--no-shuffle: only with --batch-size (a full batch has no order to shuffle)"
                );
            }
        }
        Ok(TrainingSettings {
            optimizer: Optimizer {
                kind,
                momentum,
                nesterov: self.nesterov,
                beta1: self.beta1.unwrap_or(d.beta1),
                beta2: self.beta2.unwrap_or(d.beta2),
                eps: self.eps.unwrap_or(d.eps),
                weight_decay: self.weight_decay.unwrap_or(0.0),
            },
            schedule: self.lr_schedule,
            lr_step: self.lr_step.unwrap_or(1),
            lr_gamma: self.lr_gamma.unwrap_or(0.1),
            lr_tmax: self.lr_tmax,
            batch_size: self.batch_size,
            shuffle: !self.no_shuffle,
            max_epochs: self.max_epochs,
            eval_every_given,
            reset_optimizer: self.reset_optimizer,
        })
    }
}

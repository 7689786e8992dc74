//! `wgtrain prune`'s options: the dense model, the schedule, and the training flags its
//! fine-tuning takes (shared with `train`), checked into a typed [`PruneJob`].

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::{Threshold, TrainArgs};
use crate::prune::{Method, PruneJob};

#[derive(Args)]
pub struct PruneArgs {
    /// The dense model to prune (written by train --save).
    #[arg(long, value_name = "FILE.safetensors")]
    pub model: PathBuf,
    /// magnitude: weights by |w| across all layers (never biases); neurons: whole hidden units
    /// by the L2 norm of their incoming and outgoing weights.
    #[arg(long, value_enum, default_value = "magnitude")]
    pub method: Method,
    /// The fraction of what is still alive that each round removes, in (0, 1).
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.2,
        allow_negative_numbers = true
    )]
    pub step: f64,
    /// Stop pruning at this sparsity, in (0, 1) (the last step is shortened to land on it)
    /// [default: until a round cannot get back to the target].
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub target_sparsity: Option<f64>,
    /// The most updates one round's fine-tuning may take.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub round_max_iter: u64,
    /// The most rounds.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_rounds: u32,
    /// Without --threshold, the target is the dense model's monitored metric less this
    /// (plus this for the loss).
    #[arg(
        long,
        value_name = "D",
        default_value_t = 0.005,
        allow_negative_numbers = true
    )]
    pub tolerance: f64,
    #[command(flatten)]
    pub train: TrainArgs,
}

impl PruneArgs {
    pub fn job(&self) -> Result<PruneJob> {
        let t = &self.train;
        if let Some(p) = &t.init_weights {
            bail!(
                "--init-weights {}: prune starts from --model; give the dense model there",
                p.display()
            );
        }
        if t.max_iter != 1000 {
            bail!(
                "--max-iter {}: prune bounds each round's fine-tuning with --round-max-iter",
                t.max_iter
            );
        }
        if let Some(s) = t.early_bird {
            bail!(
                "--early-bird {s}: a stop rule for dense training (train --early-bird); prune's \
                 rounds stop at the target"
            );
        }
        if t.restore_best {
            bail!(
                "--restore-best: prune keeps the weights that met the target, which a best \
                 check of an earlier iteration may not"
            );
        }
        if let Some(e) = t.optim.max_epochs {
            bail!("--max-epochs {e}: prune bounds each round's fine-tuning with --round-max-iter");
        }
        if t.save.is_none() {
            bail!("prune needs --save FILE.safetensors: where the pruned model goes");
        }
        let threshold = match t.threshold {
            Some(Threshold::At(v)) => Some(v),
            Some(Threshold::Off) => bail!(
                "--threshold none: prune needs a target to keep (leave --threshold out for the \
                 dense model's value less --tolerance)"
            ),
            None => None,
        };
        let mut train = t.job()?;
        train.init_weights = Some(self.model.clone());
        train.init_flag = "--model";
        Ok(PruneJob {
            train,
            method: self.method,
            step: self.step,
            target_sparsity: self.target_sparsity,
            round_max_iter: self.round_max_iter,
            max_rounds: self.max_rounds,
            tolerance: self.tolerance,
            threshold,
        })
    }
}

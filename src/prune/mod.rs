//! `wgtrain prune`: iterative pruning by early termination. Each round removes a fraction of
//! what is left (weights by magnitude, or whole hidden units), then fine-tunes with the stop
//! rules only until the target is met again (often after no update at all); pruning ends at
//! the first round that cannot get back, and the result is the last round that met it.

use std::borrow::Cow;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::job::{self, Rows, Start, TrainJob};
use crate::masks;
use crate::metrics::Metric;
use crate::model::{self, ModelSpec};
use crate::modelfile::Model;
use crate::outputs;
use crate::stop::{StopReason, StopRule};
use crate::train::{CheckRecord, Monitor};

pub mod output;

/// What a round removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Global unstructured pruning of weights (never biases) by |w| across all layers.
    Magnitude,
    /// Whole hidden units, ranked by the L2 norm of their incoming and outgoing weights.
    Neurons,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Magnitude => "magnitude",
            Method::Neurons => "neurons",
        }
    }
}

/// A pruning job: the fine-tuning's training job (its `init_weights` is the dense model, its
/// rule's threshold the target if given) and the schedule.
#[derive(Clone, Debug)]
pub struct PruneJob {
    pub train: TrainJob,
    pub method: Method,
    /// The fraction of what is still alive that each round removes, in (0, 1).
    pub step: f64,
    /// Pruning ends once this sparsity is reached (the last step shortened to land on it).
    pub target_sparsity: Option<f64>,
    /// The most updates a round's fine-tuning may take.
    pub round_max_iter: u64,
    pub max_rounds: u32,
    /// The default target: the dense model's monitored metric less this (more for the loss).
    pub tolerance: f64,
    /// The target given with `--threshold`; `None`: from the dense model and the tolerance.
    pub threshold: Option<f64>,
}

/// One round: what it removed and what fine-tuning made of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoundReport {
    pub round: u32,
    /// The fraction of weights (with `neurons`: of hidden units) removed so far.
    pub sparsity: f64,
    pub weights_kept: usize,
    /// With `neurons`: the hidden units left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units_kept: Option<usize>,
    /// The monitored metric right after pruning (the fine-tuning's t = 0).
    pub metric_after_pruning: f64,
    /// ... and of the weights the fine-tuning returned.
    pub metric_after_finetune: f64,
    /// Updates the fine-tuning spent.
    pub updates: u64,
    pub met: bool,
    pub stop_reason: StopReason,
    pub train_s: f64,
}

/// The pruned model the run returns: the last round that met the target (round 0: dense).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResultInfo {
    pub round: u32,
    pub sparsity: f64,
    pub weights_kept: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units_kept: Option<usize>,
    /// Its monitored metric.
    pub value: f64,
    /// Whether it meets the target (round 0, the dense model, may not, with a --threshold
    /// above its value).
    pub met: bool,
    /// The saved model's layers (smaller than the dense model's with `neurons`).
    pub layers: Vec<usize>,
    pub checksum: String,
}

/// The compute early termination saved: updates spent against a fixed budget per round.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Totals {
    pub updates: u64,
    /// Rounds × `--round-max-iter`: what a fixed fine-tuning budget per round spends.
    pub fixed_budget_updates: u64,
    /// 1 − updates / fixed budget.
    pub saved_fraction: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PruneTiming {
    /// Loading the data and the model, and the dense model's evaluation.
    pub setup_s: f64,
    /// The rounds.
    pub prune_s: f64,
    pub wall_s: f64,
}

/// The report (human and `--json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PruneReport {
    pub method: Method,
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<crate::backend::AdapterDesc>,
    pub metric: Metric,
    pub monitor: Monitor,
    pub target: f64,
    /// "threshold" (given) or "dense_minus_tolerance".
    pub target_from: &'static str,
    pub dense_value: f64,
    pub tolerance: f64,
    pub step: f64,
    pub target_sparsity: Option<f64>,
    pub round_max_iter: u64,
    pub weights_total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units_total: Option<usize>,
    pub rounds: Vec<RoundReport>,
    pub result: ResultInfo,
    pub totals: Totals,
    /// Why pruning ended: "target_sparsity", "round_missed", "max_rounds", "nothing_left"
    /// or "interrupted".
    pub ended: &'static str,
    pub timing: PruneTiming,
}

/// What `wgtrain prune --save` writes as `wgtrain.pruning`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PruningMeta {
    pub method: Method,
    pub sparsity: f64,
    /// Rounds that met the target.
    pub rounds: u32,
    pub weights_kept: usize,
    pub metric: Metric,
    pub target: f64,
}

pub struct PruneOutcome {
    pub report: PruneReport,
    /// The result with its pruned weights at exact zeros, in the dense architecture.
    pub masked: Model,
    /// What `--save` writes: `masked`, or with `neurons` the compacted model.
    pub saved: Model,
    pub meta: PruningMeta,
    /// A one-line notice (e.g. the CPU fallback), if any.
    pub notice: Option<String>,
}

/// The state of the pruning: the mask and (with `neurons`) the live units.
#[derive(Clone)]
struct Pruned {
    params: Vec<f32>,
    mask: Vec<bool>,
    alive: Vec<Vec<bool>>,
}

impl PruneJob {
    fn check(&self, spec: &ModelSpec) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if !(self.step > 0.0 && self.step < 1.0) {
            return bad(format!(
                "--step {}: the fraction pruned per round lies strictly between 0 and 1",
                self.step
            ));
        }
        if let Some(s) = self.target_sparsity {
            if !(s > 0.0 && s < 1.0) {
                return bad(format!(
                    "--target-sparsity {s}: must lie strictly between 0 and 1 (1 would remove \
                     every weight)"
                ));
            }
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return bad(format!(
                "--tolerance {}: must be a finite number at least 0",
                self.tolerance
            ));
        }
        if self.max_rounds == 0 {
            return bad("--max-rounds 0: must be at least 1".into());
        }
        if self.method == Method::Neurons && spec.is_logistic() {
            return bad(
                "--method neurons: the model is a logistic regression, which has no hidden \
                 units; use --method magnitude"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The count a round removes: `step` of what is alive (at least one), cut to land on the
/// target sparsity of `total`.
fn to_remove(step: f64, alive: usize, total: usize, target: Option<f64>) -> usize {
    let mut n = ((step * alive as f64).round() as usize).max(1);
    if let Some(s) = target {
        let goal = (s * total as f64).round() as usize;
        n = n.min(goal.saturating_sub(total - alive));
    }
    n.min(alive)
}

/// Runs the pruning job. `checked` holds the outputs' checks; `on_round` sees each round as it
/// ends.
pub fn run(
    job: &PruneJob,
    checked: &outputs::Checked,
    mut on_round: impl FnMut(&RoundReport),
) -> Result<PruneOutcome> {
    job::check_lr(&job.train)?;
    let began = Instant::now();
    let loaded = job::load(&job.train)?;
    let init = loaded
        .init
        .ok_or_else(|| Error::Config("prune needs the dense model (--model FILE)".into()))?;
    if let Some(path) = &job.train.init_weights {
        job::check_init_arch(&job.train, path, &init.model)?;
    }
    let spec = init.model.spec.clone();
    job.check(&spec)?;
    let layout = spec.layout();
    let rule = &job.train.rule;
    let lower_better = rule.metric == Metric::Loss;

    // One session for every round: the dense model's evaluation (max-iter 0), then per round
    // a restart from the pruned weights under the new mask and a fine-tuning toward the
    // target, for at most --round-max-iter updates.
    let tune = TrainJob {
        rule: StopRule {
            threshold: None,
            max_iter: job.round_max_iter,
            ..rule.clone()
        },
        init_weights: None,
        log: None,
        save: None,
        ..job.train.clone()
    };
    let rows = Rows {
        train: Cow::Borrowed(&loaded.train),
        val: loaded.val.as_ref().map(Cow::Borrowed),
        standardized: loaded.standardized,
        standardizer: loaded.standardizer.clone(),
    };
    let from = Start {
        spec: spec.clone(),
        params: Some(init.model.params.clone()),
        resume: None,
        mask: None,
    };
    let mut open = job::open(&tune, rows, from, |_| {})?;
    let tuned_rule = open.rule.clone();
    open.rule.max_iter = 0;
    let dense = open.train(&tune, began, checked, |_| {})?;
    let dense_value = dense.report.stop.info.value;
    let monitor = dense.report.stop.info.monitor;
    let notice = open.notice.clone();
    let (target, target_from) = match job.threshold {
        Some(t) => (t, "threshold"),
        None if lower_better => (dense_value + job.tolerance, "dense_minus_tolerance"),
        None => (dense_value - job.tolerance, "dense_minus_tolerance"),
    };
    let meets = |v: f64| {
        if lower_better {
            v <= target
        } else {
            v >= target
        }
    };
    open.rule = StopRule {
        threshold: Some(target),
        ..tuned_rule
    };
    let mut fine_tune = |params: &[f32], mask: &[bool]| {
        open.restart(params, Some(mask))?;
        let mut first: Option<CheckRecord> = None;
        let result = open.train(&tune, Instant::now(), checked, |c| {
            if first.is_none() {
                first = Some(*c);
            }
        })?;
        Ok::<_, Error>((result, first))
    };
    let setup_s = began.elapsed().as_secs_f64();

    let weights_total = masks::weights(&layout);
    let hidden: Vec<usize> = spec.layers[1..spec.layers.len() - 1].to_vec();
    let units_total: usize = hidden.iter().sum();
    let neurons = job.method == Method::Neurons;
    let mut state = Pruned {
        params: init.model.params.clone(),
        mask: vec![true; spec.parameter_count()],
        alive: hidden.iter().map(|&h| vec![true; h]).collect(),
    };
    let mut kept = (state.clone(), 0u32, dense_value);
    let mut rounds = Vec::new();
    let mut ended = "max_rounds";
    let units_alive = |p: &Pruned| p.alive.iter().flatten().filter(|&&a| a).count();
    // What sparsity counts: (alive, in all), weights or with `neurons` hidden units.
    let counted = |p: &Pruned| {
        if neurons {
            (units_alive(p), units_total)
        } else {
            (masks::kept_weights(&layout, &p.mask), weights_total)
        }
    };
    let sparsity = |p: &Pruned| {
        let (kept, total) = counted(p);
        (total - kept) as f64 / total.max(1) as f64
    };
    // Within half a unit of the target sparsity.
    let reached = |p: &Pruned| {
        let total = counted(p).1.max(1) as f64;
        job.target_sparsity
            .is_some_and(|s| sparsity(p) >= s - 0.5 / total)
    };
    let prune_began = Instant::now();
    let interrupt = job.train.interrupt.clone();
    for round in 1..=job.max_rounds {
        // A round that meets the target at once never looks at the interrupt flag.
        if interrupt
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
        {
            ended = "interrupted";
            break;
        }
        let (alive, total) = counted(&state);
        if reached(&state) {
            ended = "target_sparsity";
            break;
        }
        let remove = to_remove(job.step, alive, total, job.target_sparsity);
        // Never a model without weights (or a layer without units).
        let next = if neurons {
            let alive = masks::neuron_prune(&layout, &state.params, &state.alive, remove);
            let mask = masks::unit_mask(&layout, &alive);
            Pruned {
                params: Vec::new(),
                mask,
                alive,
            }
        } else {
            let remove = remove.min(alive.saturating_sub(1));
            Pruned {
                params: Vec::new(),
                mask: masks::magnitude_prune(&layout, &state.params, &state.mask, remove),
                alive: state.alive.clone(),
            }
        };
        if next.mask == state.mask {
            ended = "nothing_left";
            break;
        }
        let masked: Vec<f32> = state
            .params
            .iter()
            .zip(&next.mask)
            .map(|(&w, &keep)| if keep { w } else { 0.0 })
            .collect();
        let (result, first) = fine_tune(&masked, &next.mask)?;
        let info = &result.report.stop.info;
        let after_pruning =
            first.map_or(f64::NAN, |c| monitor.pick(c.train, c.val).get(rule.metric));
        let met = info.reason != StopReason::NonFinite && meets(info.value);
        let state_next = Pruned {
            params: result.model.params.clone(),
            ..next
        };
        let r = RoundReport {
            round,
            sparsity: sparsity(&state_next),
            weights_kept: masks::kept_weights(&layout, &state_next.mask),
            units_kept: neurons.then(|| units_alive(&state_next)),
            metric_after_pruning: after_pruning,
            metric_after_finetune: info.value,
            updates: result.outcome.updates,
            met,
            stop_reason: info.reason,
            train_s: result.report.timing.train_s,
        };
        on_round(&r);
        let interrupted = info.reason == StopReason::Interrupted;
        rounds.push(r);
        if interrupted {
            // Weights that meet the target when the run is stopped are a result too.
            if met {
                kept = (state_next, round, info.value);
            }
            ended = "interrupted";
            break;
        }
        if !met {
            ended = "round_missed";
            break;
        }
        kept = (state_next.clone(), round, info.value);
        state = state_next;
        if reached(&state) {
            ended = "target_sparsity";
            break;
        }
    }
    let prune_s = prune_began.elapsed().as_secs_f64();

    let (best, best_round, best_value) = kept;
    let masked = Model {
        spec: spec.clone(),
        params: best.params.clone(),
        ..init.model.clone()
    };
    let saved = if neurons {
        let (small, params) = masks::compact(&spec, &best.params, &best.alive)?;
        Model {
            spec: small,
            params,
            ..init.model.clone()
        }
    } else {
        masked.clone()
    };
    let updates: u64 = rounds.iter().map(|r| r.updates).sum();
    let fixed = rounds.len() as u64 * job.round_max_iter;
    let result = ResultInfo {
        round: best_round,
        sparsity: sparsity(&best),
        weights_kept: masks::kept_weights(&layout, &best.mask),
        units_kept: neurons.then(|| units_alive(&best)),
        value: best_value,
        met: meets(best_value),
        layers: saved.spec.layers.clone(),
        checksum: model::checksum(&saved.params),
    };
    let meta = PruningMeta {
        method: job.method,
        sparsity: result.sparsity,
        rounds: best_round,
        weights_kept: result.weights_kept,
        metric: rule.metric,
        target,
    };
    let report = PruneReport {
        method: job.method,
        backend: dense.report.backend.clone(),
        adapter: dense.report.adapter.clone(),
        metric: rule.metric,
        monitor,
        target,
        target_from,
        dense_value,
        tolerance: job.tolerance,
        step: job.step,
        target_sparsity: job.target_sparsity,
        round_max_iter: job.round_max_iter,
        weights_total,
        units_total: neurons.then_some(units_total),
        rounds,
        result,
        totals: Totals {
            updates,
            fixed_budget_updates: fixed,
            saved_fraction: if fixed > 0 {
                1.0 - updates as f64 / fixed as f64
            } else {
                0.0
            },
        },
        ended,
        timing: PruneTiming {
            setup_s,
            prune_s,
            wall_s: began.elapsed().as_secs_f64(),
        },
    };
    Ok(PruneOutcome {
        report,
        masked,
        saved,
        meta,
        notice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_remove_a_step_of_what_is_left_and_land_on_the_target() {
        assert_eq!(to_remove(0.2, 100, 100, None), 20);
        assert_eq!(to_remove(0.2, 80, 100, None), 16);
        // At least one, never more than is alive.
        assert_eq!(to_remove(0.2, 2, 100, None), 1);
        assert_eq!(to_remove(0.5, 1, 100, None), 1);
        // 0.5 of 100: 36 removed so far, 64 alive; 20% would reach 49 pruned, the target 50.
        assert_eq!(to_remove(0.2, 64, 100, Some(0.5)), 13);
        assert_eq!(to_remove(0.2, 60, 100, Some(0.5)), 10);
        assert_eq!(to_remove(0.2, 50, 100, Some(0.5)), 0);
    }
}

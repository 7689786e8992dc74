//! The training loop, written once for every backend: evaluate, ask the stop rules, update.

use std::time::Instant;

use serde::Serialize;

use crate::backend::Session;
use crate::error::{Error, Result};
use crate::metrics::{Metric, Metrics};
use crate::stop::{Decision, StopEngine, StopReason, StopRule};

/// Which rows the stop rules watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Monitor {
    Train,
    Val,
}

/// How to train: the rules, what they watch, and which weights to return.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    pub rule: StopRule,
    pub monitor: Monitor,
    /// Return the weights of the best check instead of the last ones.
    pub restore_best: bool,
}

impl TrainOptions {
    pub fn new(rule: StopRule) -> Self {
        TrainOptions {
            rule,
            monitor: Monitor::Train,
            restore_best: false,
        }
    }
}

/// One checked iteration: what the log records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckRecord {
    pub iteration: u64,
    /// Seconds since the first iteration began.
    pub elapsed_s: f64,
    pub train: Metrics,
    pub val: Option<Metrics>,
}

/// How and why a run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StopInfo {
    pub reason: StopReason,
    /// Updates the returned weights received.
    pub iteration: u64,
    /// The iteration at which the rule fired (differs from `iteration` with `--restore-best`
    /// and for `non_finite`).
    pub stopped_at: u64,
    pub metric: Metric,
    pub monitor: Monitor,
    /// The monitored metric of the returned weights.
    pub value: f64,
    /// The monitored metric at `stopped_at`.
    pub value_at_stop: f64,
    pub threshold: Option<f64>,
    /// The last check that counted as an improvement, and its value (null if none did).
    pub best_iteration: Option<u64>,
    pub best_value: Option<f64>,
    /// The returned weights are the best check's.
    pub restored_best: bool,
    /// For `non_finite`: the iteration whose loss was not finite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_finite_at: Option<u64>,
}

/// The result of a run: the weights the rules chose and their metrics.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub stop: StopInfo,
    /// Metrics of the returned weights on the training rows.
    pub metrics: Metrics,
    /// ... and on the validation rows, if any.
    pub val_metrics: Option<Metrics>,
    pub params: Vec<f32>,
    /// Forward passes run, t = 0 included.
    pub evaluations: u64,
    pub train_s: f64,
}

/// Trains until a rule stops it. `on_check` sees every checked iteration and the last one.
///
/// Iteration t means the weights after t updates. The metrics of those weights are produced
/// before update t + 1 is applied, so the returned weights are exactly those of the reported
/// iteration: the one where the rule fired, the best check's with `restore_best`, or for a
/// non-finite loss at t the weights of t − 1 (of t = 0 if it happens there).
pub fn train(
    session: &mut dyn Session,
    opts: &TrainOptions,
    mut on_check: impl FnMut(&CheckRecord) -> Result<()>,
) -> Result<Outcome> {
    let rule = &opts.rule;
    let start = Instant::now();
    let mut engine = StopEngine::new(rule.clone());
    let mut last: Option<(Metrics, Option<Metrics>)> = None;
    let mut best: Option<(Metrics, Option<Metrics>)> = None;
    let mut t = 0u64;
    loop {
        let e = session.evaluate()?;
        let train = Metrics::from_counts(&e.train);
        let val = e.val.map(|c| Metrics::from_counts(&c));
        let monitored = match (opts.monitor, &val) {
            (Monitor::Train, _) => &train,
            (Monitor::Val, Some(v)) => v,
            (Monitor::Val, None) => {
                return Err(Error::Config(
                    "--monitor val needs validation data (--val FILE.csv or --val-split F)".into(),
                ));
            }
        };
        let finite = train.loss.is_finite() && val.is_none_or(|v| v.loss.is_finite());
        let elapsed_s = start.elapsed().as_secs_f64();
        let step = engine.observe(t, monitored.get(rule.metric), finite, elapsed_s);
        if step.improved {
            session.save_best()?;
            best = Some((train, val));
        }
        let stop = match step.decision {
            Decision::Continue => None,
            Decision::Stop(r) => Some(r),
        };
        if step.checked || stop.is_some() {
            on_check(&CheckRecord {
                iteration: t,
                elapsed_s,
                train,
                val,
            })?;
        }
        let Some(reason) = stop else {
            session.update()?;
            last = Some((train, val));
            t += 1;
            continue;
        };
        let restored = opts.restore_best.then(|| engine.best().zip(best)).flatten();
        let (iteration, (m, vm), params) = match (restored, reason, last) {
            (Some(((bi, _), b)), _, _) => (bi, b, session.best_params()?),
            (None, StopReason::NonFinite, Some(prev)) => (t - 1, prev, session.previous_params()?),
            _ => (t, (train, val), session.params()?),
        };
        let watched = if opts.monitor == Monitor::Val {
            vm.unwrap_or(m)
        } else {
            m
        };
        return Ok(Outcome {
            stop: StopInfo {
                reason,
                iteration,
                stopped_at: t,
                metric: rule.metric,
                monitor: opts.monitor,
                value: watched.get(rule.metric),
                value_at_stop: monitored.get(rule.metric),
                threshold: rule.threshold,
                best_iteration: engine.best().map(|b| b.0),
                best_value: engine.best().map(|b| b.1),
                restored_best: restored.is_some(),
                non_finite_at: (reason == StopReason::NonFinite).then_some(t),
            },
            metrics: m,
            val_metrics: vm,
            params,
            evaluations: t + 1,
            train_s: start.elapsed().as_secs_f64(),
        });
    }
}

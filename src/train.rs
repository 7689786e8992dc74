//! The training loop, written once for every backend: evaluate, ask the stop rule, update.

use std::time::Instant;

use serde::Serialize;

use crate::backend::Session;
use crate::error::Result;
use crate::metrics::{Metric, Metrics};
use crate::stop::{Decision, StopEngine, StopReason, StopRule};

/// How and why a run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StopInfo {
    pub reason: StopReason,
    /// Updates the returned weights received.
    pub iteration: u64,
    pub metric: Metric,
    /// The metric of the returned weights.
    pub value: f64,
    pub threshold: Option<f64>,
    /// For `non_finite`: the iteration whose loss was not finite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_finite_at: Option<u64>,
}

/// The result of a run: the weights that met the rule and their metrics.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub stop: StopInfo,
    pub metrics: Metrics,
    pub params: Vec<f32>,
    /// Forward passes run (checks), t = 0 included.
    pub evaluations: u64,
    pub train_s: f64,
}

/// Trains until the rule stops it. `observe(t, metrics)` sees every check.
///
/// Iteration t means the weights after t updates. The metrics of those weights are produced
/// before update t + 1 is applied, so the returned weights are exactly the ones that met the
/// rule. A non-finite loss at t returns the weights of t − 1 (of t = 0 if it happens there).
pub fn train(
    session: &mut dyn Session,
    rule: &StopRule,
    mut observe: impl FnMut(u64, &Metrics),
) -> Result<Outcome> {
    let start = Instant::now();
    let mut engine = StopEngine::new(rule.clone());
    let mut last: Option<Metrics> = None;
    let mut t = 0u64;
    loop {
        let m = Metrics::from_counts(&session.evaluate()?);
        observe(t, &m);
        match engine.check(t, &m) {
            Decision::Continue => {
                session.update()?;
                last = Some(m);
                t += 1;
            }
            Decision::Stop(reason) => {
                let (iteration, metrics, params, non_finite_at) = match (reason, last) {
                    (StopReason::NonFinite, Some(prev)) => {
                        (t - 1, prev, session.previous_params()?, Some(t))
                    }
                    (StopReason::NonFinite, None) => (t, m, session.params()?, Some(t)),
                    _ => (t, m, session.params()?, None),
                };
                return Ok(Outcome {
                    stop: StopInfo {
                        reason,
                        iteration,
                        metric: rule.metric,
                        value: metrics.get(rule.metric),
                        threshold: rule.threshold,
                        non_finite_at,
                    },
                    metrics,
                    params,
                    evaluations: t + 1,
                    train_s: start.elapsed().as_secs_f64(),
                });
            }
        }
    }
}

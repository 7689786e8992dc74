//! The stop rule: a pure state machine fed one `Metrics` value per check. No I/O, no backend.
//!
//! Iteration t means the weights after t updates (t = 0: the initial weights). Checks run in
//! this order and the first that holds wins:
//! 1. non_finite: the loss is NaN or ±inf;
//! 2. threshold: the metric ≥ T (loss: ≤ T);
//! 3. max_iter: t = max_iter.

use serde::Serialize;

use crate::metrics::{Metric, Metrics};

/// Why training stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Threshold,
    MaxIter,
    NonFinite,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Threshold => "threshold",
            StopReason::MaxIter => "max_iter",
            StopReason::NonFinite => "non_finite",
        }
    }
}

/// What to watch and when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct StopRule {
    pub metric: Metric,
    /// Stop once the metric reaches this value (≥; ≤ for the loss). `None`: no threshold.
    pub threshold: Option<f64>,
    pub max_iter: u64,
}

impl StopRule {
    /// Whether `value` of the watched metric meets the threshold.
    pub fn meets_threshold(&self, value: f64) -> bool {
        match self.threshold {
            None => false,
            Some(t) if self.metric.higher_is_better() => value >= t,
            Some(t) => value <= t,
        }
    }
}

/// The engine's verdict for one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Stop(StopReason),
}

/// Runs a `StopRule` over the sequence of checks t = 0, 1, 2, ...
#[derive(Clone, Debug)]
pub struct StopEngine {
    rule: StopRule,
    next: u64,
}

impl StopEngine {
    pub fn new(rule: StopRule) -> Self {
        StopEngine { rule, next: 0 }
    }

    pub fn rule(&self) -> &StopRule {
        &self.rule
    }

    /// Judges the metrics of the weights after `t` updates. Checks must come in order.
    pub fn check(&mut self, t: u64, m: &Metrics) -> Decision {
        debug_assert_eq!(t, self.next, "checks must come in iteration order");
        self.next = t + 1;
        if !m.loss.is_finite() {
            Decision::Stop(StopReason::NonFinite)
        } else if self.rule.meets_threshold(m.get(self.rule.metric)) {
            Decision::Stop(StopReason::Threshold)
        } else if t >= self.rule.max_iter {
            Decision::Stop(StopReason::MaxIter)
        } else {
            Decision::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Counts;

    fn acc(tp: u64, tn: u64, rows: u64) -> Metrics {
        Metrics::from_counts(&Counts {
            loss_sum: 1.0,
            tp,
            fp: rows - tp - tn,
            fn_: 0,
            tn,
        })
    }

    fn run(rule: StopRule, seq: &[Metrics]) -> (u64, StopReason) {
        let mut e = StopEngine::new(rule);
        for (t, m) in seq.iter().enumerate() {
            if let Decision::Stop(r) = e.check(t as u64, m) {
                return (t as u64, r);
            }
        }
        panic!("no stop within the sequence");
    }

    #[test]
    fn threshold_is_inclusive_and_can_fire_at_zero() {
        let rule = StopRule {
            metric: Metric::Accuracy,
            threshold: Some(0.75),
            max_iter: 10,
        };
        assert_eq!(
            run(rule.clone(), &[acc(3, 0, 4)]),
            (0, StopReason::Threshold)
        );
        let seq = [acc(1, 0, 4), acc(2, 0, 4), acc(2, 1, 4), acc(4, 0, 4)];
        assert_eq!(run(rule, &seq), (2, StopReason::Threshold));
    }

    #[test]
    fn loss_threshold_is_at_most() {
        let rule = StopRule {
            metric: Metric::Loss,
            threshold: Some(0.5),
            max_iter: 10,
        };
        let m = |l: f64| Metrics {
            loss: l,
            ..acc(1, 1, 2)
        };
        assert_eq!(
            run(rule, &[m(0.7), m(0.50000001), m(0.5)]),
            (2, StopReason::Threshold)
        );
    }

    #[test]
    fn max_iter_after_threshold_and_none_disables() {
        let rule = StopRule {
            metric: Metric::Accuracy,
            threshold: None,
            max_iter: 2,
        };
        let seq = [acc(4, 0, 4), acc(4, 0, 4), acc(4, 0, 4)];
        assert_eq!(run(rule, &seq), (2, StopReason::MaxIter));
        // A threshold met at t = max_iter reports the threshold.
        let rule = StopRule {
            metric: Metric::Accuracy,
            threshold: Some(1.0),
            max_iter: 1,
        };
        assert_eq!(
            run(rule, &[acc(1, 0, 4), acc(4, 0, 4)]),
            (1, StopReason::Threshold)
        );
        let rule = StopRule {
            metric: Metric::Accuracy,
            threshold: Some(0.9),
            max_iter: 0,
        };
        assert_eq!(run(rule, &[acc(1, 0, 4)]), (0, StopReason::MaxIter));
    }

    #[test]
    fn non_finite_loss_wins() {
        let rule = StopRule {
            metric: Metric::Accuracy,
            threshold: Some(0.5),
            max_iter: 5,
        };
        let bad = Metrics {
            loss: f64::NAN,
            ..acc(4, 0, 4)
        };
        let inf = Metrics {
            loss: f64::INFINITY,
            ..acc(0, 0, 4)
        };
        assert_eq!(
            run(rule.clone(), &[acc(0, 0, 4), bad]),
            (1, StopReason::NonFinite)
        );
        assert_eq!(run(rule, &[inf]), (0, StopReason::NonFinite));
    }
}

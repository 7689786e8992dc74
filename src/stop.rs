//! The stop rules: a pure state machine fed one observation per iteration. No I/O, no backend;
//! its state is a few numbers, so it can be mirrored elsewhere and tested against brute force.
//!
//! Iteration t means the weights after t updates (t = 0: the initial weights). Iteration t is a
//! *check* when t is a multiple of `eval_every` or t = `max_iter`. At each iteration, in this
//! order, the first rule that holds wins (see docs/stopping.md):
//! 1. `non_finite` (every iteration): the loss of either set is NaN or ±inf;
//! 2. at checks only:
//!    `threshold`: the metric ≥ T (loss: ≤ T);
//!    `divergence`: the metric is worse than V (loss > V, a score < V);
//!    `patience`: `patience` checks in a row without an improvement (checks at t < `warmup`
//!    do not count);
//! 3. `max_iter`: t = `max_iter`;
//! 4. `max_time` (every iteration): the elapsed time ≥ `max_time` seconds.
//!
//! An improvement is a check at t ≥ `warmup` whose value beats the best so far by more than
//! the delta, a gain equal to the delta up to rounding being a tie (the first such check
//! always counts); the best is the value at the last improvement.

use serde::Serialize;

use crate::metrics::Metric;

/// Why training stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Threshold,
    Patience,
    Divergence,
    NonFinite,
    MaxIter,
    MaxTime,
    /// The user interrupted the run (Ctrl-C); set by the training loop, not the engine.
    Interrupted,
    /// The early-bird rule: the magnitude mask settled; set by the training loop, not the
    /// engine.
    MaskStable,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Threshold => "threshold",
            StopReason::Patience => "patience",
            StopReason::Divergence => "divergence",
            StopReason::NonFinite => "non_finite",
            StopReason::MaxIter => "max_iter",
            StopReason::MaxTime => "max_time",
            StopReason::Interrupted => "interrupted",
            StopReason::MaskStable => "mask_stable",
        }
    }
}

/// How much better than the best a value must be to count as an improvement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MinDelta {
    /// By more than this amount.
    Abs(f64),
    /// By more than this fraction of |best|.
    Rel(f64),
}

/// What to watch and when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct StopRule {
    pub metric: Metric,
    /// Stop once the metric reaches this value (≥; ≤ for the loss).
    pub threshold: Option<f64>,
    pub max_iter: u64,
    /// Stop after this many checks in a row without improvement (0 acts as 1, as in Lightning).
    pub patience: Option<u64>,
    pub min_delta: MinDelta,
    /// Checks at t < warmup neither set the best nor count towards patience.
    pub warmup: u64,
    /// Stop once the metric is worse than this (loss above it, a score below it).
    pub divergence: Option<f64>,
    /// Stop once this many seconds have passed since the first iteration.
    pub max_time: Option<f64>,
    /// Check the rules every this many iterations (≥ 1); t = max_iter is always checked.
    pub eval_every: u64,
}

impl Default for StopRule {
    fn default() -> Self {
        StopRule {
            metric: Metric::Accuracy,
            threshold: None,
            max_iter: 1000,
            patience: None,
            min_delta: MinDelta::Abs(0.0),
            warmup: 0,
            divergence: None,
            max_time: None,
            eval_every: 1,
        }
    }
}

impl StopRule {
    /// The number of the check at or after iteration t: check c is iteration
    /// min(c·E, max_iter) for E = eval_every, c = 0 ..= ⌈max_iter / E⌉ (every check
    /// iteration is one).
    pub fn check_number(&self, t: u64) -> u64 {
        t.div_ceil(self.eval_every.max(1))
    }

    /// The iteration of check c.
    pub fn check_iteration(&self, c: u64) -> u64 {
        c.saturating_mul(self.eval_every.max(1)).min(self.max_iter)
    }

    /// The rule counted in checks (how the GPU judges mini-batch runs): one check per step,
    /// max_iter the last check's number, and the warmup the first check at or past it (none
    /// where it lies past max_iter).
    pub fn in_checks(&self) -> StopRule {
        let last = self.check_number(self.max_iter);
        StopRule {
            eval_every: 1,
            max_iter: last,
            warmup: if self.warmup > self.max_iter {
                last + 1
            } else {
                self.check_number(self.warmup)
            },
            ..self.clone()
        }
    }

    /// Whether iteration t is a check.
    pub fn is_check(&self, t: u64) -> bool {
        t % self.eval_every.max(1) == 0 || t >= self.max_iter
    }

    /// Whether `value` of the watched metric meets the threshold.
    pub fn meets_threshold(&self, value: f64) -> bool {
        match self.threshold {
            None => false,
            Some(t) if self.metric.higher_is_better() => value >= t,
            Some(t) => value <= t,
        }
    }

    /// Whether `value` is worse than the divergence bound.
    pub fn diverged(&self, value: f64) -> bool {
        match self.divergence {
            None => false,
            Some(v) if self.metric.higher_is_better() => value < v,
            Some(v) => value > v,
        }
    }

    /// Whether `value` improves on `best` by more than the delta.
    pub fn improves(&self, value: f64, best: f64) -> bool {
        let gain = if self.metric.higher_is_better() {
            value - best
        } else {
            best - value
        };
        let needed = match self.min_delta {
            MinDelta::Abs(d) => d,
            MinDelta::Rel(r) => r * best.abs(),
        };
        beats(gain, needed, value, best)
    }
}

/// `gain > needed`, where a gain within rounding of `needed` is a tie, not more: 0.51 − 0.50
/// is 0.010000000000000009 in f64 yet gains exactly a min-delta of 0.01. The slack is a few
/// ulps of the operands, far below any real step of a metric.
pub fn beats(gain: f64, needed: f64, value: f64, best: f64) -> bool {
    let slack = 4.0 * f64::EPSILON * value.abs().max(best.abs()).max(needed.abs());
    gain - needed > slack
}

/// The engine's verdict for one iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Stop(StopReason),
}

/// What one observation led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub decision: Decision,
    /// Iteration t was a check (the rules that run at checks were asked).
    pub checked: bool,
    /// The check was an improvement: t is the new best iteration.
    pub improved: bool,
}

/// The engine's whole state.
#[derive(Clone, Debug)]
pub struct StopEngine {
    rule: StopRule,
    next: u64,
    best: Option<(u64, f64)>,
    wait: u64,
}

impl StopEngine {
    pub fn new(rule: StopRule) -> Self {
        StopEngine {
            rule,
            next: 0,
            best: None,
            wait: 0,
        }
    }

    pub fn rule(&self) -> &StopRule {
        &self.rule
    }

    /// The best check so far: (iteration, value).
    pub fn best(&self) -> Option<(u64, f64)> {
        self.best
    }

    /// Checks in a row without improvement (after warm-up).
    pub fn wait(&self) -> u64 {
        self.wait
    }

    /// Passes iteration t, a non-check whose weights were not evaluated (mini-batch runs
    /// evaluate at checks only): only `max_time` can stop it.
    pub fn pass(&mut self, t: u64, elapsed_s: f64) -> Step {
        debug_assert_eq!(t, self.next, "iterations must come in order");
        debug_assert!(!self.rule.is_check(t), "a check needs its value");
        self.next = t + 1;
        let timed_out = self.rule.max_time.is_some_and(|m| elapsed_s >= m);
        Step {
            decision: if timed_out {
                Decision::Stop(StopReason::MaxTime)
            } else {
                Decision::Continue
            },
            checked: false,
            improved: false,
        }
    }

    /// Observes iteration t: the watched metric's `value`, whether every loss is finite, and
    /// the seconds since the first iteration. Iterations must come in order from 0.
    pub fn observe(&mut self, t: u64, value: f64, losses_finite: bool, elapsed_s: f64) -> Step {
        debug_assert_eq!(t, self.next, "iterations must come in order");
        self.next = t + 1;
        let r = &self.rule;
        let checked = r.is_check(t);
        let stop = |reason| Step {
            decision: Decision::Stop(reason),
            checked,
            improved: false,
        };
        if !losses_finite || !value.is_finite() {
            return stop(StopReason::NonFinite);
        }
        let mut improved = false;
        if checked && t >= r.warmup {
            improved = match self.best {
                None => true,
                Some((_, b)) => r.improves(value, b),
            };
            if improved {
                self.best = Some((t, value));
                self.wait = 0;
            } else {
                self.wait += 1;
            }
        }
        let reason = if !checked {
            None
        } else if r.meets_threshold(value) {
            Some(StopReason::Threshold)
        } else if r.diverged(value) {
            Some(StopReason::Divergence)
        } else if r
            .patience
            .is_some_and(|p| !improved && self.wait >= p.max(1))
        {
            Some(StopReason::Patience)
        } else {
            None
        };
        let reason = reason
            .or((t >= r.max_iter).then_some(StopReason::MaxIter))
            .or(r
                .max_time
                .is_some_and(|m| elapsed_s >= m)
                .then_some(StopReason::MaxTime));
        Step {
            decision: reason.map_or(Decision::Continue, Decision::Stop),
            checked,
            improved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_numbered_with_the_last_at_max_iter() {
        let r = StopRule {
            eval_every: 7,
            max_iter: 97,
            warmup: 12,
            ..Default::default()
        };
        // Checks at 0, 7, ..., 91 and 97.
        assert_eq!(
            [0, 7, 8, 91, 92, 97].map(|t| r.check_number(t)),
            [0, 1, 2, 13, 14, 14]
        );
        assert_eq!(
            [0, 1, 13, 14, 15].map(|c| r.check_iteration(c)),
            [0, 7, 91, 97, 97]
        );
        let c = r.in_checks();
        assert_eq!((c.eval_every, c.max_iter, c.warmup), (1, 14, 2));
        // A warmup past max_iter tracks no check.
        let late = StopRule {
            warmup: 98,
            ..r.clone()
        }
        .in_checks();
        assert_eq!(late.warmup, 15);
    }

    /// Runs values (all losses finite, no time passing) until a stop.
    fn run(rule: StopRule, values: &[f64]) -> (u64, StopReason) {
        let mut e = StopEngine::new(rule);
        for (t, &v) in values.iter().enumerate() {
            if let Decision::Stop(r) = e.observe(t as u64, v, true, 0.0).decision {
                return (t as u64, r);
            }
        }
        panic!("no stop within the sequence");
    }

    fn acc(threshold: Option<f64>, max_iter: u64) -> StopRule {
        StopRule {
            threshold,
            max_iter,
            ..Default::default()
        }
    }

    #[test]
    fn threshold_is_inclusive_and_can_fire_at_zero() {
        assert_eq!(
            run(acc(Some(0.75), 10), &[0.75]),
            (0, StopReason::Threshold)
        );
        let seq = [0.25, 0.5, 0.75, 1.0];
        assert_eq!(run(acc(Some(0.75), 10), &seq), (2, StopReason::Threshold));
    }

    #[test]
    fn loss_threshold_is_at_most() {
        let rule = StopRule {
            metric: Metric::Loss,
            threshold: Some(0.5),
            ..Default::default()
        };
        assert_eq!(
            run(rule, &[0.7, 0.50000001, 0.5]),
            (2, StopReason::Threshold)
        );
    }

    #[test]
    fn max_iter_after_threshold_and_none_disables() {
        assert_eq!(
            run(acc(None, 2), &[1.0, 1.0, 1.0]),
            (2, StopReason::MaxIter)
        );
        // A threshold met at t = max_iter reports the threshold.
        assert_eq!(
            run(acc(Some(1.0), 1), &[0.25, 1.0]),
            (1, StopReason::Threshold)
        );
        assert_eq!(run(acc(Some(0.9), 0), &[0.25]), (0, StopReason::MaxIter));
    }

    #[test]
    fn non_finite_wins() {
        let mut e = StopEngine::new(acc(Some(0.5), 5));
        assert_eq!(e.observe(0, 0.0, true, 0.0).decision, Decision::Continue);
        let s = e.observe(1, 1.0, false, 0.0);
        assert_eq!(s.decision, Decision::Stop(StopReason::NonFinite));
        let loss = StopRule {
            metric: Metric::Loss,
            ..Default::default()
        };
        assert_eq!(run(loss, &[f64::NAN]), (0, StopReason::NonFinite));
    }

    /// One observation: (value, every loss finite, elapsed seconds).
    type Obs = (f64, bool, f64);

    /// Runs observations until a stop: (stop iteration, reason, best) and every step.
    fn run_obs(rule: StopRule, obs: &[Obs]) -> (u64, StopReason, Option<(u64, f64)>, Vec<Step>) {
        let mut e = StopEngine::new(rule);
        let mut steps = Vec::new();
        for (t, &(v, finite, elapsed)) in obs.iter().enumerate() {
            let s = e.observe(t as u64, v, finite, elapsed);
            steps.push(s);
            if let Decision::Stop(r) = s.decision {
                return (t as u64, r, e.best(), steps);
            }
        }
        panic!("no stop within the sequence");
    }

    /// Values with every loss finite and no time passing.
    fn plain(values: &[f64]) -> Vec<Obs> {
        values.iter().map(|&v| (v, true, 0.0)).collect()
    }

    /// (stop iteration, reason, best) of values with every loss finite and no time passing.
    fn stop_best(rule: StopRule, values: &[f64]) -> (u64, StopReason, Option<(u64, f64)>) {
        let (t, r, b, _) = run_obs(rule, &plain(values));
        (t, r, b)
    }

    /// Indices of the steps that were improvements.
    fn improvements(steps: &[Step]) -> Vec<usize> {
        (0..steps.len()).filter(|&i| steps[i].improved).collect()
    }

    fn patient(metric: Metric, patience: u64, min_delta: MinDelta, max_iter: u64) -> StopRule {
        StopRule {
            metric,
            patience: Some(patience),
            min_delta,
            max_iter,
            ..Default::default()
        }
    }

    #[test]
    fn threshold_ties_stop_at_checks_only() {
        // A tie at a non-check iteration does not stop; the next check with a tie does.
        let rule = StopRule {
            threshold: Some(0.75),
            eval_every: 2,
            max_iter: 10,
            ..Default::default()
        };
        let (t, r, _, steps) = run_obs(rule, &plain(&[0.5, 0.75, 0.5, 0.75, 0.75]));
        assert_eq!((t, r), (4, StopReason::Threshold));
        assert!(!steps[1].checked && !steps[3].checked && steps[4].checked);
        // One ulp below the threshold is not a tie.
        let below = 0.75 - f64::EPSILON / 2.0;
        assert!(below < 0.75);
        assert_eq!(
            run(acc(Some(0.75), 3), &[below, below, below, below]),
            (3, StopReason::MaxIter)
        );
        // For the loss a tie is ≤ T, and one ulp above is not.
        let loss = |max_iter| StopRule {
            metric: Metric::Loss,
            threshold: Some(0.25),
            max_iter,
            ..Default::default()
        };
        let above = 0.25 + f64::EPSILON / 4.0;
        assert!(above > 0.25);
        assert_eq!(
            run(loss(2), &[above, above, above]),
            (2, StopReason::MaxIter)
        );
        assert_eq!(run(loss(9), &[above, 0.25]), (1, StopReason::Threshold));
    }

    #[test]
    fn a_gain_equal_to_min_delta_is_not_an_improvement() {
        // Values in binary fractions, so best + delta is exact.
        let rule = patient(Metric::Accuracy, 1, MinDelta::Abs(0.25), 10);
        let (t, r, best, steps) = run_obs(rule.clone(), &plain(&[0.5, 0.75]));
        assert_eq!((t, r, best), (1, StopReason::Patience, Some((0, 0.5))));
        assert_eq!(improvements(&steps), [0]);
        // One ulp above is rounding, still a tie; a real gain above best + delta counts.
        let ulp_above = 0.75 + f64::EPSILON / 2.0;
        assert!(ulp_above > 0.75);
        let (t, _, _, _) = run_obs(rule.clone(), &plain(&[0.5, ulp_above]));
        assert_eq!(t, 1);
        let just_above = 0.75 + 1e-9;
        let (t, r, best, steps) = run_obs(rule, &plain(&[0.5, just_above, just_above]));
        assert_eq!(
            (t, r, best),
            (2, StopReason::Patience, Some((1, just_above)))
        );
        assert_eq!(improvements(&steps), [0, 1]);
        // With delta 0 a tie with the best is not an improvement, any gain is.
        let rule = patient(Metric::Accuracy, 2, MinDelta::Abs(0.0), 10);
        assert_eq!(
            stop_best(rule, &[0.5, 0.5, 0.5625, 0.5625, 0.5625]),
            (4, StopReason::Patience, Some((2, 0.5625)))
        );
    }

    #[test]
    fn the_best_stays_at_the_last_improvement_not_the_maximum() {
        // Gains of 0.125 each, below the delta 0.25: the best stays at t = 0 although later
        // values are higher, and patience runs out.
        let rule = patient(Metric::Accuracy, 2, MinDelta::Abs(0.25), 10);
        assert_eq!(
            stop_best(rule.clone(), &[0.25, 0.375, 0.5]),
            (2, StopReason::Patience, Some((0, 0.25)))
        );
        // 0.5625 beats 0.25 by 0.3125 > 0.25.
        assert_eq!(
            stop_best(rule, &[0.25, 0.375, 0.5625, 0.5, 0.75]),
            (4, StopReason::Patience, Some((2, 0.5625)))
        );
    }

    #[test]
    fn relative_min_delta_scales_with_the_best() {
        // Score: needs value − best > 0.5·|best|; from 0.5 that is > 0.75.
        let rule = patient(Metric::Accuracy, 1, MinDelta::Rel(0.5), 10);
        assert_eq!(
            stop_best(rule.clone(), &[0.5, 0.75]),
            (1, StopReason::Patience, Some((0, 0.5)))
        );
        assert_eq!(
            stop_best(rule.clone(), &[0.5, 0.8125, 0.8125]),
            (2, StopReason::Patience, Some((1, 0.8125)))
        );
        // From a best of 0 any gain is an improvement, no gain is not.
        assert_eq!(
            stop_best(rule, &[0.0, 0.0625, 0.0625]),
            (2, StopReason::Patience, Some((1, 0.0625)))
        );
        // Loss: needs best − value > 0.25·best; from 2 that is < 1.5, then from 1.25 < 0.9375.
        let rule = patient(Metric::Loss, 1, MinDelta::Rel(0.25), 10);
        assert_eq!(
            stop_best(rule.clone(), &[2.0, 1.5]),
            (1, StopReason::Patience, Some((0, 2.0)))
        );
        assert_eq!(
            stop_best(rule, &[2.0, 1.25, 0.9375]),
            (2, StopReason::Patience, Some((1, 1.25)))
        );
        // The required gain shrinks with the best: from 1.25 it is > 0.3125, so 0.875 (gain
        // 0.375) improves, where the absolute delta 0.5 (= 0.25·2 at the start) does not.
        let seq = [2.0, 1.25, 0.875, 0.875];
        let rel = patient(Metric::Loss, 1, MinDelta::Rel(0.25), 10);
        assert_eq!(
            stop_best(rel, &seq),
            (3, StopReason::Patience, Some((2, 0.875)))
        );
        let abs = patient(Metric::Loss, 1, MinDelta::Abs(0.5), 10);
        assert_eq!(
            stop_best(abs, &seq),
            (2, StopReason::Patience, Some((1, 1.25)))
        );
    }

    #[test]
    fn non_finite_value_or_loss_stops_at_any_iteration() {
        let rule = StopRule {
            eval_every: 4,
            patience: Some(1),
            max_iter: 20,
            ..Default::default()
        };
        // A NaN or infinite watched value, every loss flagged finite, at a non-check.
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let (t, r, best, steps) =
                run_obs(rule.clone(), &plain(&[0.5, 0.5, 0.5, 0.5, 0.75, bad]));
            assert_eq!((t, r, best), (5, StopReason::NonFinite, Some((4, 0.75))));
            assert!(!steps[5].checked && !steps[5].improved);
        }
        // A finite value with a non-finite loss, at a check where the value would improve and
        // meet a threshold: non_finite wins and the best is not updated.
        let rule = StopRule {
            threshold: Some(0.5),
            ..rule
        };
        let mut obs = plain(&[0.25; 4]);
        obs.push((1.0, false, 0.0));
        let (t, r, best, steps) = run_obs(rule, &obs);
        assert_eq!((t, r, best), (4, StopReason::NonFinite, Some((0, 0.25))));
        assert!(steps[4].checked && !steps[4].improved);
        // At t = 0, with nothing seen yet.
        let (t, r, best, _) = run_obs(acc(None, 5), &[(0.5, false, 0.0)]);
        assert_eq!((t, r, best), (0, StopReason::NonFinite, None));
    }

    #[test]
    fn patience_zero_acts_as_one() {
        let seq = [0.5, 0.75, 0.75, 0.75];
        for p in [0, 1] {
            let rule = patient(Metric::Accuracy, p, MinDelta::Abs(0.0), 10);
            assert_eq!(
                stop_best(rule, &seq),
                (2, StopReason::Patience, Some((1, 0.75)))
            );
        }
        let rule = patient(Metric::Accuracy, 2, MinDelta::Abs(0.0), 10);
        assert_eq!(
            stop_best(rule, &seq),
            (3, StopReason::Patience, Some((1, 0.75)))
        );
        // Patience 0 does not stop on an improvement (t = 0 always improves).
        let rule = patient(Metric::Accuracy, 0, MinDelta::Abs(0.0), 10);
        assert_eq!(
            stop_best(rule.clone(), &[0.5, 0.5]),
            (1, StopReason::Patience, Some((0, 0.5)))
        );
        // Nor at checks during warm-up, which count for nothing.
        let warm = StopRule { warmup: 3, ..rule };
        assert_eq!(
            stop_best(warm, &[0.5; 5]),
            (4, StopReason::Patience, Some((3, 0.5)))
        );
    }

    #[test]
    fn patience_counts_checks_not_iterations() {
        // Checks at 0, 3, 6, 9: a constant metric exhausts patience 2 at the second check after
        // t = 0, i.e. t = 6, not t = 2.
        let rule = StopRule {
            patience: Some(2),
            eval_every: 3,
            max_iter: 100,
            ..Default::default()
        };
        let (t, r, best, steps) = run_obs(rule.clone(), &plain(&[0.5; 10]));
        assert_eq!((t, r, best), (6, StopReason::Patience, Some((0, 0.5))));
        let checked: Vec<usize> = (0..steps.len()).filter(|&i| steps[i].checked).collect();
        assert_eq!(checked, [0, 3, 6]);
        // Gains at non-check iterations are not seen; an improvement at a check resets the count.
        let seq = [
            0.5, 0.9, 0.9, 0.5, 0.9, 0.9, 0.625, 0.9, 0.9, 0.625, 0.9, 0.9, 0.625,
        ];
        let (t, r, best, steps) = run_obs(rule, &plain(&seq));
        assert_eq!((t, r, best), (12, StopReason::Patience, Some((6, 0.625))));
        assert_eq!(improvements(&steps), [0, 6]);
    }

    #[test]
    fn warmup_checks_neither_set_the_best_nor_count() {
        // Checks at 0, 2, 4, 6, 8; warm-up 4: the first counted check is t = 4.
        let rule = StopRule {
            patience: Some(1),
            eval_every: 2,
            warmup: 4,
            max_iter: 100,
            ..Default::default()
        };
        // The high values before warm-up are never the best; t = 4 is an improvement although
        // lower; patience 1 runs out at the next check.
        let (t, r, best, steps) =
            run_obs(rule.clone(), &plain(&[0.9, 0.9, 0.9, 0.9, 0.5, 0.9, 0.5]));
        assert_eq!((t, r, best), (6, StopReason::Patience, Some((4, 0.5))));
        assert_eq!(improvements(&steps), [4]);
        assert!(steps[0].checked && steps[2].checked);
        // Without warm-up the same sequence stops at t = 2 (0.9 does not beat 0.9).
        let no_warmup = StopRule {
            warmup: 0,
            ..rule.clone()
        };
        assert_eq!(
            stop_best(no_warmup, &[0.9, 0.9, 0.9]),
            (2, StopReason::Patience, Some((0, 0.9)))
        );
        // A warm-up that is not a multiple of eval_every: warm-up 3, the first counted check is 4.
        let odd = StopRule {
            warmup: 3,
            ..rule.clone()
        };
        assert_eq!(
            stop_best(odd, &[0.9, 0.9, 0.9, 0.9, 0.5, 0.9, 0.5]),
            (6, StopReason::Patience, Some((4, 0.5)))
        );
        // The threshold and divergence apply from t = 0, during warm-up.
        let thr = StopRule {
            threshold: Some(0.75),
            ..rule.clone()
        };
        assert_eq!(
            stop_best(thr, &[0.5, 0.5, 0.75]),
            (2, StopReason::Threshold, None)
        );
        let div = StopRule {
            divergence: Some(0.25),
            ..rule.clone()
        };
        assert_eq!(stop_best(div, &[0.125]), (0, StopReason::Divergence, None));
        // So does max_time.
        let time = StopRule {
            max_time: Some(1.0),
            ..rule
        };
        let (t, r, best, _) = run_obs(time, &[(0.5, true, 0.0), (0.5, true, 1.0)]);
        assert_eq!((t, r, best), (1, StopReason::MaxTime, None));
    }

    #[test]
    fn warmup_longer_than_the_run() {
        let rule = StopRule {
            patience: Some(1),
            warmup: 50,
            max_iter: 10,
            ..Default::default()
        };
        let (t, r, best, steps) = run_obs(rule.clone(), &plain(&[0.5; 11]));
        assert_eq!((t, r, best), (10, StopReason::MaxIter, None));
        assert!(steps.iter().all(|s| s.checked && !s.improved));
        // warm-up = max_iter: only the last check counts, and it is an improvement.
        let rule = StopRule { warmup: 10, ..rule };
        let (t, r, best, steps) = run_obs(rule, &plain(&[0.5; 11]));
        assert_eq!((t, r, best), (10, StopReason::MaxIter, Some((10, 0.5))));
        assert_eq!(improvements(&steps), [10]);
    }

    #[test]
    fn max_iter_is_a_check_when_eval_every_does_not_divide_it() {
        // Checks at 0, 4, 8 and 10.
        let rule = StopRule {
            threshold: Some(0.75),
            eval_every: 4,
            max_iter: 10,
            ..Default::default()
        };
        let mut seq = vec![0.5; 11];
        seq[9] = 0.75; // not a check
        seq[10] = 0.75;
        let (t, r, _, steps) = run_obs(rule.clone(), &plain(&seq));
        assert_eq!((t, r), (10, StopReason::Threshold));
        let checked: Vec<usize> = (0..steps.len()).filter(|&i| steps[i].checked).collect();
        assert_eq!(checked, [0, 4, 8, 10]);
        // Without the tie at t = 10 it is max_iter.
        seq[10] = 0.5;
        assert_eq!(run(rule.clone(), &seq), (10, StopReason::MaxIter));
        // Patience 3 runs out exactly at t = 10 (checks 4, 8, 10 do not improve): patience wins.
        let rule = StopRule {
            threshold: None,
            patience: Some(3),
            ..rule
        };
        assert_eq!(
            stop_best(rule, &[0.5; 11]),
            (10, StopReason::Patience, Some((0, 0.5)))
        );
    }

    #[test]
    fn divergence_is_strict_and_at_checks() {
        // Loss: > V.
        let loss = StopRule {
            metric: Metric::Loss,
            divergence: Some(2.0),
            eval_every: 2,
            max_iter: 10,
            ..Default::default()
        };
        let above = 2.0 + 2.0 * f64::EPSILON;
        assert!(above > 2.0);
        // 2.0 at a check does not stop; above it at a non-check (t = 1, 3) does not either.
        let seq = [1.0, above, 2.0, above, above];
        let (t, r, best, _) = run_obs(loss, &plain(&seq));
        assert_eq!((t, r, best), (4, StopReason::Divergence, Some((0, 1.0))));
        // Score: < V.
        let score = StopRule {
            metric: Metric::F1,
            divergence: Some(0.25),
            max_iter: 10,
            ..Default::default()
        };
        let below = 0.25 - f64::EPSILON / 8.0;
        assert!(below < 0.25);
        assert_eq!(
            run(score.clone(), &[0.5, 0.25, 0.25, below]),
            (3, StopReason::Divergence)
        );
        // A score of exactly V until max_iter never diverges.
        let score = StopRule {
            max_iter: 3,
            ..score
        };
        assert_eq!(run(score, &[0.25; 4]), (3, StopReason::MaxIter));
    }

    #[test]
    fn max_time_fires_at_any_iteration() {
        let rule = StopRule {
            eval_every: 5,
            max_time: Some(1.5),
            max_iter: 100,
            ..Default::default()
        };
        // t = 3 is not a check; elapsed reaches 1.5 there (≥, a tie stops).
        let obs: Vec<Obs> = [0.0, 0.5, 1.0, 1.5, 2.0]
            .iter()
            .map(|&s| (0.5, true, s))
            .collect();
        let (t, r, _, steps) = run_obs(rule.clone(), &obs);
        assert_eq!((t, r), (3, StopReason::MaxTime));
        assert!(!steps[3].checked);
        // Just below the limit does not stop.
        let obs: Vec<Obs> = [0.0, 1.4999, 1.4999, 2.0]
            .iter()
            .map(|&s| (0.5, true, s))
            .collect();
        assert_eq!(run_obs(rule, &obs).0, 3);
        // A limit of 0 stops at t = 0.
        let zero = StopRule {
            max_time: Some(0.0),
            ..Default::default()
        };
        let (t, r, best, _) = run_obs(zero, &[(0.5, true, 0.0)]);
        assert_eq!((t, r, best), (0, StopReason::MaxTime, Some((0, 0.5))));
    }

    #[test]
    fn rule_order_when_several_hold() {
        let stop = |rule: &StopRule, obs: &[Obs]| {
            let (t, r, _, _) = run_obs(rule.clone(), obs);
            (t, r)
        };
        // At t = 0: 0.5 meets the threshold (≥ 0.5) and the divergence bound (< 0.75),
        // t = max_iter = 0 and the time (0 ≥ 0) is up. Removing the winner each time shows the
        // ladder threshold → divergence → max_iter → max_time.
        let mut rule = StopRule {
            threshold: Some(0.5),
            divergence: Some(0.75),
            max_iter: 0,
            max_time: Some(0.0),
            ..Default::default()
        };
        let t0 = [(0.5, true, 0.0)];
        // A non-finite loss beats them all.
        assert_eq!(
            stop(&rule, &[(0.5, false, 0.0)]),
            (0, StopReason::NonFinite)
        );
        assert_eq!(stop(&rule, &t0), (0, StopReason::Threshold));
        rule.threshold = None;
        assert_eq!(stop(&rule, &t0), (0, StopReason::Divergence));
        rule.divergence = None;
        assert_eq!(stop(&rule, &t0), (0, StopReason::MaxIter));
        rule.max_iter = 5;
        assert_eq!(stop(&rule, &t0), (0, StopReason::MaxTime));

        // At t = 1 (patience cannot hold at t = 0): 0.75 meets the threshold, is below the
        // divergence bound 0.875, is no improvement on 0.5 with delta 0.5 (patience 1),
        // t = max_iter = 1 and the time is up.
        let mut rule = StopRule {
            threshold: Some(0.75),
            divergence: Some(0.875),
            patience: Some(1),
            min_delta: MinDelta::Abs(0.5),
            max_iter: 1,
            max_time: Some(1.0),
            ..Default::default()
        };
        // t = 0 must continue: 0.9 meets neither the threshold nor... it does; use 0.875 at
        // t = 0 with the threshold at 0.9 instead.
        rule.threshold = Some(0.875);
        rule.divergence = Some(0.5);
        // Now t = 0 with 0.625: below 0.875 (no threshold), not below 0.5 (no divergence).
        // t = 1 with 0.875: meets the threshold, gain 0.25 ≤ 0.5 is no improvement.
        let obs = [(0.625, true, 0.0), (0.875, true, 3.0)];
        assert_eq!(
            stop(&rule, &[obs[0], (0.875, false, 3.0)]),
            (1, StopReason::NonFinite)
        );
        assert_eq!(stop(&rule, &obs), (1, StopReason::Threshold));
        rule.threshold = None;
        // Divergence and patience together: 0.375 < 0.5, no improvement.
        let worse = [(0.625, true, 0.0), (0.375, true, 3.0)];
        assert_eq!(stop(&rule, &worse), (1, StopReason::Divergence));
        rule.divergence = None;
        assert_eq!(stop(&rule, &worse), (1, StopReason::Patience));
        assert_eq!(stop(&rule, &obs), (1, StopReason::Patience));
        rule.patience = None;
        assert_eq!(stop(&rule, &obs), (1, StopReason::MaxIter));
        rule.max_iter = 100;
        assert_eq!(stop(&rule, &obs), (1, StopReason::MaxTime));
        rule.max_time = None;
        assert_eq!(
            stop(&rule, &[obs[0], obs[1], (0.5, false, 9.0)]),
            (2, StopReason::NonFinite)
        );
    }

    #[test]
    fn best_after_a_run() {
        let rule = patient(Metric::Accuracy, 3, MinDelta::Abs(0.0), 100);
        let (t, r, best, steps) = run_obs(rule, &plain(&[0.5, 0.75, 0.625, 0.75, 0.6875, 0.5]));
        // The tie at t = 3 does not move the best: it stays at the first 0.75.
        assert_eq!((t, r, best), (4, StopReason::Patience, Some((1, 0.75))));
        assert_eq!(improvements(&steps), [0, 1]);
        // After max_iter the best is still the last improvement, not the last iteration.
        let rule = StopRule {
            max_iter: 3,
            ..Default::default()
        };
        let mut e = StopEngine::new(rule);
        for (t, v) in [0.25, 0.5, 0.375, 0.4375].into_iter().enumerate() {
            let s = e.observe(t as u64, v, true, 0.0);
            assert_eq!(s.decision == Decision::Continue, t < 3);
        }
        assert_eq!(e.best(), Some((1, 0.5)));
        assert_eq!(e.wait(), 2);
    }

    #[test]
    fn loss_improves_downwards() {
        let rule = patient(Metric::Loss, 3, MinDelta::Abs(0.125), 100);
        // 1 → 0.75 gains 0.25 (improvement); 0.75 ties; 0.875 is worse; 0.5 gains 0.25; 0.4375
        // gains 0.0625 ≤ 0.125; 0.375 gains exactly 0.125 (not an improvement); 0.4 is worse.
        let seq = [1.0, 0.75, 0.75, 0.875, 0.5, 0.4375, 0.375, 0.4];
        let (t, r, best, steps) = run_obs(rule, &plain(&seq));
        assert_eq!((t, r, best), (7, StopReason::Patience, Some((4, 0.5))));
        assert_eq!(improvements(&steps), [0, 1, 4]);
        // A higher loss never improves, even by a lot.
        let rule = patient(Metric::Loss, 1, MinDelta::Abs(0.0), 100);
        assert_eq!(
            stop_best(rule, &[1.0, 5.0]),
            (1, StopReason::Patience, Some((0, 1.0)))
        );
    }

    #[test]
    fn decimal_delta_ties_are_ties() {
        // 0.51 - 0.50 is 0.010000000000000009 in f64: still a tie with min_delta 0.01.
        let rule = StopRule {
            patience: Some(1),
            min_delta: MinDelta::Abs(0.01),
            ..Default::default()
        };
        assert_eq!(run(rule.clone(), &[0.50, 0.51]), (1, StopReason::Patience));
        let mut e = StopEngine::new(rule);
        e.observe(0, 0.50, true, 0.0);
        assert!(e.observe(1, 0.5101, true, 0.0).improved);
        let loss = StopRule {
            metric: Metric::Loss,
            patience: Some(1),
            min_delta: MinDelta::Abs(0.1),
            ..Default::default()
        };
        // 0.3 - 0.2 = 0.09999999999999998 < 0.1 by rounding only: a tie too.
        assert_eq!(run(loss, &[0.3, 0.2]), (1, StopReason::Patience));
    }
}

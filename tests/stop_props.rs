//! The stop engine against a brute-force evaluator written independently from the semantics in
//! the doc comment of `wgtrain::stop` (and docs/stopping.md): for every iteration t the oracle
//! recomputes everything from the prefix 0..=t of the sequence — which iterations are checks,
//! which checks count (t ≥ warm-up), which of those are improvements, the best, and the run of
//! non-improving checks since the last improvement — and then applies the rules in their order.
//!
//! Values, deltas, thresholds, bounds and times are mostly multiples of 1/16 (or 1/4 for the
//! times), so sums and differences are exact and ties with the threshold, the divergence bound,
//! best + delta and the time limit happen often; a few values are arbitrary floats.

use proptest::prelude::*;
use wgtrain::metrics::Metric;
use wgtrain::stop::{Decision, MinDelta, StopEngine, StopReason, StopRule};

/// The longest run generated: max_iter ≤ MAX_ITER, so at most MAX_ITER + 1 iterations.
const MAX_ITER: u64 = 40;

/// One iteration's input: the watched value, whether every loss is finite, elapsed seconds.
#[derive(Clone, Copy, Debug)]
struct Obs {
    value: f64,
    finite: bool,
    elapsed: f64,
}

/// What the oracle or the engine says about a whole run.
#[derive(Clone, Debug, PartialEq)]
struct Verdict {
    stop_at: u64,
    reason: StopReason,
    best: Option<(u64, f64)>,
    /// For each iteration 0..=stop_at: (was a check, was an improvement).
    steps: Vec<(bool, bool)>,
    /// Non-improving counted checks since the last improvement, after the last iteration.
    wait: u64,
}

// ---------------------------------------------------------------------------------------------
// The oracle. It uses nothing from wgtrain::stop but the types it returns.

fn higher_is_better(metric: Metric) -> bool {
    !matches!(metric, Metric::Loss)
}

/// t is a check: a multiple of eval_every, or the last iteration.
fn oracle_is_check(rule: &StopRule, t: u64) -> bool {
    t == rule.max_iter || t % rule.eval_every == 0
}

/// `value` beats `best` by more than the delta (absolute, or a fraction of |best|).
fn oracle_beats(rule: &StopRule, value: f64, best: f64) -> bool {
    let gain = if higher_is_better(rule.metric) {
        value - best
    } else {
        best - value
    };
    let needed = match rule.min_delta {
        MinDelta::Abs(d) => d,
        MinDelta::Rel(r) => r * best.abs(),
    };
    // A gain within a few ulps of `needed` is a tie (0.51 − 0.5 vs 0.01).
    gain - needed > 4.0 * f64::EPSILON * value.abs().max(best.abs()).max(needed.abs())
}

/// Everything the rules need at iteration `t`, recomputed from the prefix `seq[..=last]`.
struct Prefix {
    /// The counted checks (checks at t' ≥ warm-up, t' ≤ last) and whether each improved.
    counted: Vec<(u64, bool)>,
    best: Option<(u64, f64)>,
    /// Counted checks after the last improvement.
    run_without_improvement: u64,
}

fn prefix(rule: &StopRule, seq: &[Obs], last: Option<u64>) -> Prefix {
    let mut counted = Vec::new();
    let mut best: Option<(u64, f64)> = None;
    if let Some(last) = last {
        for t in 0..=last {
            if !oracle_is_check(rule, t) || t < rule.warmup {
                continue;
            }
            let v = seq[t as usize].value;
            let improved = match best {
                None => true,
                Some((_, b)) => oracle_beats(rule, v, b),
            };
            if improved {
                best = Some((t, v));
            }
            counted.push((t, improved));
        }
    }
    let run_without_improvement = counted
        .iter()
        .rev()
        .take_while(|&&(_, improved)| !improved)
        .count() as u64;
    Prefix {
        counted,
        best,
        run_without_improvement,
    }
}

fn oracle(rule: &StopRule, seq: &[Obs]) -> Verdict {
    let mut steps = Vec::new();
    for t in 0..=rule.max_iter {
        let o = seq[t as usize];
        let check = oracle_is_check(rule, t);
        // A non-finite iteration is not evaluated: the state is that of the prefix before it.
        if !o.finite || o.value.is_nan() || o.value.is_infinite() {
            let before = prefix(rule, seq, t.checked_sub(1));
            steps.push((check, false));
            return Verdict {
                stop_at: t,
                reason: StopReason::NonFinite,
                best: before.best,
                steps,
                wait: before.run_without_improvement,
            };
        }
        let p = prefix(rule, seq, Some(t));
        let improved_here = p.counted.last() == Some(&(t, true));
        steps.push((check, improved_here));
        let v = o.value;
        let hib = higher_is_better(rule.metric);
        let threshold = rule
            .threshold
            .is_some_and(|th| if hib { v >= th } else { v <= th });
        let divergence = rule
            .divergence
            .is_some_and(|d| if hib { v < d } else { v > d });
        let patience = rule.patience.is_some_and(|pat| {
            let counted_here = p.counted.last().is_some_and(|&(c, _)| c == t);
            counted_here && p.run_without_improvement >= pat.max(1)
        });
        let reason = if check && threshold {
            Some(StopReason::Threshold)
        } else if check && divergence {
            Some(StopReason::Divergence)
        } else if check && patience {
            Some(StopReason::Patience)
        } else if t == rule.max_iter {
            Some(StopReason::MaxIter)
        } else if rule.max_time.is_some_and(|m| o.elapsed >= m) {
            Some(StopReason::MaxTime)
        } else {
            None
        };
        if let Some(reason) = reason {
            return Verdict {
                stop_at: t,
                reason,
                best: p.best,
                steps,
                wait: p.run_without_improvement,
            };
        }
    }
    unreachable!("t = max_iter always stops")
}

// ---------------------------------------------------------------------------------------------
// The engine, driven the way the training loop drives it.

fn engine(rule: &StopRule, seq: &[Obs]) -> Verdict {
    let mut e = StopEngine::new(rule.clone());
    let mut steps = Vec::new();
    for (t, o) in seq.iter().enumerate() {
        let t = t as u64;
        let s = e.observe(t, o.value, o.finite, o.elapsed);
        steps.push((s.checked, s.improved));
        if let Decision::Stop(reason) = s.decision {
            return Verdict {
                stop_at: t,
                reason,
                best: e.best(),
                steps,
                wait: e.wait(),
            };
        }
    }
    panic!("the engine ran past max_iter = {}", rule.max_iter)
}

// ---------------------------------------------------------------------------------------------
// Strategies.

/// k/16 for k in lo..=hi.
fn sixteenths(lo: u32, hi: u32) -> impl Strategy<Value = f64> {
    (lo..=hi).prop_map(|k| f64::from(k) / 16.0)
}

fn metric() -> impl Strategy<Value = Metric> {
    prop_oneof![Just(Metric::Accuracy), Just(Metric::Loss)]
}

/// A value of the metric's range: [0, 1] for a score, [0, 2] for the loss (on the grid).
fn level(metric: Metric) -> BoxedStrategy<f64> {
    match metric {
        Metric::Loss => sixteenths(0, 32).boxed(),
        _ => sixteenths(0, 16).boxed(),
    }
}

fn rule() -> impl Strategy<Value = StopRule> {
    metric().prop_flat_map(|metric| {
        let min_delta = prop_oneof![
            prop_oneof![Just(0.0), sixteenths(1, 4)].prop_map(MinDelta::Abs),
            prop_oneof![Just(0.0), Just(0.125), Just(0.25), Just(0.5)].prop_map(MinDelta::Rel),
        ];
        (
            proptest::option::weighted(0.3, level(metric)),
            0..=MAX_ITER,
            proptest::option::weighted(0.7, 0..6u64),
            min_delta,
            prop_oneof![2 => Just(0u64), 3 => 0..=12u64, 1 => 0..=60u64],
            proptest::option::weighted(0.3, level(metric)),
            proptest::option::weighted(0.3, (0..=40u32).prop_map(|k| f64::from(k) / 4.0)),
            1..=5u64,
        )
            .prop_map(
                move |(
                    threshold,
                    max_iter,
                    patience,
                    min_delta,
                    warmup,
                    divergence,
                    max_time,
                    eval_every,
                )| StopRule {
                    metric,
                    threshold,
                    max_iter,
                    patience,
                    min_delta,
                    warmup,
                    divergence,
                    max_time,
                    eval_every,
                },
            )
    })
}

/// A sequence of MAX_ITER + 1 observations for `metric`. Values are either independent draws
/// from the grid or a random walk on it in steps of at most 2/16 (which makes gains equal to
/// the delta and long plateaus common); some are arbitrary, a few NaN or ±inf; a loss is
/// rarely flagged non-finite; elapsed times are non-decreasing in steps of 0, 1/4, 1/2 or 1 s.
fn sequence(metric: Metric) -> impl Strategy<Value = Vec<Obs>> {
    let hi: u32 = if metric == Metric::Loss { 32 } else { 16 };
    let n = (MAX_ITER + 1) as usize;
    let special = prop_oneof![
        997 => Just(None),
        1 => Just(Some(f64::NAN)),
        1 => Just(Some(f64::INFINITY)),
        1 => Just(Some(f64::NEG_INFINITY)),
    ];
    let arbitrary = proptest::option::weighted(0.05, 0.0..=f64::from(hi) / 16.0);
    let finite = proptest::bool::weighted(0.997);
    let step = prop_oneof![Just(0.0), Just(0.25), Just(0.5), Just(1.0)];
    let per_iter = (0..=hi, -2..=2i32, arbitrary, special, finite, step);
    (
        any::<bool>(),
        0..=hi,
        proptest::collection::vec(per_iter, n),
    )
        .prop_map(move |(walk, start, v)| {
            let (mut elapsed, mut k) = (0.0, start);
            v.into_iter()
                .enumerate()
                .map(|(t, (draw, dk, arbitrary, special, finite, step))| {
                    if t > 0 {
                        elapsed += step;
                        k = if walk {
                            (k as i32 + dk).clamp(0, hi as i32) as u32
                        } else {
                            draw
                        };
                    }
                    let value = special.or(arbitrary).unwrap_or(f64::from(k) / 16.0);
                    Obs {
                        value,
                        finite,
                        elapsed,
                    }
                })
                .collect()
        })
}

fn case() -> impl Strategy<Value = (StopRule, Vec<Obs>)> {
    rule().prop_flat_map(|r| {
        let m = r.metric;
        (Just(r), sequence(m))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn engine_matches_brute_force((rule, seq) in case()) {
        let want = oracle(&rule, &seq);
        let got = engine(&rule, &seq);
        prop_assert_eq!(got, want);
    }
}

/// The generators reach every reason and the interesting corners often enough that the
/// property above means something.
#[test]
fn the_generators_cover_every_reason() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeMap::new();
    let (mut warmup_past_run, mut tie_not_improving, mut non_check_stop) = (0, 0, 0);
    for _ in 0..4000 {
        let (rule, seq) = case().new_tree(&mut runner).unwrap().current();
        let v = oracle(&rule, &seq);
        *seen.entry(v.reason.name()).or_insert(0u32) += 1;
        warmup_past_run += u32::from(rule.warmup > rule.max_iter);
        non_check_stop += u32::from(!v.steps.last().unwrap().0);
        // A check whose gain equals the delta exactly.
        tie_not_improving += u32::from((1..=v.stop_at as usize).any(|t| {
            let MinDelta::Abs(d) = rule.min_delta else {
                return false;
            };
            let (Some((_, b)), true) = (prefix(&rule, &seq, Some(t as u64 - 1)).best, v.steps[t].0)
            else {
                return false;
            };
            let gain = if higher_is_better(rule.metric) {
                seq[t].value - b
            } else {
                b - seq[t].value
            };
            d > 0.0 && gain == d && t as u64 >= rule.warmup
        }));
    }
    eprintln!(
        "{seen:?} warmup_past_run={warmup_past_run} tie={tie_not_improving} non_check={non_check_stop}"
    );
    for reason in [
        "threshold",
        "patience",
        "divergence",
        "non_finite",
        "max_iter",
        "max_time",
    ] {
        let n = seen.get(reason).copied().unwrap_or(0);
        assert!(n >= 40, "only {n} runs stop on {reason}: {seen:?}");
    }
    assert!(warmup_past_run >= 40, "{warmup_past_run}");
    assert!(tie_not_improving >= 40, "{tie_not_improving}");
    assert!(non_check_stop >= 40, "{non_check_stop}");
}

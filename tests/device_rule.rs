//! The stop rule in WGSL (shaders/stop_rule.wgsl) held to the host engine (src/stop.rs) on the
//! same metric sequences: until it pauses, the device agrees with the host on every check and
//! improvement, and it pauses no later than the iteration where the host stops.

mod common;

use common::*;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use wgtrain::backend::gpu::device_rule_trace;
use wgtrain::backend::{ChunkRule, Evaluation};
use wgtrain::metrics::{Counts, Metric, Metrics};
use wgtrain::stop::{Decision, MinDelta, StopEngine, StopRule};

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A random walk of confusion counts and losses with many exact repeats (plateaus).
fn sequence(rng: &mut ChaCha8Rng, len: usize, rows: u64) -> Vec<Counts> {
    let pos = 1 + below(rng, rows - 1);
    let mut loss_sum = 0.7 * rows as f64;
    let (mut tp, mut tn) = (below(rng, pos + 1), 0u64);
    let mut out = Vec::new();
    for _ in 0..len {
        if below(rng, 3) != 0 {
            tp = (tp as i64 + below(rng, 5) as i64 - 2).clamp(0, pos as i64) as u64;
            tn = (tn as i64 + below(rng, 5) as i64 - 2).clamp(0, (rows - pos) as i64) as u64;
            loss_sum = ((loss_sum * (0.9 + 0.15 * unit(rng))) as f32) as f64;
        }
        let mut e = Counts::binary(loss_sum, tp, rows - pos - tn, pos - tp, tn);
        if below(rng, 40) == 0 {
            e.loss_sum = f64::NAN;
        }
        out.push(e);
    }
    out
}

fn metric(rng: &mut ChaCha8Rng) -> Metric {
    [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
        Metric::Iou,
        Metric::Loss,
    ][below(rng, 6) as usize]
}

/// A random walk of K × K confusion counts (K ≥ 3) with fixed supports: each step moves a few
/// rows of some true classes between predicted classes (often none: plateaus); sometimes a
/// class has no rows, or is never predicted.
fn sequence_k(rng: &mut ChaCha8Rng, len: usize, rows: u64, k: usize) -> Vec<Counts> {
    let mut m = vec![0u64; k * k];
    let absent = below(rng, 3) == 0;
    for r in 0..rows {
        let t = if absent {
            r as usize % (k - 1)
        } else {
            below(rng, k as u64) as usize
        };
        m[t * k + below(rng, k as u64) as usize] += 1;
    }
    let mut loss_sum = 1.5 * rows as f64;
    let mut out = Vec::new();
    for _ in 0..len {
        if below(rng, 3) != 0 {
            for _ in 0..1 + below(rng, 3) {
                let t = below(rng, k as u64) as usize;
                let (from, to) = (below(rng, k as u64) as usize, below(rng, k as u64) as usize);
                if m[t * k + from] > 0 {
                    m[t * k + from] -= 1;
                    m[t * k + to] += 1;
                }
            }
            loss_sum = ((loss_sum * (0.9 + 0.15 * unit(rng))) as f32) as f64;
        }
        let mut e = Counts {
            loss_sum,
            confusion: m.clone(),
        };
        if below(rng, 40) == 0 {
            e.loss_sum = f64::NAN;
        }
        out.push(e);
    }
    out
}

#[test]
fn device_rule_agrees_with_the_host_engine() {
    agree_on_walks(7, 300, sequence, 100);
}

/// Macro averages over K ≥ 3 classes (and accuracy and the loss) on random K × K walks.
#[test]
fn device_rule_agrees_on_macro_metrics() {
    for (seed, k, stops) in [(8, 3, 100), (9, 7, 100), (10, 40, 80), (11, 256, 10)] {
        let cases = if k == 256 { 20 } else { 150 };
        agree_on_walks(
            seed,
            cases,
            |rng, len, rows| sequence_k(rng, len, rows, k),
            stops,
        );
    }
}

/// Holds the device rule to the host engine on `cases` random rules over walks from `walk`
/// (training and sometimes validation counts); at least `min_stops` must stop where the
/// host does.
fn agree_on_walks(
    seed: u64,
    cases: usize,
    walk: impl Fn(&mut ChaCha8Rng, usize, u64) -> Vec<Counts>,
    min_stops: usize,
) {
    let Some(ctx) = gpu_context() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut pauses_at_host_stop, mut early_pauses) = (0, 0);
    for case in 0..cases {
        let rows = 2 + below(&mut rng, 300);
        let len = 1 + below(&mut rng, 60) as usize;
        let train = walk(&mut rng, len, rows);
        let val_rows = 2 + below(&mut rng, 100);
        let val = (below(&mut rng, 2) == 0).then(|| walk(&mut rng, len, val_rows));
        let seq: Vec<Evaluation> = (0..len)
            .map(|i| Evaluation {
                train: train[i].clone(),
                val: val.as_ref().map(|v| v[i].clone()),
            })
            .collect();
        let monitor_val = val.is_some() && below(&mut rng, 2) == 0;
        let m = metric(&mut rng);
        let watched = |e: &Evaluation| {
            let c = if monitor_val {
                e.val.clone().unwrap()
            } else {
                e.train.clone()
            };
            Metrics::from_counts(&c).get(m)
        };
        // Bounds often equal to a value the sequence takes, to make exact ties.
        let some_value = |rng: &mut ChaCha8Rng| watched(&seq[below(rng, len as u64) as usize]);
        let threshold = match below(&mut rng, 3) {
            0 => None,
            1 => Some(some_value(&mut rng)),
            _ => Some(unit(&mut rng)),
        };
        let divergence = (below(&mut rng, 3) == 0).then(|| some_value(&mut rng));
        let min_delta = match below(&mut rng, 4) {
            0 => MinDelta::Abs(0.0),
            1 => MinDelta::Abs(1.0 / rows as f64),
            2 => MinDelta::Abs(0.01),
            _ => MinDelta::Rel(0.01),
        };
        let rule = StopRule {
            metric: m,
            threshold: threshold.filter(|t| t.is_finite()),
            divergence: divergence.filter(|d| d.is_finite()),
            patience: (below(&mut rng, 3) != 0).then(|| below(&mut rng, 5)),
            min_delta,
            warmup: below(&mut rng, 8),
            eval_every: 1 + below(&mut rng, 4),
            max_iter: len as u64 - 1 + below(&mut rng, 3),
            max_time: None,
        };
        let cr = ChunkRule {
            rule: rule.clone(),
            monitor_val,
            restore_best: below(&mut rng, 2) == 0,
        };
        let tracking = rule.patience.is_some() || cr.restore_best;
        let device = device_rule_trace(&ctx, &cr, val.is_some(), &seq).expect("trace");

        let mut host = StopEngine::new(rule.clone());
        let mut host_stop = None;
        for (t, e) in seq.iter().enumerate() {
            let finite = e.train.loss_sum.is_finite()
                && e.val.as_ref().is_none_or(|v| v.loss_sum.is_finite());
            let step = host.observe(t as u64, watched(e), finite, 0.0);
            let Some(d) = device.get(t) else { break };
            let what = format!("case {case}, t {t}: rule {rule:?}, device {d:?}, host {step:?}");
            assert_eq!(d.t, t as u64, "{what}");
            if d.paused {
                break;
            }
            assert_eq!(
                step.decision,
                Decision::Continue,
                "the device ran past a stop: {what}"
            );
            assert_eq!(d.checked, step.checked, "{what}");
            if tracking {
                assert_eq!(d.improved, step.improved, "{what}");
            }
            if let Decision::Stop(_) = step.decision {
                host_stop = Some(t);
            }
        }
        // Where the host stops, the device has paused at or before.
        let mut replay = StopEngine::new(rule.clone());
        let stop_at = seq.iter().enumerate().position(|(t, e)| {
            let finite = e.train.loss_sum.is_finite()
                && e.val.as_ref().is_none_or(|v| v.loss_sum.is_finite());
            replay.observe(t as u64, watched(e), finite, 0.0).decision != Decision::Continue
        });
        if let Some(s) = stop_at {
            let last = device
                .last()
                .expect("the device ran at least one iteration");
            assert!(
                last.paused && last.t as usize <= s,
                "case {case}: host stops at {s}, device {last:?}"
            );
            if last.t as usize == s {
                pauses_at_host_stop += 1;
            } else {
                early_pauses += 1;
            }
        } else if device.iter().any(|d| d.paused) {
            // Allowed: a pause only hands the verdict to the host, which then resumes.
            early_pauses += 1;
        }
        assert!(host_stop.is_none());
    }
    // The sequences must exercise stops, not only continuations.
    assert!(
        pauses_at_host_stop > min_stops,
        "{pauses_at_host_stop} stops, {early_pauses} early pauses"
    );
}

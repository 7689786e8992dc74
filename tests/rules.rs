//! Stop rules judged on held-out data: each rule fires at the same iteration on CPU and GPU,
//! patience stops where a brute-force reading of the log says, and `restore_best` returns the
//! weights whose metric the log recorded as the best.

mod common;

use common::*;
use wgtrain::backend::gpu::{GpuSession, KernelPath};
use wgtrain::backend::{Session, SessionConfig};
use wgtrain::data::Dataset;
use wgtrain::metrics::{Metric, Metrics};
use wgtrain::model::{Activation, ModelSpec};
use wgtrain::stop::{MinDelta, StopReason, StopRule};
use wgtrain::train::{CheckRecord, Monitor, Outcome, SyncMode, TrainOptions};

struct Case {
    train: Dataset,
    val: Dataset,
    spec: ModelSpec,
    cfg: SessionConfig,
}

fn case(seed: u64, hidden: &[usize], lr: f32) -> Case {
    let (train, val) = moons_split(240, seed);
    let spec = spec(&train, hidden, Activation::Tanh);
    let cfg = config(&spec, lr, seed);
    Case {
        train,
        val,
        spec,
        cfg,
    }
}

fn run(kind: Kind, c: &Case, opts: &TrainOptions) -> Option<(Outcome, Vec<CheckRecord>)> {
    let mut s = session_val(kind, &c.train, Some(&c.val), &c.spec, &c.cfg)?;
    Some(train_with(s.as_mut(), opts))
}

fn val_loss_rule(patience: u64) -> StopRule {
    StopRule {
        metric: Metric::Loss,
        patience: Some(patience),
        max_iter: 3000,
        ..Default::default()
    }
}

fn opts(rule: StopRule, restore_best: bool) -> TrainOptions {
    TrainOptions {
        monitor: Monitor::Val,
        restore_best,
        ..TrainOptions::new(rule)
    }
}

/// The first check index at which `patience` non-improving checks in a row have happened,
/// read straight off the logged values (min mode, absolute delta).
fn brute_force_patience(values: &[f64], patience: usize, delta: f64) -> Option<usize> {
    let mut best = f64::INFINITY;
    let mut run = 0;
    for (i, &v) in values.iter().enumerate() {
        if i == 0 || best - v > delta {
            best = v;
            run = 0;
        } else {
            run += 1;
            if run >= patience {
                return Some(i);
            }
        }
    }
    None
}

both_backends! {
    fn patience_stops_where_the_log_says(kind) {
        let c = case(21, &[8], 2.0);
        let rule = StopRule { min_delta: MinDelta::Abs(1e-4), eval_every: 3, ..val_loss_rule(4) };
        let Some((out, log)) = run(kind, &c, &opts(rule, false)) else { return };
        assert_eq!(out.stop.reason, StopReason::Patience, "{:?}", out.stop);
        let vals: Vec<f64> = log.iter().map(|r| r.val.unwrap().loss).collect();
        let at = brute_force_patience(&vals, 4, 1e-4).expect("the log shows a plateau");
        assert_eq!(at, log.len() - 1, "stops at the first plateau");
        assert_eq!(out.stop.stopped_at, log[at].iteration);
        assert!(log.iter().all(|r| r.iteration % 3 == 0), "checks every 3 iterations");
        assert!(out.stop.stopped_at > 30, "the case must need training");
    }

    fn restore_best_returns_the_logged_best(kind) {
        let c = case(22, &[8], 2.0);
        let Some((out, log)) = run(kind, &c, &opts(val_loss_rule(5), true)) else { return };
        let best = out.stop.best_iteration.expect("a best check");
        assert!(out.stop.restored_best);
        assert_eq!(out.stop.iteration, best);
        assert!(out.stop.stopped_at > best);
        let row = log.iter().find(|r| r.iteration == best).unwrap();
        assert_eq!(out.stop.best_value, Some(row.val.unwrap().loss));
        assert_eq!(out.val_metrics, row.val);
        assert_eq!(out.metrics, row.train);
        // The returned weights, evaluated afresh, give the logged best exactly.
        let fresh_cfg = SessionConfig { params: out.params.clone(), lr: c.cfg.lr, ..Default::default() };
        let mut s = session_val(kind, &c.train, Some(&c.val), &c.spec, &fresh_cfg).unwrap();
        let e = s.evaluate().unwrap();
        assert_eq!(Metrics::from_counts(&e.val.unwrap()), row.val.unwrap());
        // And they are the weights after exactly `best` updates.
        let fresh = session_val(kind, &c.train, Some(&c.val), &c.spec, &c.cfg).unwrap();
        assert_eq!(bits(&out.params), bits(&params_after(fresh, best)));
    }

    // Without an early stop, restore_best still returns the best check (as Keras does now).
    fn restore_best_without_an_early_stop(kind) {
        let c = case(23, &[4], 3.0);
        let rule = StopRule { max_iter: 60, ..val_loss_rule(1_000) };
        let Some((out, log)) = run(kind, &c, &opts(rule, true)) else { return };
        assert_eq!(out.stop.reason, StopReason::MaxIter);
        let best = log
            .iter()
            .min_by(|a, b| a.val.unwrap().loss.total_cmp(&b.val.unwrap().loss))
            .unwrap();
        assert_eq!(out.stop.iteration, best.iteration);
        assert_eq!(out.val_metrics, best.val);
    }

    // Checks before the warm-up neither set the best nor count: with a warm-up past max_iter
    // there is no best, and restore_best returns the last weights.
    fn warmup_longer_than_the_run(kind) {
        let c = case(24, &[4], 0.5);
        let rule = StopRule { max_iter: 20, warmup: 50, ..val_loss_rule(1) };
        let Some((out, _)) = run(kind, &c, &opts(rule, true)) else { return };
        assert_eq!((out.stop.reason, out.stop.iteration), (StopReason::MaxIter, 20));
        assert_eq!(out.stop.best_iteration, None);
        assert!(!out.stop.restored_best);
    }

    // With a readback per iteration the first check already stops; in chunks the host looks
    // at the clock once per chunk, at its end (the first chunk is 4 iterations).
    fn max_time_stops_the_run(kind) {
        let c = case(25, &[4], 0.5);
        let rule = StopRule { max_time: Some(1e-9), ..val_loss_rule(10) };
        let every = TrainOptions { sync: SyncMode::Every, ..opts(rule.clone(), false) };
        let Some((out, log)) = run(kind, &c, &every) else { return };
        assert_eq!((out.stop.reason, out.stop.iteration), (StopReason::MaxTime, 0));
        assert_eq!(log.len(), 1);
        let Some((out, _)) = run(kind, &c, &opts(rule, false)) else { return };
        let expected = if kind == Kind::Gpu { 3 } else { 0 };
        assert_eq!((out.stop.reason, out.stop.iteration), (StopReason::MaxTime, expected));
    }
}

/// Rules that fire on CPU and GPU alike, to the iteration.
#[test]
fn each_rule_fires_at_the_same_iteration_on_cpu_and_gpu() {
    let base = val_loss_rule(5);
    let cases: Vec<(&str, Case, TrainOptions)> = vec![
        (
            "threshold on val accuracy",
            case(31, &[8], 1.0),
            opts(
                StopRule {
                    metric: Metric::Accuracy,
                    threshold: Some(0.97),
                    patience: None,
                    ..base.clone()
                },
                false,
            ),
        ),
        (
            "patience on val loss",
            case(32, &[8], 2.0),
            opts(base.clone(), false),
        ),
        (
            "patience, relative delta, eval every 7, warm-up",
            case(33, &[6], 2.0),
            opts(
                StopRule {
                    min_delta: MinDelta::Rel(1e-3),
                    eval_every: 7,
                    warmup: 40,
                    ..base.clone()
                },
                true,
            ),
        ),
        (
            "divergence of the training loss",
            case(34, &[6], 10.0),
            TrainOptions {
                rule: StopRule {
                    divergence: Some(3.0),
                    patience: None,
                    max_iter: 500,
                    ..base.clone()
                },
                monitor: Monitor::Train,
                restore_best: false,
                ..TrainOptions::new(StopRule::default())
            },
        ),
        (
            "max_iter with f1 and eval every 4",
            case(35, &[5, 3], 0.5),
            opts(
                StopRule {
                    metric: Metric::F1,
                    patience: None,
                    max_iter: 49,
                    eval_every: 4,
                    ..base.clone()
                },
                true,
            ),
        ),
    ];
    for (name, c, o) in cases {
        let Some((g, _)) = run(Kind::Gpu, &c, &o) else {
            return;
        };
        let (cpu, _) = run(Kind::Cpu, &c, &o).unwrap();
        assert!(
            cpu.stop.stopped_at > 2,
            "{name}: the case must need training: {:?}",
            cpu.stop
        );
        assert_eq!(
            (
                g.stop.reason,
                g.stop.stopped_at,
                g.stop.iteration,
                g.stop.best_iteration
            ),
            (
                cpu.stop.reason,
                cpu.stop.stopped_at,
                cpu.stop.iteration,
                cpu.stop.best_iteration
            ),
            "{name}"
        );
    }
}

/// The validation forward pass and reduction agree with the CPU every iteration (an MLP, and
/// logistic regression in one workgroup).
#[test]
fn validation_metrics_agree_per_iteration() {
    for hidden in [&[7][..], &[]] {
        validation_metrics_agree(hidden);
    }
}

fn validation_metrics_agree(hidden: &[usize]) {
    let c = case(36, hidden, 1.0);
    let Some(ctx) = gpu_context() else {
        return;
    };
    let mut g = GpuSession::new(ctx, &c.train, Some(&c.val), &c.spec, &c.cfg).unwrap();
    assert_eq!(g.path() == KernelPath::OneWorkgroup, hidden.is_empty());
    let mut p = session_val(Kind::Cpu, &c.train, Some(&c.val), &c.spec, &c.cfg).unwrap();
    for t in 0..20 {
        let (eg, ep) = (g.evaluate().unwrap(), p.evaluate().unwrap());
        let (vg, vp) = (eg.val.unwrap(), ep.val.unwrap());
        assert_eq!(
            (vg.tp(), vg.fp(), vg.fn_(), vg.tn()),
            (vp.tp(), vp.fp(), vp.fn_(), vp.tn()),
            "iteration {t}"
        );
        assert!(
            (vg.loss_sum - vp.loss_sum).abs() <= 1e-5 * vp.loss_sum.abs(),
            "iteration {t}"
        );
        assert_eq!(vp.tp() + vp.fp() + vp.fn_() + vp.tn(), c.val.rows as u64);
        g.update().unwrap();
        p.update().unwrap();
    }
}

/// A three-class case (spirals, softmax head) with a stratified validation split.
fn case_k3(seed: u64, hidden: &[usize], lr: f32) -> Case {
    use wgtrain::data::{Demo, Standardizer, split_stratified};
    let d = demo_k(Demo::Spirals, 300, None, 3, 0.05, seed);
    let (mut train, mut val) = split_stratified(&d, 0.3, seed).unwrap();
    let s = Standardizer::fit(&train);
    s.apply(&mut train);
    s.apply(&mut val);
    let spec = spec_k(&train, hidden, Activation::Tanh, 3);
    let cfg = config(&spec, lr, seed);
    Case {
        train,
        val,
        spec,
        cfg,
    }
}

/// K = 3 on the GPU (the device judges macro F1 from the K × K counts): patience stops where
/// a brute-force reading of the logged macro F1 says, and restore-best returns the weights
/// of the logged best, after exactly that many updates.
#[test]
fn macro_f1_patience_and_restore_best_three_classes() {
    let c = case_k3(26, &[16], 2.0);
    let rule = StopRule {
        metric: Metric::F1,
        patience: Some(20),
        min_delta: MinDelta::Abs(1e-3),
        max_iter: 3000,
        ..Default::default()
    };
    let Some((out, log)) = run(Kind::Gpu, &c, &opts(rule, true)) else {
        return;
    };
    assert_eq!(out.stop.reason, StopReason::Patience, "{:?}", out.stop);
    assert!(
        out.stop.stopped_at > 30,
        "the case must need training: {:?}",
        out.stop
    );
    // Higher is better: brute-force the plateau on −F1.
    let vals: Vec<f64> = log.iter().map(|r| -r.val.unwrap().f1).collect();
    let at = brute_force_patience(&vals, 20, 1e-3).expect("the log shows a plateau");
    assert_eq!(at, log.len() - 1, "stops at the first plateau");
    let best = out.stop.best_iteration.expect("a best check");
    let row = log.iter().find(|r| r.iteration == best).unwrap();
    assert_eq!(out.val_metrics, row.val);
    assert_eq!(out.stop.best_value, Some(row.val.unwrap().f1));
    let fresh = session_val(Kind::Gpu, &c.train, Some(&c.val), &c.spec, &c.cfg).unwrap();
    assert_eq!(bits(&out.params), bits(&params_after(fresh, best)));
}

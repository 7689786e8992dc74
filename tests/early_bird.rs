//! The early-bird stop rule (`train --early-bird S`): the stop iteration and weights against a
//! session driven by hand, on both backends and the GPU's sync modes, at full batch and with
//! mini-batches; a mask that never settles; the engine's rules keeping priority; the flags.

mod common;

use common::cli::{assert_contains_all, train_fails, train_json, train_run};
use common::*;
use wgtrain::backend::{Session, SessionConfig};
use wgtrain::batches::Batching;
use wgtrain::data::Dataset;
use wgtrain::early_bird::EarlyBird;
use wgtrain::masks;
use wgtrain::metrics::Metric;
use wgtrain::model::{Activation, ModelSpec};
use wgtrain::stop::{StopReason, StopRule};
use wgtrain::train::{CheckRecord, Outcome, SyncMode, TrainOptions};

/// Moons (210 training rows) on a 2→16→1 ReLU MLP at `lr`; mini-batches of `batch` rows.
fn case(lr: f32, batch: Option<usize>) -> (Dataset, ModelSpec, SessionConfig) {
    let (d, _) = moons_split(300, 3);
    let sp = spec(&d, &[16], Activation::Relu);
    let cfg = SessionConfig {
        batch: batch.map(|size| Batching {
            size,
            shuffle: true,
            seed: 3,
        }),
        ..config(&sp, lr, 3)
    };
    (d, sp, cfg)
}

fn early_bird(sp: &ModelSpec, eps: f64, window: u32) -> EarlyBird {
    EarlyBird {
        sparsity: 0.5,
        eps,
        window,
        layout: sp.layout(),
    }
}

/// Only `max_iter` among the engine's rules.
fn plain(max_iter: u64, eval_every: u64) -> StopRule {
    StopRule {
        threshold: None,
        max_iter,
        eval_every,
        ..rule(Metric::Accuracy, None, max_iter)
    }
}

fn opts(rule: StopRule, eb: EarlyBird) -> TrainOptions {
    TrainOptions {
        early_bird: Some(eb),
        ..TrainOptions::new(rule)
    }
}

/// The reference: a fresh session driven by hand, the masks of the weights at every check
/// compared with the masks module. The first iteration where `window` checks in a row moved
/// by less than `eps`, its weights, and whether a stable run was cut short before it; `None`
/// if none within max_iter.
fn reference(
    mut s: Box<dyn Session>,
    rule: &StopRule,
    eb: &EarlyBird,
) -> Option<(u64, Vec<f32>, bool)> {
    let mini = s.mini_batches().is_some();
    let (mut previous, mut stable, mut reset): (Option<Vec<bool>>, u32, bool) = (None, 0, false);
    for t in 0..=rule.max_iter {
        if rule.is_check(t) {
            let p = s.params().unwrap();
            let mask = masks::magnitude_mask(&eb.layout, &p, eb.sparsity);
            if let Some(prev) = &previous {
                if masks::mask_distance(&eb.layout, prev, &mask) < eb.eps {
                    stable += 1;
                } else {
                    reset |= stable > 0;
                    stable = 0;
                }
            }
            previous = Some(mask);
            if stable >= eb.window {
                return Some((t, p, reset));
            }
        }
        if !mini {
            s.evaluate().unwrap();
        }
        s.update().unwrap();
    }
    None
}

/// `train` with `opts` on a fresh session of `kind`.
fn run(
    kind: Kind,
    c: &(Dataset, ModelSpec, SessionConfig),
    opts: &TrainOptions,
) -> Option<(Outcome, Vec<CheckRecord>)> {
    let mut s = session(kind, &c.0, &c.1, &c.2)?;
    Some(train_with(s.as_mut(), opts))
}

/// On the GPU, `--sync every` and chunks (adaptive and `--chunk 16`) stop where `out` did,
/// with the same weights.
fn same_in_every_sync_mode(
    kind: Kind,
    c: &(Dataset, ModelSpec, SessionConfig),
    o: &TrainOptions,
    out: &Outcome,
) {
    if kind != Kind::Gpu {
        return;
    }
    for (sync, chunk) in [
        (SyncMode::Every, None),
        (SyncMode::Chunk, None),
        (SyncMode::Chunk, Some(16)),
    ] {
        let o = TrainOptions {
            sync,
            chunk,
            ..o.clone()
        };
        let Some((again, _)) = run(kind, c, &o) else {
            return;
        };
        assert_eq!(again.stop, out.stop, "{sync:?} {chunk:?}");
        assert_eq!(bits(&again.params), bits(&out.params), "{sync:?} {chunk:?}");
    }
}

both_backends! {
    // Full batch, a check every iteration: a stable run is cut short by a change, then
    // five unchanged masks in a row stop the run.
    fn stops_where_the_mask_settles(kind) {
        let c = case(5.0, None);
        let rule = plain(300, 1);
        let eb = early_bird(&c.1, 0.03, 5);
        let Some(s) = session(kind, &c.0, &c.1, &c.2) else { return };
        let (t, p, reset) = reference(s, &rule, &eb).expect("the mask settles");
        assert!(reset && t > 10 && t < 300, "a case that tests something: t = {t}");
        let o = opts(rule, eb);
        let Some((out, seen)) = run(kind, &c, &o) else { return };
        assert_eq!(out.stop.reason, StopReason::MaskStable, "{:?}", out.stop);
        assert_eq!((out.stop.stopped_at, out.stop.iteration), (t, t));
        assert_eq!(bits(&out.params), bits(&p));
        assert_eq!(seen.last().map(|r| r.iteration), Some(t));
        let report = out.stop.early_bird.expect("the rule's report");
        assert_eq!((report.stable, report.settings.window), (5, 5));
        assert!(report.distance.is_some_and(|d| d < 0.03), "{report:?}");
        same_in_every_sync_mode(kind, &c, &o, &out);
    }

    // Checks every 7 iterations at full batch, and once per epoch with mini-batches: the rule
    // is asked at checks only, with the weights of the check.
    fn stops_at_a_check(kind) {
        for (lr, batch, every) in [(5.0, None, 7), (0.5, Some(64), 4)] {
            let c = case(lr, batch);
            let rule = plain(2000, every);
            let eb = early_bird(&c.1, 0.03, 4);
            let Some(s) = session(kind, &c.0, &c.1, &c.2) else { return };
            let (t, p, _) = reference(s, &rule, &eb).expect("the mask settles");
            assert!(t % every == 0 && t > 4 * every && t < 2000, "t = {t}");
            let o = opts(rule, eb);
            let Some((out, _)) = run(kind, &c, &o) else { return };
            assert_eq!(
                (out.stop.reason, out.stop.stopped_at),
                (StopReason::MaskStable, t),
                "batch {batch:?}"
            );
            assert_eq!(bits(&out.params), bits(&p), "batch {batch:?}");
            same_in_every_sync_mode(kind, &c, &o, &out);
        }
    }

    // With eps near 0 only an unchanged mask is stable, and a high rate on a wide layer
    // keeps moving it: the run goes to max_iter.
    fn a_mask_that_never_settles_runs_to_max_iter(kind) {
        let (d, _) = moons_split(300, 3);
        let sp = spec(&d, &[64], Activation::Relu);
        let c = (d, sp.clone(), config(&sp, 5.0, 3));
        let rule = plain(200, 1);
        let eb = early_bird(&sp, 1e-9, 5);
        let Some(s) = session(kind, &c.0, &c.1, &c.2) else { return };
        assert!(reference(s, &rule, &eb).is_none(), "a case that tests something");
        let o = opts(rule, eb);
        let Some((out, _)) = run(kind, &c, &o) else { return };
        assert_eq!((out.stop.reason, out.stop.stopped_at), (StopReason::MaxIter, 200));
        let report = out.stop.early_bird.expect("the rule's report");
        assert!(report.stable < 5, "{report:?}");
        same_in_every_sync_mode(kind, &c, &o, &out);
    }

    // Where the engine stops at the same check, its reason wins: a loss threshold met first
    // there, and max_iter there.
    fn the_engine_wins_at_the_same_check(kind) {
        let c = case(0.5, None);
        let base = StopRule { metric: Metric::Loss, ..plain(500, 1) };
        let eb = early_bird(&c.1, 0.03, 5);
        let Some((first, seen)) = run(kind, &c, &opts(base.clone(), eb.clone())) else { return };
        let t = first.stop.stopped_at;
        assert_eq!(first.stop.reason, StopReason::MaskStable);
        let loss = first.stop.value_at_stop;
        assert!(seen[..seen.len() - 1].iter().all(|r| r.train.loss > loss), "the loss first reaches its value at t");
        let threshold = StopRule { threshold: Some(loss), ..base.clone() };
        let Some((out, _)) = run(kind, &c, &opts(threshold, eb.clone())) else { return };
        assert_eq!((out.stop.reason, out.stop.stopped_at), (StopReason::Threshold, t));
        let capped = StopRule { max_iter: t, ..base };
        let Some((out, _)) = run(kind, &c, &opts(capped, eb)) else { return };
        assert_eq!((out.stop.reason, out.stop.stopped_at), (StopReason::MaxIter, t));
    }

    // With --restore-best the run still stops where the mask settled, and returns the best
    // check's weights.
    fn restore_best_returns_the_best_check(kind) {
        let c = case(5.0, None);
        let rule = plain(300, 1);
        let eb = early_bird(&c.1, 0.03, 5);
        let o = TrainOptions { restore_best: true, ..opts(rule, eb) };
        let Some((out, _)) = run(kind, &c, &o) else { return };
        assert_eq!(out.stop.reason, StopReason::MaskStable);
        let best = out.stop.best_iteration.expect("a best check");
        assert!(out.stop.restored_best && best == out.stop.iteration && best <= out.stop.stopped_at);
        let Some(fresh) = session(kind, &c.0, &c.1, &c.2) else { return };
        assert_eq!(bits(&out.params), bits(&params_after(fresh, best)));
    }
}

#[test]
fn cpu_and_gpu_stop_at_the_same_iteration() {
    for (lr, batch, every) in [(5.0, None, 1), (0.5, Some(64), 4)] {
        let c = case(lr, batch);
        let o = opts(plain(2000, every), early_bird(&c.1, 0.03, 5));
        let (cpu, _) = run(Kind::Cpu, &c, &o).unwrap();
        let Some((gpu, _)) = run(Kind::Gpu, &c, &o) else {
            return;
        };
        assert_eq!(cpu.stop.reason, StopReason::MaskStable);
        assert_eq!(
            (gpu.stop.reason, gpu.stop.stopped_at),
            (cpu.stop.reason, cpu.stop.stopped_at),
            "batch {batch:?}"
        );
    }
}

#[test]
fn a_bad_rule_is_an_error_not_a_panic() {
    let c = case(0.5, None);
    let mut s = session(Kind::Cpu, &c.0, &c.1, &c.2).unwrap();
    let bad = EarlyBird {
        sparsity: 1.0,
        ..early_bird(&c.1, 0.1, 5)
    };
    let e = wgtrain::train::train(s.as_mut(), &opts(plain(10, 1), bad), |_| Ok(())).unwrap_err();
    assert!(e.to_string().starts_with("--early-bird 1:"), "{e}");
    // A layout of another model.
    let other = spec(&c.0, &[3], Activation::Relu);
    let wrong = early_bird(&other, 0.1, 5);
    let e = wgtrain::train::train(s.as_mut(), &opts(plain(10, 1), wrong), |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("parameters"), "{e}");
}

#[test]
fn bad_flag_values_name_the_flag() {
    let base = ["--demo", "moons", "--hidden", "8", "--backend", "cpu"];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    let with = |extra: &[&'static str]| with(&base, extra);
    for s in ["0", "1", "-0.5", "1.5", "nan"] {
        let e = train_fails(&with(&["--early-bird", s]));
        assert_contains_all(
            &e,
            &[
                &format!("--early-bird {}", s.replace("nan", "NaN")),
                "between 0 and 1",
            ],
        );
    }
    let e = train_fails(&with(&["--early-bird", "half"]));
    assert_contains_all(&e, &["--early-bird", "'half'"]);
    for v in ["0", "1.5", "-0.1"] {
        let e = train_fails(&with(&["--early-bird", "0.5", "--early-bird-eps", v]));
        assert_contains_all(&e, &[&format!("--early-bird-eps {v}"), "at most 1"]);
    }
    let e = train_fails(&with(&["--early-bird", "0.5", "--early-bird-window", "0"]));
    assert_contains_all(&e, &["--early-bird-window 0", "at least 1"]);
    let e = train_fails(&with(&["--early-bird", "0.5", "--early-bird-window", "-2"]));
    assert_contains_all(&e, &["--early-bird-window", "'-2'"]);
    let e = train_fails(&with(&["--early-bird-eps", "0.05"]));
    assert_contains_all(&e, &["--early-bird-eps 0.05", "only with --early-bird"]);
    let e = train_fails(&with(&["--early-bird-window", "3"]));
    assert_contains_all(&e, &["--early-bird-window 3", "only with --early-bird"]);
}

#[test]
fn the_json_report_says_mask_stable() {
    let r = train_json(&[
        "--demo",
        "moons",
        "--hidden",
        "16",
        "--backend",
        "cpu",
        "--threshold",
        "none",
        "--early-bird",
        "0.5",
        "--early-bird-eps",
        "0.05",
        "--early-bird-window",
        "3",
    ]);
    let stop = &r["stop"];
    assert_eq!(stop["reason"], "mask_stable", "{stop}");
    let at = stop["stopped_at"].as_u64().unwrap();
    assert!(at < 1000, "{stop}");
    assert_eq!(stop["early_bird"]["sparsity"], 0.5);
    assert_eq!(stop["early_bird"]["window"], 3);
    assert_eq!(stop["early_bird"]["stable"], 3);
    assert!(stop["early_bird"]["distance"].as_f64().unwrap() < 0.05);
    let msg = stop["message"].as_str().unwrap();
    assert_contains_all(
        msg,
        &[
            &format!("stopped at iteration {at}"),
            "sparsity 0.5",
            "less than 0.05",
            "3 checks in a row",
            "mask_stable",
        ],
    );
    // A logistic regression has weights too; without the flag the report has no such entry.
    let lr = train_run(&[
        "--demo",
        "moons",
        "--backend",
        "cpu",
        "--early-bird",
        "0.5",
        "--max-iter",
        "20",
    ]);
    assert!(lr.r["stop"]["early_bird"].is_object(), "{}", lr.text);
    let plain = train_json(&["--demo", "moons", "--backend", "cpu", "--max-iter", "3"]);
    assert!(plain["stop"].get("early_bird").is_none());
}

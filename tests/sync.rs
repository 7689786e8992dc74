//! `--sync chunk` against `--sync every` on the GPU: for every rule, the same stop iteration,
//! the same reason and bit-identical weights and optimizer state (the current and the best's),
//! whatever the chunk size.

mod common;

use common::*;
use wgtrain::backend::gpu::{GpuSession, KernelPath};
use wgtrain::backend::{Session, SessionConfig};
use wgtrain::data::Dataset;
use wgtrain::metrics::Metric;
use wgtrain::model::{Activation, ModelSpec};
use wgtrain::stop::{MinDelta, StopReason, StopRule};
use wgtrain::train::{Monitor, StopInfo, SyncMode, TrainOptions};

struct Case {
    train: Dataset,
    val: Dataset,
    spec: ModelSpec,
    cfg: SessionConfig,
}

fn case(seed: u64, hidden: &[usize], act: Activation, lr: f32) -> Case {
    let (train, val) = moons_split(150, seed);
    let spec = spec(&train, hidden, act);
    let cfg = config(&spec, lr, seed);
    Case {
        train,
        val,
        spec,
        cfg,
    }
}

/// Runs the case with `--sync every` and with chunks of several sizes; all must agree.
fn same_in_every_mode(name: &str, c: &Case, opts: TrainOptions) {
    same_on_path(name, c, opts, None);
}

/// As [`same_in_every_mode`], on `path` where it is given; returns the stop.
fn same_on_path(
    name: &str,
    c: &Case,
    opts: TrainOptions,
    path: Option<KernelPath>,
) -> Option<StopInfo> {
    let run = |sync, chunk| {
        let o = TrainOptions {
            sync,
            chunk,
            ..opts.clone()
        };
        let mut s: Box<dyn Session> = match path {
            None => session_val(Kind::Gpu, &c.train, Some(&c.val), &c.spec, &c.cfg)?,
            Some(path) => {
                let ctx = gpu_context_on(path)?;
                let s = GpuSession::new(ctx, &c.train, Some(&c.val), &c.spec, &c.cfg).unwrap();
                assert_eq!(s.path(), path, "{name}: the path");
                Box::new(s)
            }
        };
        let (out, log) = train_with(s.as_mut(), &o);
        // The best's state where best weights are kept (with restore-best).
        let states = [false, o.restore_best].map(|best| {
            let st = s.optimizer_state(best).unwrap();
            assert_eq!(st.buffers.len(), c.cfg.optimizer.buffers(), "{name}");
            st.buffers.iter().map(|b| bits(b)).collect::<Vec<_>>()
        });
        Some((out, log, states))
    };
    let (every, log_every, states_every) = run(SyncMode::Every, None)?;
    assert!(
        every.stop.stopped_at > 0,
        "{name}: the case must need training: {:?}",
        every.stop
    );
    // 1,024 asks for more iterations than lr_loop.wgsl's bound on lavapipe's loop limit lets
    // one dispatch run: the chunk is cut (`long_chunks_of_a_larger_logistic_regression` has
    // data where an uncut chunk would pass the limit).
    for chunk in [None, Some(1), Some(3), Some(64), Some(1024)] {
        let (out, log, states) = run(SyncMode::Chunk, chunk).unwrap();
        let what = format!("{name}, chunk {chunk:?}");
        assert!(states == states_every, "{what}: the optimizer state");
        assert_eq!(out.stop.reason, every.stop.reason, "{what}");
        assert_eq!(out.stop.stopped_at, every.stop.stopped_at, "{what}");
        assert_eq!(out.stop.iteration, every.stop.iteration, "{what}");
        assert_eq!(out.stop.best_iteration, every.stop.best_iteration, "{what}");
        assert_eq!(out.metrics, every.metrics, "{what}");
        assert_eq!(out.val_metrics, every.val_metrics, "{what}");
        assert_eq!(bits(&out.params), bits(&every.params), "{what}: weights");
        // Debug text, so that a NaN loss compares equal to itself.
        let its = |l: &[wgtrain::train::CheckRecord]| {
            l.iter()
                .map(|r| format!("{} {:?} {:?}", r.iteration, r.train, r.val))
                .collect::<Vec<_>>()
        };
        assert_eq!(its(&log), its(&log_every), "{what}: the log");
    }
    Some(every.stop)
}

fn val(rule: StopRule) -> TrainOptions {
    TrainOptions {
        monitor: Monitor::Val,
        ..TrainOptions::new(rule)
    }
}

fn base() -> StopRule {
    StopRule {
        max_iter: 400,
        ..Default::default()
    }
}

#[test]
fn threshold_on_scores_and_loss() {
    let c = case(41, &[8], Activation::Tanh, 1.0);
    for metric in [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
        Metric::Iou,
    ] {
        let rule = StopRule {
            metric,
            threshold: Some(0.9),
            ..base()
        };
        same_in_every_mode(&format!("threshold {metric:?}"), &c, val(rule));
    }
    let rule = StopRule {
        metric: Metric::Loss,
        threshold: Some(0.3),
        ..base()
    };
    same_in_every_mode("threshold loss on train", &c, TrainOptions::new(rule));
}

#[test]
fn patience_with_deltas_warmup_and_eval_every() {
    let c = case(42, &[8], Activation::Tanh, 2.0);
    let loss = |patience| StopRule {
        metric: Metric::Loss,
        patience: Some(patience),
        max_iter: 2000,
        ..base()
    };
    same_in_every_mode("patience", &c, val(loss(3)));
    same_in_every_mode("patience 0", &c, val(loss(0)));
    let abs = StopRule {
        min_delta: MinDelta::Abs(1e-3),
        eval_every: 3,
        ..loss(2)
    };
    same_in_every_mode("patience, min delta, eval every 3", &c, val(abs));
    let rel = StopRule {
        min_delta: MinDelta::Rel(0.01),
        warmup: 25,
        ..loss(2)
    };
    same_in_every_mode("patience, relative delta, warm-up", &c, val(rel));
    // Accuracy plateaus hold many exact ties.
    let acc = StopRule {
        metric: Metric::Accuracy,
        patience: Some(15),
        max_iter: 2000,
        ..base()
    };
    same_in_every_mode("patience on accuracy", &c, val(acc));
}

#[test]
fn restore_best_with_and_without_an_early_stop() {
    let c = case(43, &[6], Activation::Relu, 1.5);
    let rule = StopRule {
        metric: Metric::Loss,
        patience: Some(4),
        max_iter: 2000,
        ..base()
    };
    same_in_every_mode(
        "restore best",
        &c,
        TrainOptions {
            restore_best: true,
            ..val(rule)
        },
    );
    let rule = StopRule {
        metric: Metric::F1,
        max_iter: 90,
        eval_every: 7,
        ..base()
    };
    same_in_every_mode(
        "restore best at max_iter",
        &c,
        TrainOptions {
            restore_best: true,
            ..val(rule)
        },
    );
}

#[test]
fn divergence_non_finite_and_max_iter() {
    let c = case(44, &[6], Activation::Tanh, 10.0);
    let rule = StopRule {
        metric: Metric::Loss,
        divergence: Some(3.0),
        ..base()
    };
    same_in_every_mode("divergence", &c, TrainOptions::new(rule));
    let c = case(45, &[8], Activation::Relu, 1e30);
    same_in_every_mode("non_finite", &c, val(base()));
    let c = case(46, &[], Activation::Relu, 0.5);
    let rule = StopRule {
        max_iter: 37,
        eval_every: 5,
        ..base()
    };
    same_in_every_mode("max_iter", &c, val(rule));
}

/// Logistic regression, every rule, on both of its GPU paths: whole chunks in one workgroup
/// (lr_loop.wgsl, which judges the rule itself) and the blocked kernels with stop_rule.wgsl.
#[test]
fn logistic_every_rule_on_both_paths() {
    let c = case(47, &[], Activation::Relu, 2.0);
    let wild = case(48, &[], Activation::Relu, 3e38);
    let steep = case(49, &[], Activation::Relu, 200.0);
    let acc = StopRule {
        metric: Metric::Accuracy,
        threshold: Some(0.85),
        ..base()
    };
    let loss = StopRule {
        metric: Metric::Loss,
        threshold: Some(0.45),
        ..base()
    };
    let patience = StopRule {
        metric: Metric::Loss,
        patience: Some(3),
        min_delta: MinDelta::Abs(1e-4),
        warmup: 10,
        eval_every: 2,
        max_iter: 2000,
        ..base()
    };
    let f1 = StopRule {
        metric: Metric::F1,
        patience: Some(6),
        max_iter: 2000,
        ..base()
    };
    let diverge = StopRule {
        metric: Metric::Loss,
        divergence: Some(5.0),
        ..base()
    };
    let max_iter = StopRule {
        max_iter: 37,
        eval_every: 5,
        ..base()
    };
    let long = StopRule {
        max_iter: 1500,
        ..base()
    };
    let restore = |rule| TrainOptions {
        restore_best: true,
        ..val(rule)
    };
    let runs: [(&str, &Case, TrainOptions, StopReason); 8] = [
        ("threshold accuracy", &c, val(acc), StopReason::Threshold),
        (
            "threshold loss",
            &c,
            TrainOptions::new(loss),
            StopReason::Threshold,
        ),
        ("patience", &c, val(patience), StopReason::Patience),
        ("restore best", &c, restore(f1), StopReason::Patience),
        (
            "divergence",
            &steep,
            TrainOptions::new(diverge),
            StopReason::Divergence,
        ),
        ("non-finite", &wild, val(base()), StopReason::NonFinite),
        ("max_iter", &c, val(max_iter), StopReason::MaxIter),
        (
            "max_iter after long chunks",
            &c,
            val(long),
            StopReason::MaxIter,
        ),
    ];
    for (name, case, opts, reason) in runs {
        for path in [KernelPath::OneWorkgroup, KernelPath::Blocked] {
            let what = format!("{name}, {}", path.name());
            let Some(stop) = same_on_path(&what, case, opts.clone(), Some(path)) else {
                return;
            };
            assert_eq!(stop.reason, reason, "{what}: {stop:?}");
        }
    }
}

/// About 1,000 rows × 16 features with validation rows: each one-workgroup iteration takes more
/// than 64 of llvmpipe's loop back-edges, so a chunk of 1,024 iterations would pass its
/// 65,535 limit and silently stop short. The chunks must be cut to fit and still agree with
/// `--sync every` bit for bit.
#[test]
fn long_chunks_of_a_larger_logistic_regression() {
    let d = demo(wgtrain::data::Demo::Hyperplane, 1430, Some(16), 0.2, 12);
    let (train, val) = wgtrain::data::split_stratified(&d, 0.3, 12).unwrap();
    let spec = spec(&train, &[], Activation::Relu);
    let cfg = config(&spec, 0.2, 12);
    let c = Case {
        train,
        val,
        spec,
        cfg,
    };
    let rule = StopRule {
        max_iter: 1100,
        ..Default::default()
    };
    let path = Some(KernelPath::OneWorkgroup);
    let stop = same_on_path("1,001 × 16", &c, crate::val(rule), path);
    if let Some(stop) = stop {
        assert_eq!((stop.reason, stop.stopped_at), (StopReason::MaxIter, 1100));
    }
}

/// After a one-workgroup chunk, which keeps no logits, `logits()` gives those of the weights
/// the chunk ended on, bit for bit as after `--sync every`'s evaluation.
#[test]
fn logits_after_a_chunk() {
    use wgtrain::backend::{ChunkRule, ChunkStart};
    let c = case(43, &[], Activation::Relu, 0.5);
    let on = || gpu_context_on(KernelPath::OneWorkgroup);
    let (Some(a), Some(b)) = (on(), on()) else {
        return;
    };
    let mut chunked = GpuSession::new(a, &c.train, Some(&c.val), &c.spec, &c.cfg).unwrap();
    let mut every = GpuSession::new(b, &c.train, Some(&c.val), &c.spec, &c.cfg).unwrap();
    assert_eq!(chunked.path(), KernelPath::OneWorkgroup);
    let rule = ChunkRule {
        rule: StopRule {
            max_iter: 20,
            ..Default::default()
        },
        monitor_val: false,
        restore_best: false,
    };
    let start = ChunkStart {
        t: 0,
        has_best: false,
        wait: 0,
        adopt_candidate: false,
    };
    let entries = chunked.run_chunk(&rule, &start, 64).unwrap();
    let last = entries.last().unwrap();
    assert_eq!((last.t, last.paused), (20, true));
    for _ in 0..20 {
        every.evaluate().unwrap();
        every.update().unwrap();
    }
    assert_eq!(every.evaluate().unwrap(), last.eval);
    let z = every.logits().unwrap();
    assert_eq!(z.len(), c.train.rows);
    assert_eq!(bits(&chunked.logits().unwrap()), bits(&z));
    let w = chunked.params().unwrap();
    assert_eq!(bits(&w), bits(&every.params().unwrap()));
    // And they are the logits of those weights: the CPU's from the same weights.
    let cfg = SessionConfig {
        params: w,
        lr: c.cfg.lr,
        ..Default::default()
    };
    let mut cpu = session(Kind::Cpu, &c.train, &c.spec, &cfg).unwrap();
    cpu.evaluate().unwrap();
    for (r, (g, c)) in z.iter().zip(cpu.logits().unwrap()).enumerate() {
        assert!(
            (g - c).abs() <= 1e-5 + 1e-5 * c.abs(),
            "row {r}: gpu {g} cpu {c}"
        );
    }
}

/// A K-class case: `kind` with a stratified validation split, standardized, a softmax head.
fn case_k(kind: wgtrain::data::Demo, k: usize, seed: u64, hidden: &[usize], lr: f32) -> Case {
    use wgtrain::data::{Standardizer, split_stratified};
    let noise = if kind == wgtrain::data::Demo::Blobs {
        0.0
    } else {
        0.05
    };
    let d = demo_k(kind, 240.max(4 * k), None, k, noise, seed);
    let (mut train, mut val) = split_stratified(&d, 0.3, seed).unwrap();
    let s = Standardizer::fit(&train);
    s.apply(&mut train);
    s.apply(&mut val);
    let spec = spec_k(&train, hidden, Activation::Tanh, k);
    let cfg = config(&spec, lr, seed);
    Case {
        train,
        val,
        spec,
        cfg,
    }
}

/// K = 3: every rule (thresholds on accuracy, the macro averages and the loss; patience with
/// deltas, warm-up and eval_every; restore-best; divergence; non-finite; max_iter) stops at
/// the same iteration with bit-identical weights under `--sync every` and `--sync chunk`, on
/// every path that takes a softmax head.
#[test]
fn three_classes_every_rule_on_every_path() {
    use wgtrain::data::Demo;
    let blobs = |hidden: &[usize], lr| case_k(Demo::Blobs, 3, 51, hidden, lr);
    let spirals = |hidden: &[usize], lr| case_k(Demo::Spirals, 3, 52, hidden, lr);
    let paths: [(&[usize], KernelPath); 4] = [
        (&[], KernelPath::OneWorkgroup),
        (&[], KernelPath::Blocked),
        (&[8], KernelPath::OnePassMlp),
        (&[8], KernelPath::Layered),
    ];
    for (hidden, path) in paths {
        let run = |name: &str, c: &Case, opts: TrainOptions| {
            let what = format!("K = 3 {name}, {}", path.name());
            same_on_path(&what, c, opts, Some(path))
        };
        let c = blobs(hidden, 0.5);
        for (metric, threshold) in [
            (Metric::Accuracy, 0.95),
            (Metric::Precision, 0.95),
            (Metric::Recall, 0.95),
            (Metric::F1, 0.95),
            (Metric::Iou, 0.9),
            (Metric::Loss, 0.2),
        ] {
            let rule = StopRule {
                metric,
                threshold: Some(threshold),
                ..base()
            };
            let Some(stop) = run(&format!("threshold {metric:?}"), &c, val(rule)) else {
                return;
            };
            assert_eq!(stop.reason, StopReason::Threshold, "{metric:?}: {stop:?}");
        }
        let s = spirals(hidden, 1.0);
        for metric in [Metric::F1, Metric::Iou, Metric::Loss] {
            let rule = StopRule {
                metric,
                patience: Some(4),
                max_iter: 1500,
                ..base()
            };
            run(&format!("patience {metric:?}"), &s, val(rule));
        }
        let rule = StopRule {
            metric: Metric::Recall,
            patience: Some(3),
            min_delta: MinDelta::Rel(0.002),
            warmup: 12,
            eval_every: 3,
            max_iter: 1500,
            ..base()
        };
        run(
            "patience, relative delta, warm-up, eval every",
            &s,
            val(rule),
        );
        let rule = StopRule {
            metric: Metric::Precision,
            patience: Some(5),
            min_delta: MinDelta::Abs(1e-3),
            max_iter: 1500,
            ..base()
        };
        let restore = TrainOptions {
            restore_best: true,
            ..val(rule)
        };
        run("restore best", &s, restore);
        let rule = StopRule {
            metric: Metric::Loss,
            divergence: Some(3.0),
            ..base()
        };
        let steep = case_k(Demo::Spirals, 3, 53, hidden, 60.0);
        run("divergence", &steep, TrainOptions::new(rule));
        let wild = case_k(Demo::Blobs, 3, 54, hidden, 3e38);
        run("non-finite", &wild, val(base()));
        let rule = StopRule {
            metric: Metric::F1,
            max_iter: 37,
            eval_every: 5,
            ..base()
        };
        let Some(stop) = run("max_iter", &c, val(rule)) else {
            return;
        };
        assert_eq!(stop.reason, StopReason::MaxIter, "{stop:?}");
    }
}

/// Chunks are capped so that one chunk's history stays within a few MiB: K = 256 holds a
/// 512 KiB record per iteration, so only a few iterations per chunk, and they still agree.
#[test]
fn many_classes_cap_the_chunk() {
    use wgtrain::backend::ChunkRule;
    let c = case_k(wgtrain::data::Demo::Blobs, 256, 55, &[], 0.5);
    let Some(ctx) = gpu_context() else { return };
    let s = GpuSession::new(ctx, &c.train, Some(&c.val), &c.spec, &c.cfg).unwrap();
    let rule = ChunkRule {
        rule: base(),
        monitor_val: true,
        restore_best: false,
    };
    let cap = s.max_chunk(&rule).unwrap();
    assert!((1..=8).contains(&cap), "{cap}");
    // Three classes on the blocked kernels (whose chunks the loop budget does not bound).
    let small = case_k(wgtrain::data::Demo::Blobs, 3, 55, &[], 0.5);
    let Some(ctx) = gpu_context_on(KernelPath::Blocked) else {
        return;
    };
    let s = GpuSession::new(ctx, &small.train, Some(&small.val), &small.spec, &small.cfg).unwrap();
    assert_eq!(s.max_chunk(&rule), Some(1024));
    let rule = StopRule {
        metric: Metric::F1,
        patience: Some(3),
        max_iter: 30,
        ..base()
    };
    same_on_path("K = 256", &c, val(rule), None);
}

/// Adam (with a cosine schedule and weight decay) and SGD with Nesterov momentum (with a step
/// schedule) on every path: chunks read each update's own scalars and carry the state (and,
/// with restore-best, the best's copy taken on the device) bit for bit as `--sync every`.
#[test]
fn optimizers_on_every_path() {
    use wgtrain::optim::{Optimizer, OptimizerKind, Schedule};
    let adam = |c: &mut Case| {
        c.cfg.optimizer = Optimizer {
            kind: OptimizerKind::Adam,
            weight_decay: 0.01,
            ..Default::default()
        };
        c.cfg.schedule = Schedule::Cosine { t_max: 150 };
        c.cfg.lr = 0.05;
    };
    let nesterov = |c: &mut Case| {
        c.cfg.optimizer = Optimizer {
            momentum: 0.9,
            nesterov: true,
            ..Default::default()
        };
        c.cfg.schedule = Schedule::Step {
            step: 20,
            gamma: 0.7,
        };
        c.cfg.lr = 0.3;
    };
    type Setup = fn(&mut Case);
    let setups: [(&str, Setup); 2] = [("adam", adam), ("nesterov", nesterov)];
    let paths: [(&[usize], KernelPath); 4] = [
        (&[], KernelPath::OneWorkgroup),
        (&[], KernelPath::Blocked),
        (&[8], KernelPath::OnePassMlp),
        (&[8], KernelPath::Layered),
    ];
    for (hidden, path) in paths {
        for (name, setup) in setups {
            let mut c = case(57, hidden, Activation::Tanh, 1.0);
            setup(&mut c);
            let what = |rule: &str| format!("{name}, {rule}, {}", path.name());
            let threshold = StopRule {
                metric: Metric::Accuracy,
                threshold: Some(0.86),
                ..base()
            };
            let Some(_) = same_on_path(&what("threshold"), &c, val(threshold), Some(path)) else {
                return;
            };
            let patience = StopRule {
                metric: Metric::Loss,
                patience: Some(3),
                min_delta: MinDelta::Abs(1e-3),
                max_iter: 1500,
                ..base()
            };
            let restore = TrainOptions {
                restore_best: true,
                ..val(patience)
            };
            same_on_path(&what("patience, restore best"), &c, restore, Some(path));
            let rule = StopRule {
                metric: Metric::F1,
                max_iter: 90,
                eval_every: 7,
                ..base()
            };
            let restore = TrainOptions {
                restore_best: true,
                ..val(rule)
            };
            let stop = same_on_path(&what("max_iter"), &c, restore, Some(path)).unwrap();
            assert_eq!(stop.reason, StopReason::MaxIter);
        }
    }
}

/// Mini-batches (105 rows in batches of 16: six full and a remainder of 9 per epoch, shuffled)
/// on every path that runs them: a chunk holds the updates of several checks and judges each
/// check on the device, and pauses (a threshold met, patience run out, a non-finite loss,
/// max-iter between two checks) keep the stop, the weights, the previous check's weights and
/// the optimizer state bit for bit as `--sync every`.
#[test]
fn mini_batches_on_every_path() {
    use wgtrain::batches::Batching;
    use wgtrain::optim::{Optimizer, OptimizerKind, Schedule};
    let paths: [(&[usize], KernelPath); 3] = [
        (&[], KernelPath::Blocked),
        (&[8], KernelPath::OnePassMlp),
        (&[8], KernelPath::Layered),
    ];
    let mini = |c: &mut Case| {
        c.cfg.batch = Some(Batching {
            size: 16,
            shuffle: true,
            seed: 7,
        });
    };
    for (hidden, path) in paths {
        let mut c = case(61, hidden, Activation::Tanh, 0.05);
        mini(&mut c);
        c.cfg.optimizer = Optimizer {
            kind: OptimizerKind::Adam,
            ..Default::default()
        };
        c.cfg.schedule = Schedule::Cosine { t_max: 400 };
        let what = |rule: &str| format!("mini-batches, adam, {rule}, {}", path.name());
        let threshold = StopRule {
            metric: Metric::Accuracy,
            threshold: Some(0.86),
            eval_every: 7,
            ..base()
        };
        let Some(_) = same_on_path(&what("threshold"), &c, val(threshold), Some(path)) else {
            return;
        };
        let patience = StopRule {
            metric: Metric::Loss,
            patience: Some(3),
            min_delta: MinDelta::Abs(1e-3),
            eval_every: 5,
            warmup: 12,
            max_iter: 1500,
            ..base()
        };
        let restore = TrainOptions {
            restore_best: true,
            ..val(patience)
        };
        same_on_path(&what("patience, restore best"), &c, restore, Some(path));
        // max_iter 97 is no multiple of eval_every 7: the last check comes 6 updates after
        // the one before.
        let rule = StopRule {
            metric: Metric::F1,
            max_iter: 97,
            eval_every: 7,
            ..base()
        };
        let restore = TrainOptions {
            restore_best: true,
            ..val(rule)
        };
        let stop = same_on_path(&what("max_iter"), &c, restore, Some(path)).unwrap();
        assert_eq!((stop.reason, stop.stopped_at), (StopReason::MaxIter, 97));

        let mut c = case(62, hidden, Activation::Relu, 0.5);
        mini(&mut c);
        c.cfg.optimizer = Optimizer {
            momentum: 0.9,
            nesterov: true,
            ..Default::default()
        };
        let rule = StopRule {
            metric: Metric::Accuracy,
            threshold: Some(0.88),
            eval_every: 7,
            ..base()
        };
        let name = format!("mini-batches, nesterov, threshold, {}", path.name());
        same_on_path(&name, &c, val(rule), Some(path));
        let mut c = case(63, hidden, Activation::Relu, 3e38);
        mini(&mut c);
        let rule = StopRule {
            eval_every: 3,
            ..base()
        };
        let name = format!("mini-batches, non-finite, {}", path.name());
        let stop = same_on_path(&name, &c, val(rule), Some(path)).unwrap();
        assert_eq!(stop.reason, StopReason::NonFinite, "{name}");
    }
}

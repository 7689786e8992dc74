//! Mini-batches on the GPU held to the CPU session: the weights update by update on the
//! blocked, one-pass MLP and layered paths, with one logit and three, on awkward batch sizes
//! (B = 1, B not dividing N, the remainder batch, B ≥ N), with and without shuffling; the
//! weights of the evaluations before; bit-identical reruns; whole runs stopping alike.

mod common;

use common::*;
use wgtrain::backend::gpu::{GpuSession, KernelPath};
use wgtrain::backend::{Session, SessionConfig};
use wgtrain::batches::Batching;
use wgtrain::data::{Dataset, Demo};
use wgtrain::model::{Activation, ModelSpec};
use wgtrain::optim::{Optimizer, OptimizerKind};
use wgtrain::stop::{StopReason, StopRule};
use wgtrain::train::TrainOptions;

/// Every |gpu − cpu| within this of the largest |cpu| weight (the summation orders of a
/// batch's gradient differ: the GPU's parts against the CPU's tiles).
const REL: f32 = 1e-5;

fn norm_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    max_rel(a, b, scale.max(f32::MIN_POSITIVE))
}

fn data_k(rows: usize, features: usize, k: usize, seed: u64) -> Dataset {
    if k == 2 {
        demo(Demo::Hyperplane, rows, Some(features), 0.1, seed)
    } else {
        demo_k(Demo::Hyperplane, rows, Some(features), k, 0.1, seed)
    }
}

fn model(d: &Dataset, hidden: &[usize], k: usize) -> ModelSpec {
    if k == 2 {
        spec(d, hidden, Activation::Tanh)
    } else {
        spec_k(d, hidden, Activation::Tanh, k)
    }
}

fn cfg(
    spec: &ModelSpec,
    kind: OptimizerKind,
    lr: f32,
    batch: usize,
    shuffle: bool,
) -> SessionConfig {
    SessionConfig {
        params: spec.init_params(5),
        lr,
        optimizer: Optimizer {
            kind,
            momentum: if kind == OptimizerKind::Sgd { 0.9 } else { 0.0 },
            weight_decay: 0.01,
            ..Default::default()
        },
        batch: Some(Batching {
            size: batch,
            shuffle,
            seed: 11,
        }),
        ..Default::default()
    }
}

fn gpu_on(
    path: KernelPath,
    d: &Dataset,
    spec: &ModelSpec,
    c: &SessionConfig,
) -> Option<GpuSession> {
    let ctx = gpu_context_on(path)?;
    Some(GpuSession::new(ctx, d, None, spec, c).expect("gpu session"))
}

#[test]
fn gpu_mini_batches_follow_the_cpu_update_by_update() {
    use KernelPath::*;
    // (what, rows, features, hidden, batch, path)
    type Case = (
        &'static str,
        usize,
        usize,
        &'static [usize],
        usize,
        KernelPath,
    );
    let cases: [Case; 7] = [
        ("B = 1", 40, 3, &[], 1, Blocked),
        ("B not dividing N", 203, 5, &[], 16, Blocked),
        ("B = 1 MLP", 30, 2, &[5], 1, OnePassMlp),
        ("remainder of 1", 129, 4, &[6], 64, OnePassMlp),
        ("layered", 301, 7, &[9], 37, Layered),
        ("two hidden", 150, 3, &[6, 4], 20, Layered),
        ("wide", 200, 300, &[], 48, Blocked),
    ];
    for k in [2, 3] {
        for (what, rows, f, hidden, b, path) in cases {
            for (kind, lr, shuffle) in [
                (OptimizerKind::Adam, 0.01, true),
                (OptimizerKind::Sgd, 0.05, false),
            ] {
                let d = data_k(rows, f, k, rows as u64);
                let spec = model(&d, hidden, k);
                let c = cfg(&spec, kind, lr, b, shuffle);
                let Some(mut gpu) = gpu_on(path, &d, &spec, &c) else {
                    return;
                };
                let mut cpu = session(Kind::Cpu, &d, &spec, &c).unwrap();
                assert_eq!(gpu.mini_batches(), Some(rows.div_ceil(b) as u64));
                assert_eq!(gpu.path(), path);
                for t in 1..=100 {
                    gpu.update().unwrap();
                    cpu.update().unwrap();
                    if t % 25 == 0 || t == 1 {
                        let (g, c) = (gpu.params().unwrap(), cpu.params().unwrap());
                        let e = norm_rel(&g, &c);
                        assert!(e <= REL, "{what} K={k} {kind:?}: update {t} off by {e}");
                    }
                }
                // The state goes with the weights.
                let (gs, cs) = (
                    gpu.optimizer_state(false).unwrap(),
                    cpu.optimizer_state(false).unwrap(),
                );
                assert_eq!(gs.buffers.len(), cs.buffers.len());
                for (g, c) in gs.buffers.iter().zip(&cs.buffers) {
                    assert!(norm_rel(g, c) <= 1e-4, "{what} K={k} {kind:?}: state");
                }
                // The checks' counts agree.
                let (ge, ce) = (gpu.evaluate().unwrap(), cpu.evaluate().unwrap());
                assert_eq!(ge.train.confusion, ce.train.confusion, "{what} K={k}");
            }
        }
    }
}

#[test]
fn gpu_mini_batch_reruns_are_bit_identical_and_keep_the_evaluations() {
    let d = data_k(250, 4, 3, 9);
    let spec = model(&d, &[8], 3);
    let c = cfg(&spec, OptimizerKind::Adamw, 0.02, 32, true);
    let run = || -> Option<(Vec<u32>, Vec<u32>, Vec<u32>)> {
        let mut s = gpu_on(KernelPath::Layered, &d, &spec, &c)?;
        let first = s.params().unwrap();
        s.evaluate().unwrap();
        for _ in 0..19 {
            s.update().unwrap();
        }
        s.evaluate().unwrap();
        let at19 = s.params().unwrap();
        for _ in 0..13 {
            s.update().unwrap();
        }
        s.evaluate().unwrap();
        // The evaluation before the last: after 19 updates; the one before that: the start.
        assert_eq!(bits(&s.previous_params().unwrap()), bits(&at19));
        assert_ne!(bits(&at19), bits(&first));
        let last = s.params().unwrap();
        Some((bits(&first), bits(&at19), bits(&last)))
    };
    let Some(a) = run() else { return };
    assert_eq!(Some(a), run());
}

/// A chunk holds several checks, each with the updates before it, in one submission: the
/// entries are the checks' iterations, the weights after it those of its last check (as
/// updates and evaluations one by one give them), and `previous_params` the check's before.
#[test]
fn a_chunk_runs_the_updates_of_several_checks() {
    use wgtrain::backend::{ChunkRule, ChunkStart};
    let d = data_k(300, 5, 3, 4);
    let spec = model(&d, &[6], 3);
    let c = cfg(&spec, OptimizerKind::Adam, 0.01, 23, true);
    let rule = ChunkRule {
        rule: StopRule {
            max_iter: 1000,
            eval_every: 9,
            ..Default::default()
        },
        monitor_val: false,
        restore_best: false,
    };
    let Some(mut s) = gpu_on(KernelPath::Layered, &d, &spec, &c) else {
        return;
    };
    assert!(s.max_chunk(&rule).is_some_and(|k| k >= 6));
    let start = |t| ChunkStart {
        t,
        has_best: false,
        wait: 0,
        adopt_candidate: false,
    };
    let entries = s.run_chunk(&rule, &start(0), 6).unwrap();
    let ts: Vec<u64> = entries.iter().map(|e| e.t).collect();
    assert_eq!(ts, [0, 9, 18, 27, 36, 45]);
    // The next chunk starts at the next check, after the host's updates up to it.
    for _ in 0..9 {
        s.update().unwrap();
    }
    let more = s.run_chunk(&rule, &start(54), 2).unwrap();
    assert_eq!(more.iter().map(|e| e.t).collect::<Vec<_>>(), [54, 63]);
    let (after, before) = (s.params().unwrap(), s.previous_params().unwrap());

    let mut one = gpu_on(KernelPath::Layered, &d, &spec, &c).unwrap();
    let mut evals = Vec::new();
    for t in 0..=63 {
        if t % 9 == 0 {
            evals.push(one.evaluate().unwrap());
        }
        if t < 63 {
            one.update().unwrap();
        }
    }
    assert_eq!(bits(&after), bits(&one.params().unwrap()));
    assert_eq!(bits(&before), bits(&one.previous_params().unwrap()));
    let chunked: Vec<_> = entries
        .iter()
        .chain(&more)
        .map(|e| e.eval.clone())
        .collect();
    assert_eq!(chunked, evals);
}

#[test]
fn the_one_workgroup_kernel_leaves_mini_batches_to_the_others() {
    let d = data_k(40, 3, 2, 1);
    let spec = model(&d, &[], 2);
    let c = cfg(&spec, OptimizerKind::Adam, 0.01, 8, true);
    let Some(ctx) = gpu_context_on(KernelPath::OneWorkgroup) else {
        return;
    };
    let e = GpuSession::new(ctx, &d, None, &spec, &c)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("full batches only"), "{e}");
    // Unforced, the planner's one-workgroup choice becomes the blocked pass.
    let Some(ctx) = gpu_context() else { return };
    let s = GpuSession::new(ctx, &d, None, &spec, &c).unwrap();
    assert_eq!(s.path(), KernelPath::Blocked);
}

#[test]
fn gpu_and_cpu_mini_batch_runs_stop_alike() {
    let (train, val) = moons_split(600, 3);
    let spec = spec(&train, &[8], Activation::Relu);
    for (kind, lr) in [(OptimizerKind::Adam, 0.01), (OptimizerKind::Sgd, 0.05)] {
        let c = cfg(&spec, kind, lr, 50, true);
        for rule in [
            StopRule {
                threshold: Some(0.9),
                max_iter: 3000,
                eval_every: 10,
                ..Default::default()
            },
            StopRule {
                threshold: None,
                patience: Some(3),
                max_iter: 3000,
                eval_every: 10,
                ..Default::default()
            },
        ] {
            let mut opts = TrainOptions::new(rule.clone());
            opts.monitor = wgtrain::train::Monitor::Val;
            let mut out = Vec::new();
            for k in [Kind::Cpu, Kind::Gpu] {
                let Some(mut s) = session_val(k, &train, Some(&val), &spec, &c) else {
                    return;
                };
                out.push(train_with(s.as_mut(), &opts).0);
            }
            let (a, b) = (&out[0], &out[1]);
            assert_eq!(
                (a.stop.reason, a.stop.iteration),
                (b.stop.reason, b.stop.iteration),
                "{kind:?} {rule:?}"
            );
            assert_ne!(a.stop.reason, StopReason::NonFinite);
            assert_eq!(
                a.counts.train.confusion, b.counts.train.confusion,
                "{kind:?}"
            );
            let (la, lb) = (a.counts.train.loss_sum, b.counts.train.loss_sum);
            assert!(
                (la - lb).abs() <= 1e-5 * la.abs(),
                "{kind:?}: loss {la} vs {lb}"
            );
        }
    }
}

both_backends! {
    /// The batches are the documented ones: update k takes rows
    /// `permutation(seed, epoch, N)[j·B .. (j + 1)·B]` (the remainder last), and its gradient
    /// is the mean over them, as the plain reference computes it on those rows alone.
    fn updates_take_the_documented_batches(kind) {
        use wgtrain::backend::reference;
        use wgtrain::batches::permutation;
        let d = data_k(23, 3, 2, 4);
        let spec = model(&d, &[4], 2);
        let (b, lr, seed) = (5usize, 0.2f32, 11u64);
        let mut c = cfg(&spec, OptimizerKind::Sgd, lr, b, true);
        c.optimizer = Optimizer::default();
        let Some(mut s) = session(kind, &d, &spec, &c) else { return };
        let layout = spec.layout();
        let f = d.features;
        let mut w = c.params.clone();
        // Three epochs of ⌈23 / 5⌉ = 5 updates, the last of each 3 rows.
        for k in 0..15u64 {
            let (epoch, j) = (k / 5, (k % 5) as usize);
            let order = permutation(seed, epoch, d.rows);
            let rows = &order[j * b..((j + 1) * b).min(d.rows)];
            let x: Vec<f32> = rows.iter().flat_map(|&r| d.x[r as usize * f..][..f].to_vec()).collect();
            let y: Vec<f32> = rows.iter().map(|&r| d.y[r as usize]).collect();
            let (_, grad, _) = reference::evaluate(&x, &y, &w, &layout, spec.activation);
            reference::update(&mut w, &grad, lr);
            s.update().unwrap();
        }
        let got = s.params().unwrap();
        assert!(norm_rel(&got, &w) <= REL, "{:?}", norm_rel(&got, &w));
    }
}

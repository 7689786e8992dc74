//! Optimizers and learning-rate schedules on the GPU held to the CPU session: every optimizer
//! update by update on every kernel path, with one logit (K = 2) and three (K = 3), on
//! awkward sizes (one row, rows not a multiple of the workgroup, 300 features, rows cut in
//! segments); the optimizer state and its best copy; warm starts; whole runs stopping at the
//! same iteration.

mod common;

use common::*;
use wgtrain::backend::gpu::{GpuContext, GpuSession, KernelPath};
use wgtrain::backend::{Session, SessionConfig};
use wgtrain::data::{Dataset, Demo};
use wgtrain::metrics::Metrics;
use wgtrain::model::{Activation, ModelSpec};
use wgtrain::optim::OptState;

/// How close the GPU's weights stay to the CPU's over 100 updates: every |gpu − cpu| within
/// REL of the largest |cpu| (the relative error in the max norm; measured: at most 1.5e-6).
const REL: f32 = 1e-5;
/// The same for each optimizer state buffer, against its own largest element. The buffers
/// are gradient-sized (SGD's momentum, Adam's m) or its square (v), and near convergence the
/// f32 gradient is a sum that cancels, its summation order (the GPU's parts against the CPU's
/// blocks) showing in the low digits: measured at most 6.7e-5 (momentum with weight decay,
/// whose gradient ∇L + λw tends to 0), so 1e-4 here.
const STATE_REL: f32 = 1e-4;

/// max |a − b| / max |b|.
fn norm_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    max_rel(a, b, scale.max(f32::MIN_POSITIVE))
}

/// A context on `path`, with storage bindings of at most `binding` bytes where given.
fn context(path: KernelPath, binding: Option<u64>) -> Option<GpuContext> {
    let mut ctx = match binding {
        None => gpu_context()?,
        Some(b) => {
            match GpuContext::open_with_limits(None, |l| l.max_storage_buffer_binding_size = b) {
                Ok(c) => c,
                Err(e) => {
                    no_gpu(&e.to_string());
                    return None;
                }
            }
        }
    };
    ctx.force_path = Some(path);
    Some(ctx)
}

/// One data set, model and kernel path.
struct Shape {
    what: &'static str,
    data: Dataset,
    spec: ModelSpec,
    path: KernelPath,
    /// Storage bindings of this many bytes, so the rows go in segments.
    binding: Option<u64>,
    /// The optimizer's rate is scaled by this.
    lr_scale: f32,
}

/// `k` = 2: a sigmoid head; 3: softmax.
fn shape(
    what: &'static str,
    rows: usize,
    features: usize,
    hidden: &[usize],
    k: usize,
    path: KernelPath,
    binding: Option<u64>,
) -> Shape {
    let seed = (rows * 31 + features * 7 + k) as u64;
    let noise = if features > 100 { 0.3 } else { 0.1 };
    let (data, spec) = if k == 2 {
        let d = demo(Demo::Hyperplane, rows, Some(features), noise, seed);
        let s = spec(&d, hidden, Activation::Tanh);
        (d, s)
    } else {
        let d = demo_k(Demo::Hyperplane, rows, Some(features), k, noise, seed);
        let s = spec_k(&d, hidden, Activation::Tanh, k);
        (d, s)
    };
    Shape {
        what,
        data,
        spec,
        path,
        binding,
        lr_scale: 1.0,
    }
}

/// Every shape on its paths, with `k` classes.
fn shapes(k: usize) -> Vec<Shape> {
    use KernelPath::*;
    let mut out = Vec::new();
    for path in [OneWorkgroup, Blocked] {
        out.push(shape("one row", 1, 3, &[], k, path, None));
        out.push(shape("65 rows × 7", 65, 7, &[], k, path, None));
    }
    for path in [OnePassMlp, Layered] {
        out.push(shape("one row", 1, 2, &[5], k, path, None));
        out.push(shape("65 rows × 7", 65, 7, &[9], k, path, None));
    }
    // More rows than features and noisy labels: data Adam separates within its 100 updates
    // has rows with σ(z) within f32's rounding of 1, whose gradients keep no digits to agree
    // on, and Adam scales any gradient up to the rate.
    out.push(shape("300 features", 400, 300, &[], k, Blocked, None));
    // An MLP of 1,200 weights over 400 rows overfits: Adam at full rate carries f32's
    // differences up to 2e-5 of the weights by update 75; at a quarter of it, not.
    out.push(Shape {
        lr_scale: 0.25,
        ..shape("300 features", 400, 300, &[4], k, Layered, None)
    });
    out.push(shape("segments", 1000, 3, &[], k, Blocked, Some(4096)));
    out.push(shape("segments", 300, 2, &[5], k, Layered, Some(4096)));
    out.push(shape("segments", 1000, 2, &[5], k, OnePassMlp, Some(4096)));
    out
}

/// The GPU session of `sh` under `cfg`, on its path (and cut in segments where asked).
fn gpu_on(sh: &Shape, cfg: &SessionConfig) -> Option<GpuSession> {
    let ctx = context(sh.path, sh.binding)?;
    let s = GpuSession::new(ctx, &sh.data, None, &sh.spec, cfg).expect("gpu session");
    assert_eq!(s.path(), sh.path, "{}: the path", sh.what);
    assert_eq!(
        s.segments() > 1,
        sh.binding.is_some(),
        "{}: segments",
        sh.what
    );
    Some(s)
}

fn state_close(what: &str, g: &OptState, c: &OptState) {
    assert_eq!(g.step, c.step, "{what}: step");
    assert_eq!(g.buffers.len(), c.buffers.len(), "{what}: buffers");
    for (i, (gb, cb)) in g.buffers.iter().zip(&c.buffers).enumerate() {
        let d = norm_rel(gb, cb);
        assert!(
            d <= STATE_REL,
            "{what}: state buffer {i} off by {d:e} (relative)"
        );
    }
}

/// 100 updates of `o` on both backends: every evaluation's loss (to 1e-4 relative, or 1e-6:
/// a small loss is a sum of log(1 + e^−|z|), where f32 keeps few of its digits), the weights
/// every 25 updates to [`REL`], then the optimizer state to [`STATE_REL`], and the best
/// weights and state kept at update 50. Returns the largest difference of the weights.
fn agree(sh: &Shape, o: &OptCase) -> Option<f32> {
    let cfg = SessionConfig {
        lr: o.lr * sh.lr_scale,
        ..o.config(&sh.spec, 7)
    };
    let mut gpu = gpu_on(sh, &cfg)?;
    let mut cpu = session(Kind::Cpu, &sh.data, &sh.spec, &cfg).unwrap();
    let what = format!("{} with {} on {}", o.name, sh.what, sh.path.name());
    let mut worst = 0.0f32;
    for t in 0..=100u64 {
        let g = Metrics::from_counts(&gpu.evaluate().unwrap().train);
        let c = Metrics::from_counts(&cpu.evaluate().unwrap().train);
        assert!(
            (g.loss - c.loss).abs() <= 1e-4 * c.loss.abs() + 1e-6,
            "{what}, iteration {t}: loss gpu {} cpu {}",
            g.loss,
            c.loss
        );
        if t == 50 {
            gpu.save_best().unwrap();
            cpu.save_best().unwrap();
        }
        if t % 25 == 0 {
            let d = norm_rel(&gpu.params().unwrap(), &cpu.params().unwrap());
            assert!(d <= REL, "{what}, iteration {t}: weights off by {d:e}");
            worst = worst.max(d);
        }
        if t < 100 {
            gpu.update().unwrap();
            cpu.update().unwrap();
        }
    }
    for best in [false, true] {
        let (g, c) = (
            gpu.optimizer_state(best).unwrap(),
            cpu.optimizer_state(best).unwrap(),
        );
        assert_eq!(c.buffers.len(), o.optimizer.buffers());
        state_close(&format!("{what}, best {best}"), &g, &c);
    }
    let d = norm_rel(&gpu.best_params().unwrap(), &cpu.best_params().unwrap());
    assert!(d <= REL, "{what}: best weights off by {d:e}");
    Some(worst)
}

fn agree_all(k: usize, which: impl Fn(&OptCase) -> bool) {
    let mut worst = 0.0f32;
    for sh in shapes(k) {
        for o in optimizer_cases().iter().filter(|o| which(o)) {
            let Some(d) = agree(&sh, o) else { return };
            worst = worst.max(d);
        }
    }
    eprintln!("K = {k}: the largest relative difference {worst:e}");
}

fn is_sgd(o: &OptCase) -> bool {
    o.optimizer.kind == wgtrain::optim::OptimizerKind::Sgd
}

#[test]
fn sgd_family_agrees_with_the_cpu_one_logit() {
    agree_all(2, is_sgd);
}

#[test]
fn adam_family_agrees_with_the_cpu_one_logit() {
    agree_all(2, |o| !is_sgd(o));
}

#[test]
fn sgd_family_agrees_with_the_cpu_three_classes() {
    agree_all(3, is_sgd);
}

#[test]
fn adam_family_agrees_with_the_cpu_three_classes() {
    agree_all(3, |o| !is_sgd(o));
}

/// Warm starts: 50 updates, then a new session from those weights and the optimizer state
/// (its step 50) runs 50 more, bit for bit the weights and state of 100 straight, on every
/// path, with optimizers whose state and schedule both carry over.
#[test]
fn a_warm_start_continues_bit_for_bit() {
    use KernelPath::*;
    let cases: Vec<OptCase> = optimizer_cases()
        .into_iter()
        .filter(|o| ["adamw", "step schedule", "cosine schedule", "nesterov"].contains(&o.name))
        .collect();
    assert_eq!(cases.len(), 4);
    for (hidden, path) in [
        (&[][..], OneWorkgroup),
        (&[], Blocked),
        (&[6], OnePassMlp),
        (&[6], Layered),
    ] {
        for k in [2, 3] {
            let sh = shape("65 rows × 7", 65, 7, hidden, k, path, None);
            for o in &cases {
                let what = format!("{} on {}, K = {k}", o.name, path.name());
                let cfg = o.config(&sh.spec, 3);
                let run = |cfg: &SessionConfig, n: u64| {
                    let mut s = gpu_on(&sh, cfg)?;
                    for _ in 0..n {
                        s.evaluate().unwrap();
                        s.update().unwrap();
                    }
                    Some((s.params().unwrap(), s.optimizer_state(false).unwrap()))
                };
                let Some((straight, straight_state)) = run(&cfg, 100) else {
                    return;
                };
                let (half, state) = run(&cfg, 50).unwrap();
                assert_eq!(state.step, 0, "{what}: the step count at the start");
                let resumed = SessionConfig {
                    params: half,
                    resume: Some(OptState {
                        step: state.step + 50,
                        ..state
                    }),
                    ..cfg.clone()
                };
                let (after, after_state) = run(&resumed, 50).unwrap();
                assert_eq!(bits(&after), bits(&straight), "{what}: weights");
                assert_eq!(after_state.step, 50, "{what}");
                assert_eq!(
                    after_state.buffers.len(),
                    straight_state.buffers.len(),
                    "{what}"
                );
                for (a, b) in after_state.buffers.iter().zip(&straight_state.buffers) {
                    assert_eq!(bits(a), bits(b), "{what}: the optimizer state");
                }
            }
        }
    }
}

/// Whole runs through `train::train` stop at the same iteration for the same reason on both
/// backends, for every optimizer, under a threshold rule and a patience rule; with
/// restore-best the best weights' optimizer state agrees too.
fn same_stop(hidden: &[usize]) {
    use wgtrain::stop::{MinDelta, StopReason, StopRule};
    use wgtrain::train::{Monitor, TrainOptions};
    let (train, val) = moons_split(300, 61);
    let sp = spec(&train, hidden, Activation::Tanh);
    let threshold = TrainOptions {
        monitor: Monitor::Val,
        ..TrainOptions::new(StopRule {
            threshold: Some(0.77),
            ..rule(wgtrain::metrics::Metric::Accuracy, None, 3000)
        })
    };
    let patience = TrainOptions {
        restore_best: true,
        ..TrainOptions::new(StopRule {
            patience: Some(4),
            min_delta: MinDelta::Abs(1e-3),
            ..rule(wgtrain::metrics::Metric::Loss, None, 3000)
        })
    };
    for o in optimizer_cases() {
        let cfg = o.config(&sp, 61);
        for (name, opts, reason) in [
            ("threshold", &threshold, StopReason::Threshold),
            ("patience", &patience, StopReason::Patience),
        ] {
            let what = format!("{} under a {name} rule, hidden {hidden:?}", o.name);
            let Some(mut gpu) = session_val(Kind::Gpu, &train, Some(&val), &sp, &cfg) else {
                return;
            };
            let mut cpu = session_val(Kind::Cpu, &train, Some(&val), &sp, &cfg).unwrap();
            let (g, _) = train_with(gpu.as_mut(), opts);
            let (c, _) = train_with(cpu.as_mut(), opts);
            assert_eq!(c.stop.reason, reason, "{what}: {:?}", c.stop);
            assert!(c.stop.stopped_at > 0, "{what}: the case must need training");
            assert_eq!(g.stop.reason, c.stop.reason, "{what}");
            assert_eq!(g.stop.stopped_at, c.stop.stopped_at, "{what}");
            assert_eq!(g.stop.iteration, c.stop.iteration, "{what}");
            eprintln!("{what}: stopped at {}", c.stop.stopped_at);
            assert!(norm_rel(&g.params, &c.params) <= 1e-4, "{what}: weights");
            let (gs, cs) = (
                gpu.optimizer_state(opts.restore_best).unwrap(),
                cpu.optimizer_state(opts.restore_best).unwrap(),
            );
            assert_eq!(gs.buffers.len(), cs.buffers.len(), "{what}: buffers");
            for (a, b) in gs.buffers.iter().zip(&cs.buffers) {
                assert!(norm_rel(a, b) <= 1e-3, "{what}: the optimizer state");
            }
        }
    }
}

#[test]
fn same_stop_logistic() {
    same_stop(&[]);
}

#[test]
fn same_stop_mlp() {
    same_stop(&[8]);
}

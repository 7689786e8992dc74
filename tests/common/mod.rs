//! Shared test helpers: one test body, run on both backends.
#![allow(dead_code)]

use std::io::Write;

use wgtrain::backend::cpu::CpuSession;
use wgtrain::backend::gpu::{GpuContext, GpuSession, KernelPath};
use wgtrain::backend::{Session, SessionConfig};
use wgtrain::data::{self, Dataset, Demo, DemoOptions, Standardizer};
use wgtrain::metrics::{Metric, Metrics};
use wgtrain::model::{Activation, Head, ModelSpec};
use wgtrain::stop::StopRule;
use wgtrain::train::{self, CheckRecord, Outcome, TrainOptions};

pub mod cli;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Cpu,
    Gpu,
}

/// Says loudly that a GPU test cannot run; with `CI` set, fails instead.
pub fn no_gpu(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but no GPU adapter is available, so GPU tests cannot run: {why}");
    }
    // Straight to the stream: the test harness captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! GPU TEST SKIPPED: no GPU adapter ({why}).\n!!! Install lavapipe (apt-get install mesa-vulkan-drivers) to run it.\n"
    );
}

/// A GPU context, or `None` after saying loudly why not.
pub fn gpu_context() -> Option<GpuContext> {
    match GpuContext::open(None) {
        Ok(c) => Some(c),
        Err(e) => {
            no_gpu(&e.to_string());
            None
        }
    }
}

/// A GPU context whose sessions must take `path` (a session where it does not apply or fit
/// fails).
pub fn gpu_context_on(path: KernelPath) -> Option<GpuContext> {
    let mut ctx = gpu_context()?;
    ctx.force_path = Some(path);
    Some(ctx)
}

/// A GPU context whose small logistic regressions take the one-workgroup kernel with `wg`
/// invocations (64 on real GPUs, 8 on CPU adapters by default); other sessions take the
/// planner's path.
pub fn gpu_context_loop_workgroup(wg: u32) -> Option<GpuContext> {
    let mut ctx = gpu_context()?;
    ctx.loop_workgroup = wg;
    Some(ctx)
}

/// A session on `kind`; `None` when the GPU is missing (after `no_gpu`).
pub fn session(
    kind: Kind,
    data: &Dataset,
    spec: &ModelSpec,
    cfg: &SessionConfig,
) -> Option<Box<dyn Session>> {
    session_val(kind, data, None, spec, cfg)
}

/// A session with validation rows.
pub fn session_val(
    kind: Kind,
    data: &Dataset,
    val: Option<&Dataset>,
    spec: &ModelSpec,
    cfg: &SessionConfig,
) -> Option<Box<dyn Session>> {
    match kind {
        Kind::Cpu => Some(Box::new(
            CpuSession::new(data, val, spec, cfg).expect("cpu session"),
        )),
        Kind::Gpu => {
            let ctx = gpu_context()?;
            Some(Box::new(
                GpuSession::new(ctx, data, val, spec, cfg).expect("gpu session"),
            ))
        }
    }
}

/// Moons with a stratified validation split, standardized on the training rows.
pub fn moons_split(rows: usize, seed: u64) -> (Dataset, Dataset) {
    let raw = data::demo(
        Demo::Moons,
        &data::DemoOptions {
            rows: Some(rows),
            noise: 0.1,
            seed,
            ..Default::default()
        },
    )
    .unwrap();
    let (mut t, mut v) = data::split_stratified(&raw, 0.3, seed).unwrap();
    let s = Standardizer::fit(&t);
    s.apply(&mut t);
    s.apply(&mut v);
    (t, v)
}

/// A standardized demo set.
pub fn demo(kind: Demo, rows: usize, features: Option<usize>, noise: f64, seed: u64) -> Dataset {
    let mut d = data::demo(
        kind,
        &DemoOptions {
            rows: if kind == Demo::Xnor { None } else { Some(rows) },
            features,
            classes: None,
            noise,
            seed,
        },
    )
    .expect("demo data");
    Standardizer::fit(&d).apply(&mut d);
    d
}

/// A standardized demo set of `classes` classes (hyperplane takes `features`).
pub fn demo_k(
    kind: Demo,
    rows: usize,
    features: Option<usize>,
    classes: usize,
    noise: f64,
    seed: u64,
) -> Dataset {
    let mut d = data::demo(
        kind,
        &DemoOptions {
            rows: Some(rows),
            features,
            classes: Some(classes),
            noise,
            seed,
        },
    )
    .expect("demo data");
    Standardizer::fit(&d).apply(&mut d);
    d
}

/// A softmax head of `k` classes over `data`'s features.
pub fn spec_k(data: &Dataset, hidden: &[usize], act: Activation, k: usize) -> ModelSpec {
    ModelSpec::with_head(data.features, hidden, act, Head::Softmax, k).expect("spec")
}

pub fn spec(data: &Dataset, hidden: &[usize], act: Activation) -> ModelSpec {
    ModelSpec::new(data.features, hidden, act).expect("spec")
}

pub fn config(spec: &ModelSpec, lr: f32, seed: u64) -> SessionConfig {
    SessionConfig {
        params: spec.init_params(seed),
        lr,
        ..Default::default()
    }
}

pub fn rule(metric: Metric, threshold: Option<f64>, max_iter: u64) -> StopRule {
    StopRule {
        metric,
        threshold,
        max_iter,
        ..Default::default()
    }
}

/// Trains on the training rows with every iteration checked; returns the outcome and every
/// check's training metrics.
pub fn train_all(s: &mut dyn Session, rule: &StopRule) -> (Outcome, Vec<Metrics>) {
    assert_eq!(rule.eval_every, 1);
    let (out, seen) = train_with(s, &TrainOptions::new(rule.clone()));
    (out, seen.iter().map(|c| c.train).collect())
}

/// Trains with `opts`; returns the outcome and every logged check.
pub fn train_with(s: &mut dyn Session, opts: &TrainOptions) -> (Outcome, Vec<CheckRecord>) {
    let mut seen: Vec<CheckRecord> = Vec::new();
    let out = train::train(s, opts, |c| {
        assert!(
            seen.last().is_none_or(|p| p.iteration < c.iteration),
            "checks come in order"
        );
        seen.push(*c);
        Ok(())
    })
    .expect("training");
    (out, seen)
}

/// The weights after exactly `t` updates, by driving a fresh session by hand.
pub fn params_after(mut s: Box<dyn Session>, t: u64) -> Vec<f32> {
    for _ in 0..t {
        s.evaluate().expect("evaluate");
        s.update().expect("update");
    }
    s.params().expect("params")
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Defines `mod $name { fn cpu(); fn gpu(); }` running one body with `$kind` bound to each
/// (a `common::Kind`); doc comments and other attributes before `fn` go on the module.
#[macro_export]
macro_rules! both_backends {
    ($($(#[$meta:meta])* fn $name:ident($kind:ident) $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                fn body($kind: $crate::common::Kind) $body
                #[test]
                fn cpu() {
                    body($crate::common::Kind::Cpu)
                }
                #[test]
                fn gpu() {
                    body($crate::common::Kind::Gpu)
                }
            }
        )*
    };
}

/// One optimizer and schedule the GPU is held to the CPU with.
#[derive(Clone, Copy, Debug)]
pub struct OptCase {
    pub name: &'static str,
    pub lr: f32,
    pub optimizer: wgtrain::optim::Optimizer,
    pub schedule: wgtrain::optim::Schedule,
}

impl OptCase {
    /// The session's configuration with `spec`'s initial weights from `seed`.
    pub fn config(&self, spec: &ModelSpec, seed: u64) -> SessionConfig {
        SessionConfig {
            optimizer: self.optimizer,
            schedule: self.schedule,
            ..config(spec, self.lr, seed)
        }
    }
}

/// SGD plain, with momentum, Nesterov and weight decay; Adam with and without (coupled)
/// weight decay; AdamW; a step and a cosine schedule.
pub fn optimizer_cases() -> Vec<OptCase> {
    use wgtrain::optim::{Optimizer, OptimizerKind, Schedule};
    let sgd = Optimizer::default();
    let adam = Optimizer {
        kind: OptimizerKind::Adam,
        ..sgd
    };
    let case = |name, lr, optimizer, schedule| OptCase {
        name,
        lr,
        optimizer,
        schedule,
    };
    let momentum = Optimizer {
        momentum: 0.9,
        ..sgd
    };
    vec![
        case("sgd", 0.5, sgd, Schedule::Constant),
        case("momentum", 0.1, momentum, Schedule::Constant),
        case(
            "nesterov",
            0.1,
            Optimizer {
                nesterov: true,
                ..momentum
            },
            Schedule::Constant,
        ),
        case(
            "sgd weight decay",
            0.5,
            Optimizer {
                weight_decay: 0.05,
                ..sgd
            },
            Schedule::Constant,
        ),
        case(
            "momentum weight decay",
            0.1,
            Optimizer {
                weight_decay: 0.05,
                ..momentum
            },
            Schedule::Constant,
        ),
        case("adam", 0.02, adam, Schedule::Constant),
        case(
            "adam weight decay",
            0.02,
            Optimizer {
                weight_decay: 0.05,
                ..adam
            },
            Schedule::Constant,
        ),
        case(
            "adamw",
            0.02,
            Optimizer {
                kind: OptimizerKind::Adamw,
                weight_decay: 0.1,
                ..adam
            },
            Schedule::Constant,
        ),
        case(
            "step schedule",
            0.2,
            Optimizer {
                momentum: 0.5,
                ..sgd
            },
            Schedule::Step {
                step: 30,
                gamma: 0.5,
            },
        ),
        case(
            "cosine schedule",
            0.05,
            adam,
            Schedule::Cosine { t_max: 80 },
        ),
    ]
}

/// The largest |a − b| / max(|b|, floor) over two vectors of the same length.
pub fn max_rel(a: &[f32], b: &[f32], floor: f32) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(floor))
        .fold(0.0, |m, d| if d.is_nan() || d > m { d } else { m })
}

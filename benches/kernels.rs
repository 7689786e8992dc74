//! Criterion benchmarks of each GPU kernel alone, after checking the session against the CPU
//! reference (verify, then benchmark). For every kernel one iteration records (logistic
//! regression 10,000 × 64 and, in one workgroup, 1,000 × 16; an MLP 64 → 128 → 1 on 2,000
//! rows, on the layered kernels and in one pass; softmax heads of ten classes, blocked and
//! in one pass), the time per dispatch of that kernel repeated in one submission, measured
//! until the device has finished.
//!
//! `cargo bench --bench kernels`. Opens the default adapter (WGPU_ADAPTER_NAME picks another)
//! and says so loudly when there is none. Sizes are small because lavapipe, CI's software
//! Vulkan driver, runs barrier-heavy kernels slowly; judge kernel speed on a real GPU.

use std::time::Duration;

use criterion::{Criterion, criterion_group};

use wgtrain::backend::gpu::{GpuContext, GpuSession, KernelPath};
use wgtrain::backend::{Session, SessionConfig, reference};
use wgtrain::data::{self, Dataset, Demo, DemoOptions, Standardizer};
use wgtrain::model::{Activation, Head, ModelSpec};

fn data(rows: usize, features: usize, classes: Option<usize>) -> Dataset {
    let mut d = data::demo(
        Demo::Hyperplane,
        &DemoOptions {
            rows: Some(rows),
            features: Some(features),
            classes,
            noise: 0.05,
            seed: 0,
        },
    )
    .expect("demo data");
    Standardizer::fit(&d).apply(&mut d);
    d
}

/// The GPU session's first evaluations and updates against the CPU reference fed the
/// session's weights: loss to 1e-5 relative, confusion counts exactly, the step to 1e-4.
fn verify(gpu: &mut GpuSession, d: &Dataset, spec: &ModelSpec, lr: f32, name: &str) {
    let layout = spec.layout();
    for step in 0..2 {
        let w = gpu.params().expect("GPU params");
        let g = gpu.evaluate().expect("GPU evaluate").train;
        let (c, grad, _) = reference::evaluate(&d.x, &d.y, &w, &layout, spec.activation);
        let rel = (g.loss_sum - c.loss_sum).abs() / c.loss_sum.abs().max(1e-30);
        assert!(
            rel <= 1e-5,
            "{name} step {step}: loss GPU {} CPU {}",
            g.loss_sum,
            c.loss_sum
        );
        assert_eq!(g.confusion, c.confusion, "{name}");
        gpu.update().expect("GPU update");
        let next = gpu.params().expect("GPU params");
        for (i, ((n, w), g)) in next.iter().zip(&w).zip(&grad).enumerate() {
            let want = w - lr * g;
            assert!(
                (n - want).abs() <= 1e-4 + 1e-4 * want.abs(),
                "{name}: parameter {i}: {n} vs {want}"
            );
        }
    }
}

/// `one_pass`: a one-hidden-layer MLP on mlp_pass.wgsl (else the layered kernels); `k`: a
/// softmax head of k classes (`None`: sigmoid).
fn bench_model(
    c: &mut Criterion,
    name: &str,
    hidden: &[usize],
    d: &Dataset,
    one_pass: bool,
    k: Option<usize>,
) {
    let mut ctx = match GpuContext::open(None) {
        Ok(ctx) => ctx,
        Err(e) => {
            let why = e.to_string();
            eprintln!(
                "\n!!! {name}: GPU kernel benchmarks SKIPPED: no GPU adapter ({})\n",
                why.lines().next().unwrap_or_default()
            );
            return;
        }
    };
    if !hidden.is_empty() {
        ctx.force_path = Some(if one_pass {
            KernelPath::OnePassMlp
        } else {
            KernelPath::Layered
        });
    }
    let adapter = ctx.adapter.name.clone();
    let spec = match k {
        None => ModelSpec::new(d.features, hidden, Activation::Relu),
        Some(k) => ModelSpec::with_head(d.features, hidden, Activation::Relu, Head::Softmax, k),
    }
    .expect("model");
    let cfg = SessionConfig {
        params: spec.init_params(0),
        lr: 0.1,
        ..Default::default()
    };
    let mut gpu = GpuSession::new(ctx, d, None, &spec, &cfg).expect("GPU session");
    verify(&mut gpu, d, &spec, cfg.lr, name);

    let mut group = c.benchmark_group(format!("{name} [{adapter}]"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(1));
    for (i, kernel) in gpu.kernels().into_iter().enumerate() {
        group.bench_function(format!("{i:02} {kernel}"), |b| {
            b.iter_custom(|iters| {
                let times = u32::try_from(iters).unwrap_or(u32::MAX);
                gpu.time_kernel(i, times).expect("kernel")
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_model(
        c,
        "logistic_10000x64",
        &[],
        &data(10_000, 64, None),
        false,
        None,
    );
    // Small enough for lr_loop.wgsl: its evaluation and its update-only dispatch.
    let small = data(1_000, 16, None);
    bench_model(c, "logistic_1000x16", &[], &small, false, None);
    let mlp = data(2_000, 64, None);
    bench_model(c, "mlp_64-128-1_2000", &[128], &mlp, false, None);
    bench_model(c, "mlp_64-128-1_2000_one_pass", &[128], &mlp, true, None);
    // Softmax heads of ten classes: blocked logistic regression and the one-pass MLP.
    let ten = data(10_000, 64, Some(10));
    bench_model(c, "softmax10_logistic_10000x64", &[], &ten, false, Some(10));
    let ten = data(2_000, 64, Some(10));
    bench_model(
        c,
        "softmax10_mlp_64-128-10_2000_one_pass",
        &[128],
        &ten,
        true,
        Some(10),
    );
}

criterion_group!(kernel_benches, benches);

fn main() {
    kernel_benches();
    Criterion::default().configure_from_args().final_summary();
}

//! Criterion benchmarks of each GPU kernel alone, after checking the session against the CPU
//! reference (verify, then benchmark). For every kernel one iteration records (logistic
//! regression 10,000 × 64 and, in one workgroup, 1,000 × 16; an MLP 64 → 128 → 1 on 2,000
//! rows, on the layered kernels and in one pass), the time per dispatch of that
//! kernel repeated in one submission, measured until the device has finished.
//!
//! `cargo bench --bench kernels`. Opens the default adapter (WGPU_ADAPTER_NAME picks another)
//! and says so loudly when there is none. Sizes are small because lavapipe, CI's software
//! Vulkan driver, runs barrier-heavy kernels slowly; judge kernel speed on a real GPU.

use std::time::Duration;

use criterion::{Criterion, criterion_group};

use wgtrain::backend::cpu::CpuSession;
use wgtrain::backend::gpu::{GpuContext, GpuSession, KernelPath};
use wgtrain::backend::{Session, SessionConfig};
use wgtrain::data::{self, Dataset, Demo, DemoOptions, Standardizer};
use wgtrain::metrics::Metrics;
use wgtrain::model::{Activation, ModelSpec};

fn data(rows: usize, features: usize) -> Dataset {
    let mut d = data::demo(
        Demo::Hyperplane,
        &DemoOptions {
            rows: Some(rows),
            features: Some(features),
            classes: None,
            noise: 0.05,
            seed: 0,
        },
    )
    .expect("demo data");
    Standardizer::fit(&d).apply(&mut d);
    d
}

/// The GPU session's first evaluation and update against the CPU's: loss to 1e-5 relative,
/// counts exactly, weights to 1e-4.
fn verify(gpu: &mut GpuSession, cpu: &mut CpuSession, name: &str) {
    for step in 0..2 {
        let g = Metrics::from_counts(&gpu.evaluate().expect("GPU evaluate").train);
        let c = Metrics::from_counts(&cpu.evaluate().expect("CPU evaluate").train);
        let rel = (g.loss - c.loss).abs() / c.loss.abs().max(1e-30);
        assert!(
            rel <= 1e-5,
            "{name} step {step}: loss GPU {} CPU {}",
            g.loss,
            c.loss
        );
        assert_eq!(
            (g.tp, g.fp, g.fn_, g.tn),
            (c.tp, c.fp, c.fn_, c.tn),
            "{name}"
        );
        gpu.update().expect("GPU update");
        cpu.update().expect("CPU update");
    }
    let (pg, pc) = (gpu.params().expect("GPU"), cpu.params().expect("CPU"));
    for (i, (g, c)) in pg.iter().zip(&pc).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4 + 1e-4 * c.abs(),
            "{name}: parameter {i}: {g} vs {c}"
        );
    }
}

/// `one_pass`: a one-hidden-layer MLP on mlp_pass.wgsl (else the layered kernels).
fn bench_model(c: &mut Criterion, name: &str, hidden: &[usize], d: &Dataset, one_pass: bool) {
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
    let spec = ModelSpec::new(d.features, hidden, Activation::Relu).expect("model");
    let cfg = SessionConfig {
        params: spec.init_params(0),
        lr: 0.1,
    };
    let mut gpu = GpuSession::new(ctx, d, None, &spec, &cfg).expect("GPU session");
    let mut cpu = CpuSession::new(d, None, &spec, &cfg).expect("CPU session");
    verify(&mut gpu, &mut cpu, name);

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
    bench_model(c, "logistic_10000x64", &[], &data(10_000, 64), false);
    // Small enough for lr_loop.wgsl: its evaluation and its update-only dispatch.
    bench_model(c, "logistic_1000x16", &[], &data(1_000, 16), false);
    let mlp = data(2_000, 64);
    bench_model(c, "mlp_64-128-1_2000", &[128], &mlp, false);
    bench_model(c, "mlp_64-128-1_2000_one_pass", &[128], &mlp, true);
}

criterion_group!(kernel_benches, benches);

fn main() {
    kernel_benches();
    Criterion::default().configure_from_args().final_summary();
}

//! Criterion benchmarks of one training iteration (evaluate + update) on the CPU and the GPU:
//! logistic regression on 10,000 × 64 and an MLP 64 → 128 → 1 (ReLU) on the same 10,000 rows,
//! and both with a softmax head of ten classes (64 → 10, 64 → 128 → 10).
//!
//! `cargo bench --bench iteration`. The GPU half opens the default adapter
//! (`GpuContext::open(None)`; WGPU_ADAPTER_NAME picks another) and is skipped with a notice
//! when there is none. Sample counts and times are small because lavapipe, the software
//! Vulkan driver CI has, needs about a second per MLP iteration. For whole training runs with
//! medians, spreads and speedups use `wgtrain bench`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, measurement::WallTime,
};

use wgtrain::backend::cpu::CpuSession;
use wgtrain::backend::gpu::{GpuContext, GpuSession};
use wgtrain::backend::{Session, SessionConfig};
use wgtrain::data::{self, Dataset, Demo, DemoOptions, Standardizer};
use wgtrain::model::{Activation, Head, ModelSpec};

const ROWS: usize = 10_000;
const FEATURES: usize = 64;

fn data(classes: Option<usize>) -> Dataset {
    let mut d = data::demo(
        Demo::Hyperplane,
        &DemoOptions {
            rows: Some(ROWS),
            features: Some(FEATURES),
            classes,
            noise: 0.0,
            seed: 0,
        },
    )
    .expect("demo data");
    Standardizer::fit(&d).apply(&mut d);
    d
}

/// The benchmarked unit: one full-batch iteration, metrics read back by `evaluate`.
fn iteration(session: &mut dyn Session) {
    black_box(session.evaluate().expect("evaluate"));
    session.update().expect("update");
}

/// `k`: a softmax head of k classes (`None`: sigmoid).
fn bench_model(c: &mut Criterion, name: &str, hidden: &[usize], data: &Dataset, k: Option<usize>) {
    let spec = match k {
        None => ModelSpec::new(FEATURES, hidden, Activation::Relu),
        Some(k) => ModelSpec::with_head(FEATURES, hidden, Activation::Relu, Head::Softmax, k),
    }
    .expect("model");
    let cfg = SessionConfig {
        params: spec.init_params(0),
        lr: 0.1,
        ..Default::default()
    };
    let mut group: BenchmarkGroup<WallTime> = c.benchmark_group(name);
    group.throughput(Throughput::Bytes((ROWS * FEATURES * 4) as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));

    let mut cpu = CpuSession::new(data, None, &spec, &cfg).expect("CPU session");
    group.bench_function("cpu", |b| b.iter(|| iteration(&mut cpu)));

    match GpuContext::open(None) {
        Ok(ctx) => {
            let adapter = ctx.adapter.name.clone();
            let mut gpu = GpuSession::new(ctx, data, None, &spec, &cfg).expect("GPU session");
            // One iteration per sample: a software adapter is too slow for criterion's
            // linearly growing sample sizes.
            group.sampling_mode(SamplingMode::Flat);
            group.bench_function(format!("gpu [{adapter}]"), |b| {
                b.iter(|| iteration(&mut gpu))
            });
        }
        Err(e) => {
            let why = e.to_string();
            eprintln!(
                "{name}/gpu SKIPPED: no GPU adapter ({})",
                why.lines().next().unwrap_or_default()
            );
        }
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let data2 = data(None);
    bench_model(c, "logistic_10000x64", &[], &data2, None);
    bench_model(c, "mlp_64-128-1_10000", &[128], &data2, None);
    let data10 = data(Some(10));
    bench_model(c, "softmax10_logistic_10000x64", &[], &data10, Some(10));
    bench_model(
        c,
        "softmax10_mlp_64-128-10_10000",
        &[128],
        &data10,
        Some(10),
    );
}

criterion_group!(iteration_benches, benches);

fn main() {
    iteration_benches();
    Criterion::default().configure_from_args().final_summary();
}

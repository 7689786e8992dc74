//! The measuring runner of `wgtrain bench`: the generated data, one training run per
//! configuration and repeat (a discarded warm-up first, then interleaved timed runs), and the
//! statistics of their times gathered into a [`BenchReport`].

use super::report::{BenchReport, ConfigResult, Speedup, Stats};
use super::spec::{BenchBackend, BenchConfig, BenchSpec, GpuKernels};
use crate::backend::gpu::KernelPath;
use crate::backend::{self, AdapterDesc, BackendChoice, SessionConfig};
use crate::data::{self, Dataset, Demo, DemoOptions, Standardizer};
use crate::error::{Error, Result};
use crate::metrics::Metric;
use crate::model::ModelSpec;
use crate::stop::{StopReason, StopRule};
use crate::train::{self, Monitor, SyncMode, TrainOptions};

/// A GPU session on the kernels `k` names, or an error that names the flag where they cannot
/// run this model on this data.
fn gpu_session_with(
    k: GpuKernels,
    spec: &BenchSpec,
    data: &Dataset,
    model: &ModelSpec,
    cfg: &SessionConfig,
) -> Result<backend::gpu::GpuSession> {
    let lr = model.is_logistic();
    let wrong = match k {
        GpuKernels::Blocked | GpuKernels::OneWorkgroup if !lr => {
            Some("run logistic regression; an MLP takes layered or one-pass")
        }
        GpuKernels::Layered | GpuKernels::OnePass if lr => {
            Some("run MLPs; logistic regression takes blocked or one-workgroup")
        }
        _ => None,
    };
    if let Some(why) = wrong {
        return Err(Error::Config(format!(
            "--gpu-kernels {}: these kernels {why}",
            k.name()
        )));
    }
    let path = match k {
        GpuKernels::Auto => None,
        GpuKernels::Blocked => Some(KernelPath::Blocked),
        GpuKernels::OneWorkgroup => Some(KernelPath::OneWorkgroup),
        GpuKernels::Layered => Some(KernelPath::Layered),
        GpuKernels::OnePass => Some(KernelPath::OnePassMlp),
    };
    let mut ctx = backend::gpu::GpuContext::open(spec.adapter.as_deref())?;
    ctx.force_path = path;
    backend::gpu::kernel_path(&ctx, data, None, model)
        .map_err(|e| Error::Config(format!("--gpu-kernels {}: {e}", k.name())))?;
    let s = backend::gpu::GpuSession::new(ctx, data, None, model, cfg)?;
    Ok(s)
}

/// Generated data: `data::demo(Hyperplane)` standardized.
pub fn bench_data(spec: &BenchSpec) -> Result<Dataset> {
    let mut d = data::demo(
        Demo::Hyperplane,
        &DemoOptions {
            rows: Some(spec.rows),
            features: Some(spec.features),
            classes: Some(spec.classes),
            noise: 0.0,
            seed: spec.seed,
        },
    )?;
    Standardizer::fit(&d).apply(&mut d);
    Ok(d)
}

/// The result of one timed training run.
struct Run {
    train_s: f64,
    adapter: Option<AdapterDesc>,
    loss: f64,
    accuracy: f64,
}

fn run_once(
    spec: &BenchSpec,
    model: &ModelSpec,
    data: &Dataset,
    config: BenchConfig,
) -> Result<Run> {
    let choice = match config.backend {
        BenchBackend::Cpu => BackendChoice::Cpu,
        BenchBackend::Gpu => BackendChoice::Gpu,
    };
    let cfg = SessionConfig {
        params: model.init_params(spec.seed),
        lr: spec.lr,
        ..Default::default()
    };
    let mut session = match config.kernels {
        Some(GpuKernels::Auto) | None => {
            backend::open(choice, spec.adapter.as_deref(), data, None, model, &cfg)?.session
        }
        Some(k) => Box::new(gpu_session_with(k, spec, data, model, &cfg)?),
    };
    let rule = StopRule {
        // The CLI's default metric; with no threshold only `max_iter` stops the run.
        metric: Metric::Accuracy,
        threshold: None,
        max_iter: spec.iters,
        ..StopRule::default()
    };
    let opts = TrainOptions {
        monitor: Monitor::Train,
        restore_best: false,
        sync: config.sync.unwrap_or(SyncMode::Every),
        chunk: spec.chunk,
        ..TrainOptions::new(rule)
    };
    let outcome = train::train(session.as_mut(), &opts, |_| Ok(()))?;
    if outcome.stop.reason != StopReason::MaxIter || outcome.stop.stopped_at != spec.iters {
        return Err(Error::Config(format!(
            "{}: training stopped at iteration {} ({}) before --iters {}; try a smaller --lr",
            config.label(),
            outcome.stop.stopped_at,
            outcome.stop.reason.name(),
            spec.iters
        )));
    }
    Ok(Run {
        train_s: outcome.train_s,
        adapter: session.adapter(),
        loss: outcome.metrics.loss,
        accuracy: outcome.metrics.accuracy,
    })
}

/// Runs the benchmark. `progress` hears one line per run (for stderr).
pub fn run(spec: &BenchSpec, mut progress: impl FnMut(&str)) -> Result<BenchReport> {
    spec.validate()?;
    let model = spec.model()?;
    progress(&format!(
        "generating {} rows × {} features",
        spec.rows, spec.features
    ));
    let data = bench_data(spec)?;
    let n = spec.configs.len();
    let mut warmups = Vec::with_capacity(n);
    for c in &spec.configs {
        progress(&format!("{}: warm-up run", c.label()));
        warmups.push(run_once(spec, &model, &data, *c)?);
    }
    let mut runs: Vec<Vec<Run>> = (0..n).map(|_| Vec::new()).collect();
    for r in 0..spec.repeats {
        for (i, c) in spec.configs.iter().enumerate() {
            let run = run_once(spec, &model, &data, *c)?;
            progress(&format!(
                "{}: run {}/{}: {:.4} s",
                c.label(),
                r + 1,
                spec.repeats,
                run.train_s
            ));
            runs[i].push(run);
        }
    }
    let iters = spec.iters as f64;
    let first: Vec<f64> = runs[0].iter().map(|r| r.train_s).collect();
    let mut results = Vec::with_capacity(n);
    for ((c, w), rs) in spec.configs.iter().zip(&warmups).zip(&runs) {
        let train_s: Vec<f64> = rs.iter().map(|r| r.train_s).collect();
        let per_iteration_s: Vec<f64> = train_s.iter().map(|t| t / iters).collect();
        let stats = Stats::of(&per_iteration_s);
        let ratios: Vec<f64> = first.iter().zip(&train_s).map(|(a, b)| a / b).collect();
        let rs_stats = Stats::of(&ratios);
        let last = rs.last().expect("repeats ≥ 1");
        results.push(ConfigResult {
            label: c.label(),
            config: *c,
            adapter: last.adapter.clone(),
            warmup_train_s: w.train_s,
            train_s,
            per_iteration_s,
            per_iteration: stats,
            iterations_per_s: 1.0 / stats.median,
            gb_per_s: spec.bytes_per_iteration() as f64 / stats.median / 1e9,
            gflop_per_s: spec.flops_per_iteration() / stats.median / 1e9,
            speedup: Speedup {
                against: spec.configs[0],
                median: rs_stats.median,
                min: rs_stats.min,
                max: rs_stats.max,
            },
            final_loss: last.loss,
            final_accuracy: last.accuracy,
        });
    }
    let layers = model.layers.clone();
    let sum: Vec<String> = layers
        .windows(2)
        .map(|w| format!("{}·{}", w[0], w[1]))
        .collect();
    Ok(BenchReport {
        wgtrain_version: env!("CARGO_PKG_VERSION").to_string(),
        data: format!(
            "demo hyperplane (uniform in [-1, 1], standardized), seed {}",
            spec.seed
        ),
        rows: spec.rows,
        features: spec.features,
        activation: (!model.is_logistic()).then_some(model.activation),
        layers,
        lr: spec.lr,
        iters: spec.iters,
        repeats: spec.repeats,
        seed: spec.seed,
        chunk: spec.chunk,
        bytes_per_iteration: spec.bytes_per_iteration(),
        flops_per_iteration: spec.flops_per_iteration(),
        flop_formula: format!(
            "FLOPs per iteration ≈ forward 2·rows·Σ(in·out) + backward 4·rows·Σ(in·out) = 6·{}·({}) = {:.4e} (biases, activations and the loss not counted)",
            spec.rows,
            sum.join(" + "),
            spec.flops_per_iteration()
        ),
        timing_method: format!(
            "per run: train::train from the first forward pass to the returned weights ({} updates, {} forward passes, results read back to the host, so GPU work is complete); time per iteration = run time / {}; device opening, upload and pipelines not timed; 1 discarded warm-up run per configuration, then {} runs per configuration interleaved; speedup = t(first) / t(this), paired by repeat",
            spec.iters,
            spec.iters + 1,
            spec.iters,
            spec.repeats
        ),
        results,
    })
}

//! `wgtrain bench`: training speed per configuration (backend × GPU sync mode) on generated
//! data, with a fixed number of iterations.
//!
//! What is timed is the library's own training loop, [`train::train`], from the first forward
//! pass to the returned weights: `iters` updates and `iters + 1` forward passes whose metrics
//! are read back to the host, so on a GPU the clock only stops once the device has finished
//! the work. Data generation, upload, pipeline creation and device opening are set-up and are
//! not timed. Each configuration gets one discarded warm-up run; the timed runs are then
//! interleaved (repeat 1 of every configuration, then repeat 2, ...) so that drifts of the
//! machine hit every configuration alike, and speedups are paired by repeat.

use std::fmt::Write as _;

use serde::Serialize;

use crate::backend::{self, AdapterDesc, BackendChoice, SessionConfig};
use crate::data::{self, Dataset, Demo, DemoOptions, Standardizer};
use crate::error::{Error, Result};
use crate::metrics::Metric;
use crate::model::{Activation, ModelSpec};
use crate::stop::{StopReason, StopRule};
use crate::train::{self, Monitor, SyncMode, TrainOptions};

/// A backend to measure (no `auto`: a benchmark says where it runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BenchBackend {
    Cpu,
    Gpu,
}

impl BenchBackend {
    pub fn name(self) -> &'static str {
        match self {
            BenchBackend::Cpu => "cpu",
            BenchBackend::Gpu => "gpu",
        }
    }
}

/// Which GPU kernels run the model (`--gpu-kernels`): `blocked` and `one-workgroup` are
/// logistic regression's, `layered` and `one-pass` an MLP's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GpuKernels {
    /// The library's choice: for logistic regression one workgroup where the data fits, else
    /// blocked; for an MLP one pass where the model fits, else layered.
    Auto,
    /// Logistic regression: the blocked kernels of big data (lr_pass, reduce_stats,
    /// reduce_update).
    Blocked,
    /// Logistic regression: whole iterations in one workgroup (lr_loop.wgsl); an error where
    /// the data does not fit.
    OneWorkgroup,
    /// An MLP: a dispatch per layer and direction (dense_forward, loss_metrics, dense_grad,
    /// dense_backprop), then reduce_stats and reduce_update.
    Layered,
    /// An MLP with one hidden layer: one pass over X per iteration (mlp_pass.wgsl); an error
    /// where the model does not fit.
    OnePass,
}

impl GpuKernels {
    pub fn name(self) -> &'static str {
        match self {
            GpuKernels::Auto => "auto",
            GpuKernels::Blocked => "blocked",
            GpuKernels::OneWorkgroup => "one-workgroup",
            GpuKernels::Layered => "layered",
            GpuKernels::OnePass => "one-pass",
        }
    }
}

fn sync_name(s: SyncMode) -> &'static str {
    match s {
        SyncMode::Every => "every",
        SyncMode::Chunk => "chunk",
    }
}

/// One measured configuration. `sync` is `None` on the CPU, which has nothing to sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BenchConfig {
    pub backend: BenchBackend,
    pub sync: Option<SyncMode>,
    /// `None` on the CPU.
    pub kernels: Option<GpuKernels>,
}

impl BenchConfig {
    /// `cpu`, `gpu sync=every`, `gpu sync=chunk kernels=blocked`, ...
    pub fn label(&self) -> String {
        let mut l = self.backend.name().to_string();
        if let Some(s) = self.sync {
            l += &format!(" sync={}", sync_name(s));
        }
        if let Some(k) = self.kernels.filter(|&k| k != GpuKernels::Auto) {
            l += &format!(" kernels={}", k.name());
        }
        l
    }
}

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
    let mut ctx = backend::gpu::GpuContext::open(spec.adapter.as_deref())?;
    if k == GpuKernels::Blocked {
        ctx.loop_max_elements = 0;
    }
    ctx.mlp_pass = k == GpuKernels::OnePass;
    let s = backend::gpu::GpuSession::new(ctx, data, None, model, cfg)?;
    if k == GpuKernels::OneWorkgroup && !s.looped() {
        return Err(Error::Config(format!(
            "--gpu-kernels one-workgroup: {} rows × {} features do not fit one workgroup (at \
             most 64 features and {} elements)",
            data.rows,
            data.features,
            backend::gpu::LOOP_MAX_ELEMENTS
        )));
    }
    if k == GpuKernels::OnePass && !s.one_pass_mlp() {
        return Err(Error::Config(format!(
            "--gpu-kernels one-pass: the MLP {} does not fit mlp_pass.wgsl (one hidden layer of \
             at most 128 units over at most 64 features)",
            model
                .layers
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join("→")
        )));
    }
    Ok(s)
}

/// The configurations of `--backends B,... --sync S,... --gpu-kernels K,...`: the CPU once,
/// the GPU once per sync mode and kernel choice, in the order given.
pub fn configs(
    backends: &[BenchBackend],
    syncs: &[SyncMode],
    kernels: &[GpuKernels],
) -> Vec<BenchConfig> {
    let mut out = Vec::new();
    for &backend in backends {
        match backend {
            BenchBackend::Cpu => out.push(BenchConfig {
                backend,
                sync: None,
                kernels: None,
            }),
            BenchBackend::Gpu => {
                for &s in syncs {
                    out.extend(kernels.iter().map(|&k| BenchConfig {
                        backend,
                        sync: Some(s),
                        kernels: Some(k),
                    }));
                }
            }
        }
    }
    out
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    pub rows: usize,
    pub features: usize,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// Updates per run (the stop rule is only `max_iter`).
    pub iters: u64,
    /// Timed runs per configuration (after one discarded warm-up run).
    pub repeats: usize,
    pub seed: u64,
    pub lr: f32,
    pub configs: Vec<BenchConfig>,
    /// GPU adapter name substring.
    pub adapter: Option<String>,
    /// `--chunk K` for `sync=chunk`; `None` adapts.
    pub chunk: Option<u32>,
}

impl BenchSpec {
    /// Rejects sizes and counts that cannot be measured, naming the flag.
    pub fn validate(&self) -> Result<()> {
        let at_least_1 = |flag: &str, v: u64| -> Result<()> {
            if v == 0 {
                return Err(Error::Config(format!("{flag} 0: must be at least 1")));
            }
            Ok(())
        };
        at_least_1("--rows", self.rows as u64)?;
        at_least_1("--features", self.features as u64)?;
        at_least_1("--iters", self.iters)?;
        at_least_1("--repeats", self.repeats as u64)?;
        if self.chunk == Some(0) {
            return Err(Error::Config("--chunk 0: must be at least 1".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Config(format!(
                "--lr {}: must be a finite number above 0",
                self.lr
            )));
        }
        if self.configs.is_empty() {
            return Err(Error::Config(
                "--backends: nothing to measure (give cpu, gpu or both)".into(),
            ));
        }
        for (i, c) in self.configs.iter().enumerate() {
            if self.configs[..i].contains(c) {
                return Err(Error::Config(format!(
                    "--backends/--sync/--gpu-kernels: {} is listed twice",
                    c.label()
                )));
            }
        }
        ModelSpec::new(self.features, &self.hidden, self.activation)?;
        data::check_demo_size(self.rows, Some(self.features))?;
        Ok(())
    }

    /// Layer sizes [features, hidden..., 1].
    pub fn layers(&self) -> Vec<usize> {
        let mut l = vec![self.features];
        l.extend_from_slice(&self.hidden);
        l.push(1);
        l
    }

    /// Σ over dense layers of inputs · outputs (biases left out).
    pub fn weights_per_row(&self) -> u64 {
        self.layers().windows(2).map(|w| (w[0] * w[1]) as u64).sum()
    }

    /// Bytes of the feature matrix X, which every iteration reads at least once.
    pub fn bytes_per_iteration(&self) -> u64 {
        self.rows as u64 * self.features as u64 * 4
    }

    /// Forward 2·rows·Σ(in·out) + backward 4·rows·Σ(in·out).
    pub fn flops_per_iteration(&self) -> f64 {
        6.0 * self.rows as f64 * self.weights_per_row() as f64
    }
}

/// Order statistics of a sample (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub median: f64,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one value.
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// Panics on an empty sample.
    pub fn of(xs: &[f64]) -> Stats {
        assert!(!xs.is_empty(), "statistics of an empty sample");
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let mean = v.iter().sum::<f64>() / n as f64;
        let stddev = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Stats {
            median,
            mean,
            stddev,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// A configuration's speed relative to the first: t_first / t_this per repeat (above 1: this
/// one is faster).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Speedup {
    pub against: BenchConfig,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The measurements of one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigResult {
    pub label: String,
    pub config: BenchConfig,
    pub adapter: Option<AdapterDesc>,
    /// The discarded warm-up run's training time.
    pub warmup_train_s: f64,
    /// Training time of each timed run, in run order.
    pub train_s: Vec<f64>,
    /// `train_s / iters` of each timed run.
    pub per_iteration_s: Vec<f64>,
    /// Of `per_iteration_s`.
    pub per_iteration: Stats,
    /// 1 / median time per iteration.
    pub iterations_per_s: f64,
    /// Bytes of X per iteration / median time per iteration, in 10⁹ bytes/s.
    pub gb_per_s: f64,
    /// FLOPs per iteration / median time per iteration, in 10⁹/s.
    pub gflop_per_s: f64,
    pub speedup: Speedup,
    /// Loss and accuracy of the last timed run's final weights (a sanity check that it trained).
    pub final_loss: f64,
    pub final_accuracy: f64,
}

/// A whole benchmark: its parameters and one result per configuration.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub wgtrain_version: String,
    pub data: String,
    pub rows: usize,
    pub features: usize,
    pub layers: Vec<usize>,
    /// `None` for logistic regression.
    pub activation: Option<Activation>,
    pub lr: f32,
    pub iters: u64,
    pub repeats: usize,
    pub seed: u64,
    pub chunk: Option<u32>,
    pub bytes_per_iteration: u64,
    pub flops_per_iteration: f64,
    pub flop_formula: String,
    pub timing_method: String,
    pub results: Vec<ConfigResult>,
}

/// Generated data: `data::demo(Hyperplane)` standardized.
pub fn bench_data(spec: &BenchSpec) -> Result<Dataset> {
    let mut d = data::demo(
        Demo::Hyperplane,
        &DemoOptions {
            rows: Some(spec.rows),
            features: Some(spec.features),
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
    let model = ModelSpec::new(spec.features, &spec.hidden, spec.activation)?;
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

/// A duration in the unit that suits it, hyperfine-style.
pub fn fmt_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn model_name(r: &BenchReport) -> String {
    let layers: Vec<String> = r.layers.iter().map(|l| l.to_string()).collect();
    match r.activation {
        None => format!("logistic regression {}", layers.join("→")),
        Some(a) => format!("MLP {} ({})", layers.join("→"), a.name()),
    }
}

fn adapter_name(c: &ConfigResult) -> String {
    match &c.adapter {
        Some(a) => format!(" [{}, {}]", a.name, a.api),
        None => String::new(),
    }
}

impl BenchReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a bench report always serializes")
    }

    fn headline(&self) -> String {
        format!(
            "{}, {} rows × {} features, lr {}, {} iterations × {} runs (+1 warm-up) per configuration{}",
            model_name(self),
            self.rows,
            self.features,
            self.lr,
            self.iters,
            self.repeats,
            match self.chunk {
                Some(k) => format!(", chunk {k}"),
                None => String::new(),
            }
        )
    }

    /// The report for people, hyperfine-style.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}\n", self.headline());
        for (i, c) in self.results.iter().enumerate() {
            let p = &c.per_iteration;
            let _ = writeln!(s, "Benchmark {}: {}{}", i + 1, c.label, adapter_name(c));
            let _ = writeln!(
                s,
                "  Time per iteration (median):    {:>10}   [min … max: {} … {}]",
                fmt_time(p.median),
                fmt_time(p.min),
                fmt_time(p.max)
            );
            let _ = writeln!(
                s,
                "  Time per iteration (mean ± σ):  {:>10} ± {}",
                fmt_time(p.mean),
                fmt_time(p.stddev)
            );
            let _ = writeln!(
                s,
                "  Throughput: {:.1} iterations/s, {:.2} GB/s¹, {:.2} GFLOP/s²   (final loss {:.4}, accuracy {:.4})\n",
                c.iterations_per_s, c.gb_per_s, c.gflop_per_s, c.final_loss, c.final_accuracy
            );
        }
        if self.results.len() > 1 {
            let base = &self.results[0].label;
            let _ = writeln!(s, "Summary (speed relative to {base}, paired by run)");
            for c in &self.results[1..] {
                let sp = &c.speedup;
                let verdict = if sp.median >= 1.0 {
                    format!("{:.2}× faster", sp.median)
                } else {
                    format!("{:.2}× slower", 1.0 / sp.median)
                };
                let _ = writeln!(
                    s,
                    "  {} ran {:.3} ({:.3} … {:.3}) times the speed of {base}: {verdict}",
                    c.label, sp.median, sp.min, sp.max
                );
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "¹ bytes of X per iteration = rows·features·4 = {} (read at least once per iteration); GB = 10⁹ bytes",
            fmt_bytes(self.bytes_per_iteration)
        );
        let _ = writeln!(s, "² {}", self.flop_formula);
        let _ = write!(s, "Timing: {}.", self.timing_method);
        s
    }

    /// A Markdown table, with the formulas as footnotes.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "**{}**\n", self.headline());
        let base = self
            .results
            .first()
            .map(|c| c.label.clone())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| Configuration | Median / iteration | Min … max | Mean ± σ | Iterations/s | GB/s¹ | GFLOP/s² | Speed vs {base} (min … max) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for c in &self.results {
            let p = &c.per_iteration;
            let _ = writeln!(
                s,
                "| {}{} | {} | {} … {} | {} ± {} | {:.1} | {:.2} | {:.2} | {:.3} ({:.3} … {:.3}) |",
                c.label,
                adapter_name(c),
                fmt_time(p.median),
                fmt_time(p.min),
                fmt_time(p.max),
                fmt_time(p.mean),
                fmt_time(p.stddev),
                c.iterations_per_s,
                c.gb_per_s,
                c.gflop_per_s,
                c.speedup.median,
                c.speedup.min,
                c.speedup.max
            );
        }
        let _ = writeln!(
            s,
            "\n¹ bytes of X per iteration = rows·features·4 = {} (read at least once per iteration); GB = 10⁹ bytes.  ",
            fmt_bytes(self.bytes_per_iteration)
        );
        let _ = writeln!(s, "² {}.  ", self.flop_formula);
        let _ = write!(s, "Timing: {}.", self.timing_method);
        s
    }
}

/// The flags of `wgtrain bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Rows of the generated data (demo hyperplane, standardized).
    #[arg(long, default_value_t = 100_000, value_parser = parse_count)]
    pub rows: usize,
    /// Features of the generated data.
    #[arg(long, default_value_t = 64)]
    pub features: usize,
    /// Hidden layer sizes, comma-separated (none: logistic regression).
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// Activation of the hidden layers.
    #[arg(long, value_enum, default_value = "relu")]
    pub activation: Activation,
    /// Updates per run (no early stopping: the only rule is this iteration count).
    #[arg(long, default_value_t = 100)]
    pub iters: u64,
    /// Backends to measure, comma-separated [default: cpu,gpu; gpu is skipped with a notice
    /// when there is no adapter].
    #[arg(long, value_enum, value_name = "B,...", value_delimiter = ',')]
    pub backends: Option<Vec<BenchBackend>>,
    /// GPU sync modes to measure, comma-separated (the CPU ignores it).
    #[arg(
        long,
        value_enum,
        value_name = "S,...",
        value_delimiter = ',',
        default_value = "every,chunk"
    )]
    pub sync: Vec<SyncMode>,
    /// GPU kernels, comma-separated: auto (the library's choice); for logistic regression
    /// blocked or one-workgroup (whole iterations in one workgroup); for an MLP layered or
    /// one-pass (one pass over X per iteration).
    #[arg(
        long,
        value_enum,
        value_name = "K,...",
        value_delimiter = ',',
        default_value = "auto"
    )]
    pub gpu_kernels: Vec<GpuKernels>,
    /// Iterations per chunk with sync=chunk [default: adaptive].
    #[arg(long, value_name = "K")]
    pub chunk: Option<u32>,
    /// Timed runs per configuration, after one discarded warm-up run.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Seed of the data and the MLP initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Learning rate of gradient descent.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub lr: f32,
    /// Pick the GPU adapter whose name contains this (see `wgtrain devices`).
    #[arg(long, value_name = "SUBSTRING")]
    pub adapter: Option<String>,
    /// Print the report as one JSON object on stdout.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the report as a Markdown table.
    #[arg(long)]
    pub markdown: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

impl BenchArgs {
    /// The spec these flags ask for. Without `--backends`, the GPU is measured only when an
    /// adapter opens; the returned notice says when it was skipped.
    pub fn spec(&self) -> Result<(BenchSpec, Option<String>)> {
        let explicit = self.backends.is_some();
        let backends = self
            .backends
            .clone()
            .unwrap_or_else(|| vec![BenchBackend::Cpu, BenchBackend::Gpu]);
        if backends.contains(&BenchBackend::Gpu) && self.sync.is_empty() {
            return Err(Error::Config(
                "--sync: give every, chunk or both for the GPU".into(),
            ));
        }
        let mut spec = BenchSpec {
            rows: self.rows,
            features: self.features,
            hidden: self.hidden.clone(),
            activation: self.activation,
            iters: self.iters,
            repeats: self.repeats,
            seed: self.seed,
            lr: self.lr,
            configs: configs(&backends, &self.sync, &self.gpu_kernels),
            adapter: self.adapter.clone(),
            chunk: self.chunk,
        };
        spec.validate()?;
        let mut notice = None;
        if !explicit {
            match backend::gpu::GpuContext::open(self.adapter.as_deref()) {
                Ok(_) => {}
                Err(Error::NoAdapter(why)) => {
                    let first = why.lines().next().unwrap_or_default().to_string();
                    notice = Some(format!(
                        "measuring the CPU only: {first} (--backends cpu silences this notice)"
                    ));
                    spec.configs.retain(|c| c.backend == BenchBackend::Cpu);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((spec, notice))
    }
}

/// A count in digits. A number in another form (`1e6`, `2.5`) is refused with the digits
/// to write where it is a whole number.
pub fn parse_count(s: &str) -> std::result::Result<usize, String> {
    if let Ok(n) = s.parse::<usize>() {
        return Ok(n);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("more than {}", usize::MAX));
    }
    match s.parse::<f64>() {
        // Whole numbers up to 2⁵³ print exactly.
        Ok(v) if (0.0..=9_007_199_254_740_992.0).contains(&v) && v.fract() == 0.0 => {
            Err(format!("write the count in digits: {v:.0}"))
        }
        _ => Err("expected a whole number in digits".into()),
    }
}

/// A byte count in decimal units (10⁶ = MB).
pub fn fmt_bytes(b: u64) -> String {
    let f = b as f64;
    if f >= 1e9 {
        format!("{:.2} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.2} kB", f / 1e3)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_odd_and_even_samples() {
        let s = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.mean), (2.0, 1.0, 3.0, 2.0));
        assert!((s.stddev - 1.0).abs() < 1e-12);
        let s = Stats::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!(s.median, 2.5);
        assert_eq!(Stats::of(&[5.0]).stddev, 0.0);
    }

    #[test]
    fn configs_expand_gpu_per_sync_mode() {
        let c = configs(
            &[BenchBackend::Gpu, BenchBackend::Cpu],
            &[SyncMode::Chunk, SyncMode::Every],
            &[GpuKernels::Auto],
        );
        let labels: Vec<String> = c.iter().map(BenchConfig::label).collect();
        assert_eq!(labels, ["gpu sync=chunk", "gpu sync=every", "cpu"]);
        let c = configs(
            &[BenchBackend::Gpu],
            &[SyncMode::Chunk],
            &[GpuKernels::Blocked, GpuKernels::OneWorkgroup],
        );
        let labels: Vec<String> = c.iter().map(BenchConfig::label).collect();
        assert_eq!(
            labels,
            [
                "gpu sync=chunk kernels=blocked",
                "gpu sync=chunk kernels=one-workgroup"
            ]
        );
    }

    #[test]
    fn counts_are_digits() {
        assert_eq!(parse_count("100000"), Ok(100_000));
        assert_eq!(
            parse_count("1e11"),
            Err("write the count in digits: 100000000000".into())
        );
        assert!(parse_count("2.5").unwrap_err().contains("whole number"));
        assert!(parse_count("-3").unwrap_err().contains("whole number"));
        assert!(
            parse_count("99999999999999999999999")
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn flop_and_byte_counts() {
        let spec = BenchSpec {
            rows: 10,
            features: 64,
            hidden: vec![128],
            activation: Activation::Relu,
            iters: 1,
            repeats: 1,
            seed: 0,
            lr: 0.1,
            configs: configs(&[BenchBackend::Cpu], &[], &[]),
            adapter: None,
            chunk: None,
        };
        assert_eq!(spec.weights_per_row(), 64 * 128 + 128);
        assert_eq!(
            spec.flops_per_iteration(),
            6.0 * 10.0 * (64.0 * 128.0 + 128.0)
        );
        assert_eq!(spec.bytes_per_iteration(), 10 * 64 * 4);
    }
}

//! What `wgtrain bench` measures: its flags, the backends, sync modes and GPU kernels they
//! expand to, and the spec they ask for, validated flag by flag.

use serde::Serialize;

use crate::backend;
use crate::backend::MAX_CHUNK;
use crate::data;
use crate::error::{Error, Result};
use crate::model::{Activation, Head, MAX_CLASSES, ModelSpec};
use crate::train::SyncMode;

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
    /// Classes K of the generated data: 2 trains the sigmoid model, K ≥ 3 softmax.
    pub classes: usize,
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
        if let Some(k) = self.chunk.filter(|k| !(1..=MAX_CHUNK).contains(k)) {
            return Err(Error::Config(format!(
                "--chunk {k}: must be 1 to {MAX_CHUNK}"
            )));
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
        if !(2..=MAX_CLASSES).contains(&self.classes) {
            return Err(Error::Config(format!(
                "--classes {}: must be 2 to {MAX_CLASSES}",
                self.classes
            )));
        }
        self.model()?;
        data::check_demo_size(self.rows, Some(self.features))?;
        Ok(())
    }

    /// Layer sizes [features, hidden..., 1].
    /// The model measured: a sigmoid head for two classes, softmax for more.
    pub fn model(&self) -> Result<ModelSpec> {
        let head = Head::for_classes(self.classes, None);
        ModelSpec::with_head(
            self.features,
            &self.hidden,
            self.activation,
            head,
            self.classes,
        )
    }

    pub fn layers(&self) -> Vec<usize> {
        let mut l = vec![self.features];
        l.extend_from_slice(&self.hidden);
        l.push(Head::for_classes(self.classes, None).outputs(self.classes));
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
    /// Activation of the hidden layers (only with --hidden) [default: relu].
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// Classes of the generated data: 2 (a sigmoid output) or K ≥ 3 (K softmax outputs, the
    /// label the largest of K random linear scores).
    #[arg(long, value_name = "K", default_value_t = 2)]
    pub classes: usize,
    /// Updates per run (no early stopping: the only rule is this iteration count).
    #[arg(long, default_value_t = 100)]
    pub iters: u64,
    /// Backends to measure, comma-separated [default: cpu,gpu; gpu is skipped with a notice
    /// when there is no adapter].
    #[arg(long, value_enum, value_name = "B,...", value_delimiter = ',')]
    pub backends: Option<Vec<BenchBackend>>,
    /// GPU sync modes to measure, comma-separated (only with the GPU) [default: every,chunk].
    #[arg(long, value_enum, value_name = "S,...", value_delimiter = ',')]
    pub sync: Option<Vec<SyncMode>>,
    /// GPU kernels, comma-separated: auto (the library's choice); for logistic regression
    /// blocked or one-workgroup (whole iterations in one workgroup); for an MLP layered or
    /// one-pass (one pass over X per iteration) [default: auto].
    #[arg(long, value_enum, value_name = "K,...", value_delimiter = ',')]
    pub gpu_kernels: Option<Vec<GpuKernels>>,
    /// Iterations per chunk with sync=chunk, 1 to 1024 [default: adaptive].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CHUNK)))]
    pub chunk: Option<u32>,
    /// Timed runs per configuration, after one discarded warm-up run.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Seed of the data and the MLP initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Learning rate of gradient descent.
    #[arg(long, default_value = "0.1", value_parser = crate::cli::parse_lr, allow_negative_numbers = true)]
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
        let syncs = self
            .sync
            .clone()
            .unwrap_or_else(|| vec![SyncMode::Every, SyncMode::Chunk]);
        if backends.contains(&BenchBackend::Gpu) && syncs.is_empty() {
            return Err(Error::Config(
                "--sync: give every, chunk or both for the GPU".into(),
            ));
        }
        self.check_applicable(&backends, &syncs)?;
        let kernels = self
            .gpu_kernels
            .clone()
            .unwrap_or_else(|| vec![GpuKernels::Auto]);
        let mut spec = BenchSpec {
            rows: self.rows,
            features: self.features,
            hidden: self.hidden.clone(),
            activation: self.activation.unwrap_or(Activation::Relu),
            classes: self.classes,
            iters: self.iters,
            repeats: self.repeats,
            seed: self.seed,
            lr: self.lr,
            configs: configs(&backends, &syncs, &kernels),
            adapter: self.adapter.clone(),
            chunk: self.chunk,
        };
        spec.validate()?;
        let mut notice = None;
        if !explicit {
            match backend::gpu::GpuContext::open(self.adapter.as_deref()) {
                Ok(_) => {}
                // An adapter asked for by name and not found is the user's error.
                Err(Error::NoAdapter(why)) if self.adapter.is_none() => {
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

    /// Flags that would change nothing measured are errors: GPU flags when only the CPU is
    /// measured, `--chunk` without sync=chunk, `--activation` without hidden layers.
    fn check_applicable(&self, backends: &[BenchBackend], syncs: &[SyncMode]) -> Result<()> {
        if !backends.contains(&BenchBackend::Gpu) {
            let kernels = self.gpu_kernels.as_ref().map(|k| {
                let names: Vec<&str> = k.iter().map(|k| k.name()).collect();
                names.join(",")
            });
            let sync = self.sync.as_ref().map(|s| {
                let names: Vec<&str> = s.iter().map(|&s| sync_name(s)).collect();
                names.join(",")
            });
            let gpu_only = [
                ("--sync", sync),
                ("--chunk", self.chunk.map(|k| k.to_string())),
                ("--adapter", self.adapter.clone()),
                ("--gpu-kernels", kernels),
            ];
            for (flag, v) in gpu_only {
                if let Some(v) = v {
                    return Err(Error::Config(format!(
                        "{flag} {v}: only for the GPU, but --backends cpu measures the CPU alone"
                    )));
                }
            }
        }
        if let (Some(k), false) = (self.chunk, syncs.contains(&SyncMode::Chunk)) {
            return Err(Error::Config(format!(
                "--chunk {k}: only with --sync chunk (--sync every reads back every iteration)"
            )));
        }
        if let (Some(a), true) = (self.activation, self.hidden.is_empty()) {
            return Err(Error::Config(format!(
                "--activation {}: without --hidden the model is logistic regression, which has \
                 no hidden layer to activate; give --hidden N,... or leave out --activation",
                a.name()
            )));
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
            classes: 2,
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

//! The command line's options as typed structs (clap), and their checks into a typed job:
//! what `main` parses and what the flag fuzzer drives without spawning a process.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::backend::BackendChoice;
use crate::backend::MAX_CHUNK;
use crate::data::{CsvOptions, Demo, DemoOptions};
use crate::early_bird::{self, EarlyBirdSettings};
use crate::job::{DataSource, TrainJob, ValSource};
use crate::metrics::Metric;
use crate::model::{Activation, Head};
use crate::stop::{MinDelta, StopRule};
use crate::train::{Monitor, SyncMode};

mod optim;
mod prune;
pub use optim::OptimArgs;
pub use prune::PruneArgs;

#[derive(Parser)]
#[command(
    name = "wgtrain",
    version,
    about = "Train binary classifiers on the GPU (wgpu) or CPU, stopped at the exact iteration a target is met"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train a classifier on a CSV file or a built-in data set.
    Train(Box<TrainArgs>),
    /// Prune a saved model to the smallest that still meets a target: each round removes a
    /// fraction of the weights (or hidden units) left, then fine-tunes only until the target
    /// is met again.
    Prune(Box<PruneArgs>),
    /// Apply a saved model (train --save) to a CSV file: one probability and class per row.
    Predict(PredictArgs),
    /// Metrics and confusion counts of a saved model on a labelled CSV file.
    Eval(EvalArgs),
    /// List the GPU adapters wgpu sees.
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure training speed per backend and GPU sync mode on generated data.
    Bench(Box<crate::bench::BenchArgs>),
}

#[derive(Args)]
pub struct TrainArgs {
    /// CSV file with a header row; every column but the label must be numeric.
    #[arg(long, value_name = "FILE.csv", conflicts_with = "demo")]
    pub data: Option<PathBuf>,
    /// Built-in data set instead of a file.
    #[arg(long, value_enum, value_name = "NAME")]
    pub demo: Option<Demo>,
    /// Label column (default: the last column).
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// Columns to ignore, comma-separated.
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    pub drop: Vec<String>,
    /// The label value that is the positive class (default: the larger number, or the text that sorts last).
    #[arg(long, value_name = "VALUE")]
    pub positive: Option<String>,
    /// Field separator of --data and --val: one ASCII character, `tab` or `\t` [default: ,].
    #[arg(long, value_name = "C", value_parser = crate::data::parse_delimiter)]
    pub delimiter: Option<u8>,
    /// Keep the features as they are instead of z-scoring them.
    #[arg(long)]
    pub no_standardize: bool,
    /// Rows of a demo set [default: 1000].
    #[arg(long)]
    pub rows: Option<usize>,
    /// Features of --demo hyperplane [default: 8].
    #[arg(long)]
    pub features: Option<usize>,
    /// Classes of --demo blobs, spirals or hyperplane, 2 to 256 [default: 3 for spirals, else 2].
    #[arg(long, value_name = "K")]
    pub classes: Option<usize>,
    /// Fraction of a demo set's labels flipped, 0 to 1 [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub noise: Option<f64>,
    /// Seed of the demo data and the MLP initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Hidden layer sizes, comma-separated (none: logistic regression).
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// Activation of the hidden layers [default: relu, or the --init-weights model's].
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// The output layer: one sigmoid logit (two classes only) or K softmax logits [default:
    /// sigmoid for two classes, softmax for more, or the --init-weights model's].
    #[arg(long, value_enum)]
    pub head: Option<Head>,
    /// Learning rate of gradient descent.
    #[arg(long, default_value = "0.1", value_parser = parse_lr, allow_negative_numbers = true)]
    pub lr: f32,
    /// Metric the stop rule watches.
    #[arg(long, value_enum, default_value = "accuracy")]
    pub metric: Metric,
    /// Stop once the metric is >= T (loss: <= T); `none` turns it off [default: 0.99, none for loss].
    #[arg(long, value_name = "T|none", value_parser = parse_threshold, allow_negative_numbers = true)]
    pub threshold: Option<Threshold>,
    /// Most updates to apply.
    #[arg(long, default_value_t = 1000)]
    pub max_iter: u64,
    /// Where to train.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// Pick the GPU adapter whose name contains this (see `wgtrain devices`).
    #[arg(long, value_name = "SUBSTRING")]
    pub adapter: Option<String>,
    /// Validation CSV with the training file's columns (standardized with the training statistics).
    #[arg(long, value_name = "FILE.csv", conflicts_with = "val_split")]
    pub val: Option<PathBuf>,
    /// Hold out a stratified, seeded fraction of the training rows for validation.
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub val_split: Option<f64>,
    /// Rows the stop rules watch [default: val when there are validation rows, else train].
    #[arg(long, value_enum)]
    pub monitor: Option<Monitor>,
    /// Check the stop rules every K updates (the last one is always checked) [default: 1, or
    /// once per epoch with --batch-size].
    #[arg(long, value_name = "K")]
    pub eval_every: Option<u64>,
    /// Stop after P checks in a row without improvement.
    #[arg(long, value_name = "P")]
    pub patience: Option<u64>,
    /// An improvement must beat the best by more than D.
    #[arg(
        long,
        value_name = "D",
        conflicts_with = "min_delta_rel",
        allow_negative_numbers = true
    )]
    pub min_delta: Option<f64>,
    /// An improvement must beat the best by more than R · |best|.
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub min_delta_rel: Option<f64>,
    /// Checks at iterations below W do not count for patience nor set the best.
    #[arg(long, value_name = "W", default_value_t = 0)]
    pub warmup: u64,
    /// Stop once the metric is worse than V (loss above V, a score below V).
    #[arg(long, value_name = "V", allow_negative_numbers = true)]
    pub divergence: Option<f64>,
    /// Stop after this many seconds of training (data loading and setup not counted).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub max_time: Option<f64>,
    /// Return the weights of the best check instead of the last ones.
    #[arg(long)]
    pub restore_best: bool,
    /// Stop once the magnitude mask at sparsity S (0 < S < 1) has settled: an early-bird
    /// ticket (You et al. 2020).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub early_bird: Option<f64>,
    /// --early-bird: a check is stable when the mask changed in less than this fraction of
    /// the weights, 0 < E <= 1 [default: 0.1].
    #[arg(long, value_name = "E", allow_negative_numbers = true)]
    pub early_bird_eps: Option<f64>,
    /// --early-bird: stable checks in a row that stop the run, at least 1 [default: 5].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub early_bird_window: Option<u32>,
    /// Write one CSV row per checked iteration (train and validation metrics) as the run goes.
    #[arg(long, value_name = "FILE.csv")]
    pub log: Option<PathBuf>,
    /// Write the returned weights, features, standardization and report as a safetensors
    /// model file (atomically); the same inputs give the same bytes.
    #[arg(long, value_name = "FILE.safetensors")]
    pub save: Option<PathBuf>,
    /// Keep the report's timings in the --save file (its bytes then differ run to run).
    #[arg(long, requires = "save")]
    pub save_timings: bool,
    /// Start from a saved model's weights, architecture and standardization statistics.
    #[arg(long, value_name = "FILE.safetensors")]
    pub init_weights: Option<PathBuf>,
    /// When a GPU run reads the metrics back: after every iteration, or once per chunk with
    /// the stop rule evaluated on the device (same stop, same weights).
    #[arg(long, value_enum, default_value = "chunk")]
    pub sync: SyncMode,
    /// Iterations per chunk with --sync chunk (with mini-batches: checks), 1 to 1024
    /// [default: adaptive].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CHUNK)))]
    pub chunk: Option<u32>,
    /// Draw the monitored metric and the loss against iteration, with the threshold and the
    /// stop, as an SVG chart (written atomically when the run ends).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// No progress bar (it shows only when stderr is a terminal).
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub optim: OptimArgs,
}

#[derive(Clone, Copy)]
pub enum Threshold {
    Off,
    At(f64),
}

/// A `--delimiter` as it can be typed again: `tab`, or the character.
fn delimiter_text(b: u8) -> String {
    if b == b'\t' {
        "tab".into()
    } else {
        format!("'{}'", b as char)
    }
}

fn parse_threshold(s: &str) -> std::result::Result<Threshold, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Threshold::Off);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && !underflows(s, v) => Ok(Threshold::At(v)),
        Ok(v) if v.is_finite() => Err(format!(
            "\"{s}\" is too close to 0 to tell from 0 in f64 (it reads as {v:e})"
        )),
        _ => Err(format!("expected a finite number or `none`, got \"{s}\"")),
    }
}

/// Whether the decimal `s` is not zero but parsed to 0 or a subnormal `v`: a value f64 cannot
/// hold, which would silently become (nearly) 0.
fn underflows(s: &str, v: f64) -> bool {
    let mantissa = s.split(['e', 'E']).next().unwrap_or(s);
    let nonzero = mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b));
    nonzero && (v == 0.0 || v.is_subnormal())
}

impl TrainArgs {
    pub fn rule(&self) -> Result<StopRule> {
        let threshold = match self.threshold {
            Some(Threshold::Off) => None,
            Some(Threshold::At(t)) => Some(t),
            None if self.metric == Metric::Loss => None,
            None => Some(0.99),
        };
        if let Some(t) = threshold {
            if self.metric == Metric::Loss && t < 0.0 {
                bail!("--threshold {t}: the loss is never below 0");
            }
            if self.metric != Metric::Loss && !(0.0..=1.0).contains(&t) {
                bail!(
                    "--threshold {t}: {} lies between 0 and 1",
                    self.metric.name()
                );
            }
        }
        if self.eval_every == Some(0) {
            bail!("--eval-every 0: must be at least 1");
        }
        non_negative("--min-delta", self.min_delta)?;
        non_negative("--min-delta-rel", self.min_delta_rel)?;
        if let Some(m) = self.max_time {
            if !(m.is_finite() && m > 0.0) {
                bail!("--max-time {m}: must be a number of seconds above 0");
            }
        }
        if let Some(v) = self.divergence {
            if !v.is_finite() {
                bail!("--divergence {v}: must be a finite number");
            }
            if self.metric == Metric::Loss && v < 0.0 {
                bail!("--divergence {v}: the loss is never below 0, so it is always above {v}");
            }
            if self.metric != Metric::Loss && !(0.0..=1.0).contains(&v) {
                bail!(
                    "--divergence {v}: {} lies between 0 and 1",
                    self.metric.name()
                );
            }
        }
        if let Some(p) = self.patience {
            if p == 0 {
                bail!("--patience 0: must be at least 1 (checks in a row without improvement)");
            }
            if self.warmup >= self.max_iter && self.optim.max_epochs.is_none() {
                bail!(
                    "--warmup {}: with --max-iter {} no check is left after the warm-up for \
                     --patience {p} to count; give a --warmup below --max-iter",
                    self.warmup,
                    self.max_iter
                );
            }
        }
        Ok(StopRule {
            metric: self.metric,
            threshold,
            max_iter: self.max_iter,
            patience: self.patience,
            min_delta: match (self.min_delta, self.min_delta_rel) {
                (_, Some(r)) => MinDelta::Rel(r),
                (d, None) => MinDelta::Abs(d.unwrap_or(0.0)),
            },
            warmup: self.warmup,
            divergence: self.divergence,
            max_time: self.max_time,
            eval_every: self.eval_every.unwrap_or(1),
        })
    }

    /// Flags that only apply to one data source, the backend or the sync mode: given where they
    /// would be ignored, they are an error.
    fn check_applicable(&self) -> Result<()> {
        if let Some(kind) = self.demo {
            let demo = demo_name(kind);
            let data_only = [
                ("--label", self.label.clone()),
                (
                    "--drop",
                    (!self.drop.is_empty()).then(|| self.drop.join(",")),
                ),
                ("--positive", self.positive.clone()),
                ("--delimiter", self.delimiter.map(delimiter_text)),
            ];
            for (flag, v) in data_only {
                if let Some(v) = v {
                    bail!(
                        "{flag} {v}: only with --data; --demo {demo} has its own label and columns"
                    );
                }
            }
            if let (Demo::Xnor, Some(r)) = (kind, self.rows) {
                bail!("--rows {r}: --demo xnor is always its four points");
            }
            if let (Demo::Xnor, Some(n)) = (kind, self.noise) {
                bail!("--noise {n}: --demo xnor is always its four points, labelled as they are");
            }
            if let (false, Some(k)) = (
                matches!(kind, Demo::Blobs | Demo::Spirals | Demo::Hyperplane),
                self.classes,
            ) {
                bail!(
                    "--classes {k}: only --demo blobs, spirals and hyperplane have a choice of classes (--demo {demo} has 2)"
                );
            }
            if let (k, Some(n)) = (kind, self.features) {
                if k != Demo::Hyperplane {
                    bail!(
                        "--features {n}: only --demo hyperplane has a choice of features (--demo {demo} has 2)"
                    );
                }
            }
        } else {
            let demo_only = [
                ("--rows", self.rows.map(|v| v.to_string())),
                ("--features", self.features.map(|v| v.to_string())),
                ("--noise", self.noise.map(|v| v.to_string())),
                ("--classes", self.classes.map(|v| v.to_string())),
            ];
            for (flag, v) in demo_only {
                if let Some(v) = v {
                    bail!(
                        "{flag} {v}: only with --demo (--data takes the file's rows and columns as they are)"
                    );
                }
            }
        }
        check_adapter(self.backend, self.adapter.as_deref())?;
        // With --init-weights the model's layers decide (checked against it when loaded).
        if let (Some(a), true, None) = (self.activation, self.hidden.is_empty(), &self.init_weights)
        {
            bail!(
                "--activation {}: without --hidden the model is logistic regression, which has \
                 no hidden layer to activate; give --hidden N,... or leave out --activation",
                a.name()
            );
        }
        if let (Some(Head::Softmax), Some(p)) = (self.head, &self.positive) {
            bail!(
                "--positive {p}: only with a sigmoid head (--head softmax treats every class alike)"
            );
        }
        if self.early_bird.is_none() {
            let given = [
                (
                    "--early-bird-eps",
                    self.early_bird_eps.map(|v| v.to_string()),
                ),
                (
                    "--early-bird-window",
                    self.early_bird_window.map(|v| v.to_string()),
                ),
            ];
            for (flag, v) in given {
                if let Some(v) = v {
                    bail!(
                        "{flag} {v}: only with --early-bird S (the sparsity of the watched mask)"
                    );
                }
            }
        }
        if let (SyncMode::Every, Some(k)) = (self.sync, self.chunk) {
            bail!("--chunk {k}: only with --sync chunk (--sync every reads back every iteration)");
        }
        Ok(())
    }

    /// The early-bird rule, checked; every error names the flag and echoes the value.
    fn early_bird(&self) -> Result<Option<EarlyBirdSettings>> {
        let Some(sparsity) = self.early_bird else {
            return Ok(None);
        };
        let settings = EarlyBirdSettings {
            sparsity,
            eps: self.early_bird_eps.unwrap_or(early_bird::DEFAULT_EPS),
            window: self.early_bird_window.unwrap_or(early_bird::DEFAULT_WINDOW),
        };
        settings.check()?;
        Ok(Some(settings))
    }

    pub fn job(&self) -> Result<TrainJob> {
        self.check_applicable()?;
        let source = match (&self.data, self.demo) {
            (Some(path), _) => DataSource::Csv {
                path: path.clone(),
                options: CsvOptions {
                    label: self.label.clone(),
                    drop: self.drop.clone(),
                    positive: self.positive.clone(),
                    delimiter: self.delimiter.unwrap_or(b','),
                },
            },
            (None, Some(kind)) => DataSource::Demo {
                kind,
                options: DemoOptions {
                    rows: self.rows,
                    features: self.features,
                    classes: self.classes,
                    noise: self.noise.unwrap_or(0.0),
                    seed: self.seed,
                },
            },
            (None, None) => bail!(
                "no data: give --data FILE.csv or --demo NAME (xnor, blobs, moons, hyperplane, spirals)"
            ),
        };
        Ok(TrainJob {
            source,
            standardize: !self.no_standardize,
            hidden: self.hidden.clone(),
            head: self.head,
            activation: self.activation,
            seed: self.seed,
            lr: self.lr,
            rule: self.rule()?,
            early_bird: self.early_bird()?,
            training: self.optim.settings(self.eval_every.is_some())?,
            val: match (&self.val, self.val_split) {
                (Some(p), _) => ValSource::File(p.clone()),
                (None, Some(f)) => ValSource::Split(f),
                (None, None) => ValSource::None,
            },
            monitor: self.monitor,
            restore_best: self.restore_best,
            log: self.log.clone(),
            init_flag: "--init-weights",
            init_weights: self.init_weights.clone(),
            save: self.save.clone(),
            save_timings: self.save_timings,
            sync: self.sync,
            chunk: self.chunk,
            interrupt: Some(Arc::new(AtomicBool::new(false))),
            started: None,
            backend: self.backend,
            adapter: self.adapter.clone(),
        })
    }
}

/// A flag's value, where given, is a finite number at least 0.
fn non_negative(flag: &str, v: Option<f64>) -> Result<()> {
    match v {
        Some(d) if !(d.is_finite() && d >= 0.0) => {
            bail!("{flag} {d}: must be a finite number at least 0")
        }
        _ => Ok(()),
    }
}

/// `--adapter` picks a GPU adapter, which `--backend cpu` never uses.
pub fn check_adapter(backend: BackendChoice, adapter: Option<&str>) -> Result<()> {
    if let (BackendChoice::Cpu, Some(a)) = (backend, adapter) {
        bail!("--adapter {a}: picks a GPU adapter, but --backend cpu runs on the CPU");
    }
    Ok(())
}

fn demo_name(kind: Demo) -> String {
    use clap::ValueEnum;
    kind.to_possible_value()
        .map_or_else(|| format!("{kind:?}"), |v| v.get_name().to_string())
}

/// `--lr`: a positive number that is finite and normal in f32, the precision the kernels use.
pub fn parse_lr(s: &str) -> std::result::Result<f32, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number, got \"{s}\""))?;
    if !(v.is_finite() && v > 0.0) {
        return Err("must be a finite number above 0".into());
    }
    let f = v as f32;
    if !f.is_finite() {
        return Err(format!("too large for f32 (at most {:e})", f32::MAX));
    }
    if f < f32::MIN_POSITIVE {
        return Err(format!(
            "too small for f32 (at least {:e})",
            f32::MIN_POSITIVE
        ));
    }
    Ok(f)
}

/// What `predict` and `eval` share: a model, rows and where to run it.
#[derive(Args)]
pub struct ApplyArgs {
    /// Model file written by `train --save`.
    #[arg(long, value_name = "FILE.safetensors")]
    pub model: PathBuf,
    /// CSV file with the model's feature columns (by name, any order; other columns ignored).
    #[arg(long, value_name = "FILE.csv")]
    pub data: PathBuf,
    /// Field separator of --data: one ASCII character, `tab` or `\t` [default: ,].
    #[arg(long, value_name = "C", value_parser = crate::data::parse_delimiter)]
    pub delimiter: Option<u8>,
    /// Where to run the forward pass.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// Pick the GPU adapter whose name contains this (see `wgtrain devices`).
    #[arg(long, value_name = "SUBSTRING")]
    pub adapter: Option<String>,
}

#[derive(Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub apply: ApplyArgs,
    /// Write the CSV here (atomically) instead of to stdout.
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub apply: ApplyArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

//! The command line: clap structs → typed job → library call → report printer.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use wgtrain::backend::{BackendChoice, gpu};
use wgtrain::data::{CsvOptions, Demo, DemoOptions};
use wgtrain::job::{self, DataSource, TrainJob, ValSource};
use wgtrain::metrics::Metric;
use wgtrain::model::Activation;
use wgtrain::stop::StopReason;
use wgtrain::stop::{MinDelta, StopRule};
use wgtrain::train::{Monitor, SyncMode};
use wgtrain::{atomic, modelfile, plot, predict, progress};

#[derive(Parser)]
#[command(
    name = "wgtrain",
    version,
    about = "Train binary classifiers on the GPU (wgpu) or CPU, stopped at the exact iteration a target is met"
)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a classifier on a CSV file or a built-in data set.
    Train(Box<TrainArgs>),
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
    Bench(Box<wgtrain::bench::BenchArgs>),
}

#[derive(Args)]
struct TrainArgs {
    /// CSV file with a header row; every column but the label must be numeric.
    #[arg(long, value_name = "FILE.csv", conflicts_with = "demo")]
    data: Option<PathBuf>,
    /// Built-in data set instead of a file.
    #[arg(long, value_enum, value_name = "NAME")]
    demo: Option<Demo>,
    /// Label column (default: the last column).
    #[arg(long, value_name = "NAME", requires = "data")]
    label: Option<String>,
    /// Columns to ignore, comma-separated.
    #[arg(long, value_name = "COL,...", value_delimiter = ',', requires = "data")]
    drop: Vec<String>,
    /// The label value that is the positive class (default: the larger number, or the text that sorts last).
    #[arg(long, value_name = "VALUE", requires = "data")]
    positive: Option<String>,
    /// Keep the features as they are instead of z-scoring them.
    #[arg(long)]
    no_standardize: bool,
    /// Rows of a demo set [default: 1000].
    #[arg(long, requires = "demo")]
    rows: Option<usize>,
    /// Features of --demo hyperplane [default: 8].
    #[arg(long, requires = "demo")]
    features: Option<usize>,
    /// Fraction of a demo set's labels flipped, 0 to 1.
    #[arg(
        long,
        default_value_t = 0.0,
        requires = "demo",
        allow_negative_numbers = true
    )]
    noise: f64,
    /// Seed of the demo data and the MLP initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Hidden layer sizes, comma-separated (none: logistic regression).
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Activation of the hidden layers [default: relu, or the --init-weights model's].
    #[arg(long, value_enum)]
    activation: Option<Activation>,
    /// Learning rate of gradient descent.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    lr: f32,
    /// Metric the stop rule watches.
    #[arg(long, value_enum, default_value = "accuracy")]
    metric: Metric,
    /// Stop once the metric is >= T (loss: <= T); `none` turns it off [default: 0.99, none for loss].
    #[arg(long, value_name = "T|none", value_parser = parse_threshold, allow_negative_numbers = true)]
    threshold: Option<Threshold>,
    /// Most updates to apply.
    #[arg(long, default_value_t = 1000)]
    max_iter: u64,
    /// Where to train.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// Pick the GPU adapter whose name contains this (see `wgtrain devices`).
    #[arg(long, value_name = "SUBSTRING")]
    adapter: Option<String>,
    /// Validation CSV with the training file's columns (standardized with the training statistics).
    #[arg(long, value_name = "FILE.csv", conflicts_with = "val_split")]
    val: Option<PathBuf>,
    /// Hold out a stratified, seeded fraction of the training rows for validation.
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    val_split: Option<f64>,
    /// Rows the stop rules watch [default: val when there are validation rows, else train].
    #[arg(long, value_enum)]
    monitor: Option<Monitor>,
    /// Check the stop rules every K iterations (the last iteration is always checked).
    #[arg(long, value_name = "K", default_value_t = 1)]
    eval_every: u64,
    /// Stop after P checks in a row without improvement.
    #[arg(long, value_name = "P")]
    patience: Option<u64>,
    /// An improvement must beat the best by more than D.
    #[arg(
        long,
        value_name = "D",
        conflicts_with = "min_delta_rel",
        allow_negative_numbers = true
    )]
    min_delta: Option<f64>,
    /// An improvement must beat the best by more than R · |best|.
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    min_delta_rel: Option<f64>,
    /// Checks at iterations below W do not count for patience nor set the best.
    #[arg(long, value_name = "W", default_value_t = 0)]
    warmup: u64,
    /// Stop once the metric is worse than V (loss above V, a score below V).
    #[arg(long, value_name = "V", allow_negative_numbers = true)]
    divergence: Option<f64>,
    /// Stop after this many seconds of training (data loading and setup not counted).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    max_time: Option<f64>,
    /// Return the weights of the best check instead of the last ones.
    #[arg(long)]
    restore_best: bool,
    /// Write one CSV row per checked iteration (train and validation metrics) as the run goes.
    #[arg(long, value_name = "FILE.csv")]
    log: Option<PathBuf>,
    /// Write the returned weights, features, standardization and report as a safetensors
    /// model file (atomically).
    #[arg(long, value_name = "FILE.safetensors")]
    save: Option<PathBuf>,
    /// Start from a saved model's weights, architecture and standardization statistics.
    #[arg(long, value_name = "FILE.safetensors")]
    init_weights: Option<PathBuf>,
    /// When a GPU run reads the metrics back: after every iteration, or once per chunk with
    /// the stop rule evaluated on the device (same stop, same weights).
    #[arg(long, value_enum, default_value = "chunk")]
    sync: SyncMode,
    /// Iterations per chunk with --sync chunk [default: adaptive].
    #[arg(long, value_name = "K")]
    chunk: Option<u32>,
    /// Draw the monitored metric and the loss against iteration, with the threshold and the
    /// stop, as an SVG chart (written atomically when the run ends).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// No progress bar (it shows only when stderr is a terminal).
    #[arg(short, long)]
    quiet: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy)]
enum Threshold {
    Off,
    At(f64),
}

fn parse_threshold(s: &str) -> std::result::Result<Threshold, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Threshold::Off);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Threshold::At(v)),
        _ => Err(format!("expected a finite number or `none`, got \"{s}\"")),
    }
}

impl TrainArgs {
    fn rule(&self) -> Result<StopRule> {
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
        if self.eval_every == 0 {
            bail!("--eval-every 0: must be at least 1");
        }
        let non_negative = |flag: &str, v: Option<f64>| -> Result<()> {
            match v {
                Some(d) if !(d.is_finite() && d >= 0.0) => {
                    bail!("{flag} {d}: must be a finite number at least 0")
                }
                _ => Ok(()),
            }
        };
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
            eval_every: self.eval_every,
        })
    }

    fn job(&self) -> Result<TrainJob> {
        let source = match (&self.data, self.demo) {
            (Some(path), _) => DataSource::Csv {
                path: path.clone(),
                options: CsvOptions {
                    label: self.label.clone(),
                    drop: self.drop.clone(),
                    positive: self.positive.clone(),
                },
            },
            (None, Some(kind)) => DataSource::Demo {
                kind,
                options: DemoOptions {
                    rows: self.rows,
                    features: self.features,
                    noise: self.noise,
                    seed: self.seed,
                },
            },
            (None, None) => bail!(
                "no data: give --data FILE.csv or --demo NAME (xnor, blobs, moons, hyperplane)"
            ),
        };
        Ok(TrainJob {
            source,
            standardize: !self.no_standardize,
            hidden: self.hidden.clone(),
            activation: self.activation,
            seed: self.seed,
            lr: self.lr,
            rule: self.rule()?,
            val: match (&self.val, self.val_split) {
                (Some(p), _) => ValSource::File(p.clone()),
                (None, Some(f)) => ValSource::Split(f),
                (None, None) => ValSource::None,
            },
            monitor: self.monitor,
            restore_best: self.restore_best,
            log: self.log.clone(),
            init_weights: self.init_weights.clone(),
            save: self.save.clone(),
            sync: self.sync,
            chunk: self.chunk,
            interrupt: Some(Arc::new(AtomicBool::new(false))),
            backend: self.backend,
            adapter: self.adapter.clone(),
        })
    }
}

/// Ctrl-C sets `flag`: training stops after the current iteration (or chunk) and the model,
/// log, plot and report are still written. A second Ctrl-C quits at once with status 130.
fn stop_on_ctrl_c(flag: Arc<AtomicBool>) {
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        progress::eprintln_above(
            "wgtrain: interrupted: stopping after the current iteration (Ctrl-C again quits at once)",
        );
    });
    if let Err(e) = installed {
        log::warn!("Ctrl-C will end the run without writing results: {e}");
    }
}

/// Trains; the exit status is 130 when Ctrl-C stopped the run.
fn train(args: &TrainArgs) -> Result<ExitCode> {
    let job = args.job()?;
    if let Some(p) = &args.plot {
        atomic::check_target(p, "--plot")?;
    }
    if let Some(flag) = &job.interrupt {
        stop_on_ctrl_c(flag.clone());
    }
    let mut bar = progress::Progress::new(&job.rule, args.monitor, progress::wanted(args.quiet));
    let mut curve = args
        .plot
        .as_ref()
        .map(|_| plot::Curve::new(&job.rule, args.monitor));
    let result = job::run(&job, |c| {
        bar.observe(c);
        if let Some(curve) = curve.as_mut() {
            curve.push(c);
        }
    });
    bar.finish();
    let result = result?;
    if let Some(n) = &result.notice {
        eprintln!("wgtrain: {n}");
    }
    if let (Some(p), Some(curve)) = (&args.plot, &curve) {
        curve.write(p, &result.report.stop.info)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", result.report.to_json())?;
    } else {
        writeln!(out, "{}", result.report.human())?;
        if let Some(p) = &args.save {
            writeln!(out, "saved:   {}", p.display())?;
        }
        if let Some(p) = &args.plot {
            writeln!(out, "plot:    {}", p.display())?;
        }
    }
    Ok(
        if result.report.stop.info.reason == StopReason::Interrupted {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// What `predict` and `eval` share: a model, rows and where to run it.
#[derive(Args)]
struct ApplyArgs {
    /// Model file written by `train --save`.
    #[arg(long, value_name = "FILE.safetensors")]
    model: PathBuf,
    /// CSV file with the model's feature columns (by name, any order; other columns ignored).
    #[arg(long, value_name = "FILE.csv")]
    data: PathBuf,
    /// Where to run the forward pass.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// Pick the GPU adapter whose name contains this (see `wgtrain devices`).
    #[arg(long, value_name = "SUBSTRING")]
    adapter: Option<String>,
}

#[derive(Args)]
struct PredictArgs {
    #[command(flatten)]
    apply: ApplyArgs,
    /// Write the CSV here (atomically) instead of to stdout.
    #[arg(long, value_name = "FILE.csv")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    apply: ApplyArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Loads the model and the rows and runs the forward pass.
fn apply_model(
    a: &ApplyArgs,
    need_label: bool,
) -> Result<(modelfile::Model, predict::Rows, predict::Prediction)> {
    let model = modelfile::load(&a.model)?.model;
    let rows = predict::load_rows(&a.data, &model)?;
    if need_label && !rows.labelled {
        bail!(
            "{}: no column \"{}\" (the model's label); eval needs the labels (predict works without them)",
            a.data.display(),
            model.label.column
        );
    }
    let pred = predict::predict(&model, &rows, a.backend, a.adapter.as_deref())?;
    if let Some(n) = &pred.notice {
        eprintln!("wgtrain: {n}");
    }
    Ok((model, rows, pred))
}

fn predict_cmd(args: &PredictArgs) -> Result<()> {
    if let Some(p) = &args.out {
        atomic::check_target(p, "--out")?;
    }
    let (model, rows, pred) = apply_model(&args.apply, false)?;
    let csv = predict::to_csv(&pred.logits, &model.label);
    match &args.out {
        Some(p) => {
            atomic::write_atomic(p, csv.as_bytes())?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "wrote {} predictions to {}",
                rows.data.rows,
                p.display()
            )?;
            if let Some(m) = &pred.metrics {
                writeln!(out, "{}", predict::metrics_text(m))?;
            }
        }
        None => {
            std::io::stdout()
                .lock()
                .write_all(csv.as_bytes())
                .context("writing to stdout")?;
            if let Some(m) = &pred.metrics {
                eprintln!("{}", predict::metrics_text(m));
            }
        }
    }
    Ok(())
}

fn eval_cmd(args: &EvalArgs) -> Result<()> {
    let (model, rows, pred) = apply_model(&args.apply, true)?;
    let m = pred.metrics.expect("labelled rows have metrics");
    let d = &rows.data;
    let mut out = std::io::stdout().lock();
    if args.json {
        let v = serde_json::json!({
            "model": args.apply.model.display().to_string(),
            "data": d.source,
            "rows": d.rows,
            "positives": d.positives(),
            "label_mapping": model.label,
            "backend": if pred.adapter.is_some() { "gpu" } else { "cpu" },
            "adapter": pred.adapter,
            "metrics": m,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(
            out,
            "data:    {}: {} rows, {} positive (label \"{}\": {} = positive, {} = negative)\n{}",
            d.source,
            d.rows,
            d.positives(),
            model.label.column,
            model.label.positive,
            model.label.negative,
            predict::metrics_text(&m)
        )?;
    }
    Ok(())
}

fn devices(json: bool) -> Result<()> {
    let adapters = gpu::list_adapters();
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&adapters)?)?;
        return Ok(());
    }
    if adapters.is_empty() {
        writeln!(out, "{}", gpu::NO_ADAPTER_HELP)?;
        return Ok(());
    }
    for (i, a) in adapters.iter().enumerate() {
        writeln!(
            out,
            "{i}: {}\n   api {}, type {}, driver {}",
            a.name, a.api, a.device_type, a.driver
        )
        .context("writing to stdout")?;
    }
    Ok(())
}

fn bench(args: &wgtrain::bench::BenchArgs) -> Result<()> {
    let (spec, notice) = args.spec()?;
    if let Some(n) = notice {
        eprintln!("wgtrain: {n}");
    }
    let quiet = args.quiet;
    let report = wgtrain::bench::run(&spec, |line| {
        if !quiet {
            eprintln!("wgtrain bench: {line}");
        }
    })?;
    let mut out = std::io::stdout().lock();
    let text = if args.json {
        report.to_json()
    } else if args.markdown {
        report.markdown()
    } else {
        report.human()
    };
    writeln!(out, "{text}").context("writing to stdout")?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn,wgpu_hal=error,wgpu_core=error,naga=error",
        1 => "info,wgpu_hal=warn,wgpu_core=warn,naga=warn",
        _ => "debug",
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if std::io::stderr().is_terminal() {
        // Log lines go above the progress bar. env_logger cannot tell that this pipe is a
        // terminal, so colours are asked for unless RUST_LOG_STYLE or NO_COLOR decide.
        logger.target(env_logger::Target::Pipe(Box::new(progress::LogWriter)));
        if std::env::var_os("RUST_LOG_STYLE").is_none() && std::env::var_os("NO_COLOR").is_none() {
            logger.write_style(env_logger::WriteStyle::Always);
        }
    }
    logger.init();
    let result = match &cli.command {
        Command::Train(args) => train(args),
        Command::Predict(args) => predict_cmd(args).map(|()| ExitCode::SUCCESS),
        Command::Eval(args) => eval_cmd(args).map(|()| ExitCode::SUCCESS),
        Command::Devices { json } => devices(*json).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wgtrain: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

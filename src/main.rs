//! The command line: clap structs → typed job → library call → report printer.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use wgtrain::backend::{BackendChoice, gpu};
use wgtrain::data::{CsvOptions, Demo, DemoOptions};
use wgtrain::job::{self, DataSource, TrainJob};
use wgtrain::metrics::Metric;
use wgtrain::model::Activation;
use wgtrain::stop::StopRule;

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
    /// List the GPU adapters wgpu sees.
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
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
    /// Activation of the hidden layers.
    #[arg(long, value_enum, default_value = "relu")]
    activation: Activation,
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
        Ok(StopRule {
            metric: self.metric,
            threshold,
            max_iter: self.max_iter,
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
            backend: self.backend,
            adapter: self.adapter.clone(),
        })
    }
}

fn train(args: &TrainArgs) -> Result<()> {
    let job = args.job()?;
    let result = job::run(&job, |_, _| {})?;
    if let Some(n) = &result.notice {
        eprintln!("wgtrain: {n}");
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", result.report.to_json())?;
    } else {
        writeln!(out, "{}", result.report.human())?;
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn,wgpu_hal=error,wgpu_core=error,naga=error",
        1 => "info,wgpu_hal=warn,wgpu_core=warn,naga=warn",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default)).init();
    let result = match &cli.command {
        Command::Train(args) => train(args),
        Command::Devices { json } => devices(*json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wgtrain: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

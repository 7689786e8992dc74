//! A whole training job as typed configuration: what the command line builds and tests call.

use std::path::PathBuf;
use std::time::Instant;

use crate::backend::{self, BackendChoice, SessionConfig};
use crate::data::{self, CsvOptions, Dataset, Demo, DemoOptions, Standardizer};
use crate::error::{Error, Result};
use crate::model::{self, Activation, ModelSpec};
use crate::report::{self, DataInfo, ModelInfo, Report, StopReport, Timing, ValInfo};
use crate::runlog::RunLog;
use crate::stop::StopRule;
use crate::train::{self, CheckRecord, Monitor, Outcome, TrainOptions};

/// Where the rows come from.
#[derive(Clone, Debug)]
pub enum DataSource {
    Csv { path: PathBuf, options: CsvOptions },
    Demo { kind: Demo, options: DemoOptions },
}

/// Where validation rows come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ValSource {
    None,
    /// A file with the training file's columns.
    File(PathBuf),
    /// A stratified, seeded fraction of the training rows.
    Split(f64),
}

#[derive(Clone, Debug)]
pub struct TrainJob {
    pub source: DataSource,
    pub val: ValSource,
    /// `None`: the validation rows when there are any, else the training rows.
    pub monitor: Option<Monitor>,
    pub restore_best: bool,
    /// `--log FILE.csv`.
    pub log: Option<PathBuf>,
    pub standardize: bool,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub seed: u64,
    pub lr: f32,
    pub rule: StopRule,
    pub backend: BackendChoice,
    pub adapter: Option<String>,
}

/// What a finished job hands back.
pub struct JobResult {
    pub report: Report,
    pub outcome: Outcome,
    /// A one-line notice for the user (e.g. the CPU fallback), if any.
    pub notice: Option<String>,
}

/// The training rows and, if asked for, validation rows, standardized with statistics of the
/// training rows only.
pub struct Loaded {
    pub train: Dataset,
    pub val: Option<Dataset>,
    pub standardized: bool,
}

/// Loads the data and applies the split and standardization the job asks for.
pub fn load(job: &TrainJob) -> Result<Loaded> {
    let data = match &job.source {
        DataSource::Csv { path, options } => data::load_csv(path, options)?,
        DataSource::Demo { kind, options } => data::demo(
            *kind,
            &DemoOptions {
                seed: job.seed,
                ..options.clone()
            },
        )?,
    };
    let (mut train, mut val) = match &job.val {
        ValSource::None => (data, None),
        ValSource::File(path) => {
            let v = data::load_csv_like(path, &data)?;
            (data, Some(v))
        }
        ValSource::Split(f) => {
            let (t, v) = data::split_stratified(&data, *f, job.seed)?;
            (t, Some(v))
        }
    };
    if job.standardize {
        let s = Standardizer::fit(&train);
        s.apply(&mut train);
        if let Some(v) = val.as_mut() {
            s.apply(v);
        }
    }
    Ok(Loaded {
        train,
        val,
        standardized: job.standardize,
    })
}

/// Runs the job: data → model → backend → training loop → report.
pub fn run(job: &TrainJob, mut observe: impl FnMut(&CheckRecord)) -> Result<JobResult> {
    if !(job.lr.is_finite() && job.lr > 0.0) {
        return Err(Error::Config(format!(
            "--lr {}: must be a finite number above 0",
            job.lr
        )));
    }
    let start = Instant::now();
    let Loaded {
        train: data,
        val,
        standardized,
    } = load(job)?;
    let monitor = match (job.monitor, &val) {
        (Some(Monitor::Val), None) => {
            return Err(Error::Config(
                "--monitor val needs validation data (--val FILE.csv or --val-split F)".into(),
            ));
        }
        (Some(m), _) => m,
        (None, Some(_)) => Monitor::Val,
        (None, None) => Monitor::Train,
    };
    let spec = ModelSpec::new(data.features, &job.hidden, job.activation)?;
    let cfg = SessionConfig {
        params: spec.init_params(job.seed),
        lr: job.lr,
    };
    let opened = backend::open(
        job.backend,
        job.adapter.as_deref(),
        &data,
        val.as_ref(),
        &spec,
        &cfg,
    )?;
    let mut session = opened.session;
    let mut log = match &job.log {
        Some(p) => Some(RunLog::create(p, val.is_some())?),
        None => None,
    };
    let setup_s = start.elapsed().as_secs_f64();
    let opts = TrainOptions {
        rule: job.rule.clone(),
        monitor,
        restore_best: job.restore_best,
    };
    let outcome = train::train(session.as_mut(), &opts, |c| {
        observe(c);
        match log.as_mut() {
            Some(l) => l.write(c),
            None => Ok(()),
        }
    })?;
    let adapter = session.adapter();
    let report = Report {
        backend: if adapter.is_some() { "gpu" } else { "cpu" }.into(),
        adapter,
        data: DataInfo {
            source: data.source.clone(),
            rows: data.rows,
            features: data.features,
            positives: data.positives(),
            label_mapping: data.label.clone(),
            standardized,
            val: val.as_ref().map(|v| ValInfo {
                source: v.source.clone(),
                rows: v.rows,
                positives: v.positives(),
            }),
        },
        model: ModelInfo {
            layers: spec.layers.clone(),
            activation: (!spec.is_logistic()).then_some(spec.activation),
            parameters: spec.parameter_count(),
            checksum: model::checksum(&outcome.params),
        },
        stop: StopReport {
            message: report::stop_message(&outcome.stop, &job.rule),
            info: outcome.stop.clone(),
        },
        metrics: outcome.metrics,
        val_metrics: outcome.val_metrics,
        max_iter: job.rule.max_iter,
        eval_every: job.rule.eval_every,
        restore_best: job.restore_best,
        lr: job.lr,
        seed: job.seed,
        timing: Timing {
            setup_s,
            train_s: outcome.train_s,
            iterations_per_s: if outcome.train_s > 0.0 {
                outcome.evaluations as f64 / outcome.train_s
            } else {
                0.0
            },
        },
    };
    Ok(JobResult {
        report,
        outcome,
        notice: opened.notice,
    })
}

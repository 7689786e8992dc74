//! A whole training job as typed configuration: what the command line builds and tests call.

use std::path::PathBuf;
use std::time::Instant;

use crate::backend::{self, BackendChoice, SessionConfig};
use crate::data::{self, CsvOptions, Dataset, Demo, DemoOptions, Standardizer};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{self, Activation, ModelSpec};
use crate::report::{self, DataInfo, ModelInfo, Report, StopReport, Timing};
use crate::stop::StopRule;
use crate::train::{self, Outcome};

/// Where the rows come from.
#[derive(Clone, Debug)]
pub enum DataSource {
    Csv { path: PathBuf, options: CsvOptions },
    Demo { kind: Demo, options: DemoOptions },
}

#[derive(Clone, Debug)]
pub struct TrainJob {
    pub source: DataSource,
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

/// Loads the data and applies the standardization the job asks for.
pub fn load(job: &TrainJob) -> Result<(Dataset, bool)> {
    let mut data = match &job.source {
        DataSource::Csv { path, options } => data::load_csv(path, options)?,
        DataSource::Demo { kind, options } => data::demo(
            *kind,
            &DemoOptions {
                seed: job.seed,
                ..options.clone()
            },
        )?,
    };
    if job.standardize {
        Standardizer::fit(&data).apply(&mut data);
    }
    Ok((data, job.standardize))
}

/// Runs the job: data → model → backend → training loop → report.
pub fn run(job: &TrainJob, observe: impl FnMut(u64, &Metrics)) -> Result<JobResult> {
    if !(job.lr.is_finite() && job.lr > 0.0) {
        return Err(Error::Config(format!(
            "--lr {}: must be a finite number above 0",
            job.lr
        )));
    }
    let start = Instant::now();
    let (data, standardized) = load(job)?;
    let spec = ModelSpec::new(data.features, &job.hidden, job.activation)?;
    let cfg = SessionConfig {
        params: spec.init_params(job.seed),
        lr: job.lr,
    };
    let opened = backend::open(job.backend, job.adapter.as_deref(), &data, &spec, &cfg)?;
    let mut session = opened.session;
    let setup_s = start.elapsed().as_secs_f64();
    let outcome = train::train(session.as_mut(), &job.rule, observe)?;
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
        },
        model: ModelInfo {
            layers: spec.layers.clone(),
            activation: (!spec.is_logistic()).then_some(spec.activation),
            parameters: spec.parameter_count(),
            checksum: model::checksum(&outcome.params),
        },
        stop: StopReport {
            message: report::stop_message(&outcome.stop, job.rule.max_iter),
            info: outcome.stop.clone(),
        },
        metrics: outcome.metrics,
        max_iter: job.rule.max_iter,
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

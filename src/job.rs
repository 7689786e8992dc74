//! A whole training job as typed configuration: what the command line builds and tests call.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Instant;

use crate::backend::{self, BackendChoice, Session, SessionConfig};
use crate::batches::Batching;
use crate::data::{self, CsvOptions, Dataset, Demo, DemoOptions, Standardizer};
use crate::early_bird::EarlyBirdSettings;
use crate::error::{Error, Result};
use crate::model::{self, Activation, Head, ModelSpec};
use crate::modelfile::{self, Model, ModelFile, SavedOptimizer};
use crate::optim::{MAX_STEP, OptState, Optimizer, Schedule, ScheduleKind};
use crate::outputs::{self, WriteError};
use crate::progress;
use crate::report::{
    self, DataInfo, FullMetrics, ModelInfo, Report, StopReport, Timing, TrainingInfo, ValInfo,
};
use crate::runlog::RunLog;
use crate::stop::{StopReason, StopRule};
use crate::train::{self, CheckRecord, Monitor, Outcome, SyncMode, TrainOptions};

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
    pub sync: SyncMode,
    /// `--chunk K`; `None` adapts.
    pub chunk: Option<u32>,
    /// Set it to stop after the current iteration or chunk (reason `interrupted`).
    pub interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Set by `run` just before the first output (`--log`) is created: from then on the run
    /// has begun, so a signal must stop it gracefully rather than end the process.
    pub started: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    pub standardize: bool,
    pub hidden: Vec<usize>,
    /// `--head`; `None`: a sigmoid for two classes, softmax for more (or the `--init-weights`
    /// file's).
    pub head: Option<Head>,
    /// `None`: relu, or the `--init-weights` file's.
    pub activation: Option<Activation>,
    /// The flag that gave `init_weights`, as errors name it: `--init-weights` (`prune`:
    /// `--model`).
    pub init_flag: &'static str,
    /// `--init-weights FILE`: start from a saved model's weights, with its architecture and
    /// its standardization statistics (so continued training sees the same inputs).
    pub init_weights: Option<PathBuf>,
    /// `--save FILE`: where the caller writes the returned model (checked with the other
    /// outputs before the run; `run` does not write it).
    pub save: Option<PathBuf>,
    /// `--save-timings`: keep the report's `timing` in the model file (its bytes then differ
    /// run to run).
    pub save_timings: bool,
    pub seed: u64,
    pub lr: f32,
    pub rule: StopRule,
    /// `--early-bird S` with its eps and window: stop once the magnitude mask settles.
    pub early_bird: Option<EarlyBirdSettings>,
    /// The optimizer, schedule and batches.
    pub training: TrainingSettings,
    pub backend: BackendChoice,
    pub adapter: Option<String>,
}

/// The optimizer, schedule and mini-batch settings as checked from the flags; what depends on
/// the data (updates per epoch) is settled in [`run`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingSettings {
    pub optimizer: Optimizer,
    pub schedule: ScheduleKind,
    /// StepLR's step size and γ.
    pub lr_step: u64,
    pub lr_gamma: f64,
    /// Cosine's T_max; `None`: the run's last update.
    pub lr_tmax: Option<u64>,
    /// `None`: full batch.
    pub batch_size: Option<usize>,
    pub shuffle: bool,
    /// `--max-epochs`: replaces the rule's max_iter once the updates per epoch are known.
    pub max_epochs: Option<u64>,
    /// `--eval-every` was given (else, with mini-batches, one check per epoch).
    pub eval_every_given: bool,
    /// `--reset-optimizer`: ignore an `--init-weights` file's optimizer state.
    pub reset_optimizer: bool,
}

impl Default for TrainingSettings {
    fn default() -> Self {
        TrainingSettings {
            optimizer: Optimizer::default(),
            schedule: ScheduleKind::Constant,
            lr_step: 1,
            lr_gamma: 0.1,
            lr_tmax: None,
            batch_size: None,
            shuffle: true,
            max_epochs: None,
            eval_every_given: false,
            reset_optimizer: false,
        }
    }
}

/// What the settings give over `n` training rows: the batching, the updates per epoch and the
/// rule with `--max-epochs` and the per-epoch checks applied.
fn settle(job: &TrainJob, n: usize) -> Result<(Option<Batching>, u64, StopRule)> {
    let ts = &job.training;
    let batch = ts.batch_size.map(|size| Batching {
        size,
        shuffle: ts.shuffle,
        seed: job.seed,
    });
    let per_epoch = batch.filter(|b| b.is_mini(n)).map_or(1, |b| b.per_epoch(n));
    let mut rule = job.rule.clone();
    if let Some(e) = ts.max_epochs {
        rule.max_iter = e.checked_mul(per_epoch).ok_or_else(|| {
            Error::Config(format!(
                "--max-epochs {e}: {e} epochs of {per_epoch} updates is more updates than a u64 counts"
            ))
        })?;
        if let (Some(p), true) = (rule.patience, rule.warmup >= rule.max_iter) {
            return Err(Error::Config(format!(
                "--warmup {}: with --max-epochs {e} ({} updates) no check is left after the \
                 warm-up for --patience {p} to count",
                rule.warmup, rule.max_iter
            )));
        }
    }
    if per_epoch > 1 && !ts.eval_every_given {
        rule.eval_every = per_epoch;
    }
    Ok((batch, per_epoch, rule))
}

/// The optimizer state a run resumes from: the `--init-weights` file's, unless reset; an
/// error where it belongs to another optimizer.
fn resume_state(job: &TrainJob, init: Option<&ModelFile>) -> Result<Option<OptState>> {
    let (Some(f), Some(path)) = (init, &job.init_weights) else {
        return Ok(None);
    };
    let Some(saved) = &f.optimizer else {
        return Ok(None);
    };
    if job.training.reset_optimizer {
        return Ok(None);
    }
    let (had, want) = (&saved.optimizer, &job.training.optimizer);
    if had.kind != want.kind || had.buffers() != want.buffers() {
        let describe = |o: &Optimizer| match o.buffers() {
            1 => format!("{} with momentum", o.kind.name()),
            _ => o.kind.name().to_string(),
        };
        return Err(Error::Config(format!(
            "--init-weights {}: the file holds the state of {} after {} updates, but this run uses \
             {}; pass the same --optimizer (and --momentum) to resume it, or --reset-optimizer \
             to start the optimizer afresh",
            path.display(),
            describe(had),
            saved.state.step,
            describe(want)
        )));
    }
    Ok(Some(saved.state.clone()))
}

/// What a finished job hands back.
pub struct JobResult {
    pub report: Report,
    pub outcome: Outcome,
    /// A one-line notice for the user (e.g. the CPU fallback), if any.
    pub notice: Option<String>,
    /// The returned weights with everything needed to apply them: what `--save` writes.
    pub model: Model,
    /// The optimizer state that goes with them (`--save` writes it too).
    pub optimizer: Option<SavedOptimizer>,
    /// Outputs that failed (`--log` during the run, `--save` at its end); the report stands.
    pub write_errors: Vec<WriteError>,
}

/// The training rows and, if asked for, validation rows, standardized with statistics of the
/// training rows only.
pub struct Loaded {
    pub train: Dataset,
    pub val: Option<Dataset>,
    pub standardized: bool,
    /// The statistics applied: fitted to the training rows, or the `--init-weights` file's.
    pub standardizer: Option<Standardizer>,
    /// The `--init-weights` model file, checked against the data.
    pub init: Option<ModelFile>,
}

/// Loads the data and applies the split and standardization the job asks for.
pub fn load(job: &TrainJob) -> Result<Loaded> {
    // Inputs that are one stream (`--data - --val -`) are refused before anything is read.
    let mut inputs = Vec::new();
    if let DataSource::Csv { path, .. } = &job.source {
        inputs.push(("--data", path.as_path()));
    }
    if let ValSource::File(path) = &job.val {
        inputs.push(("--val", path.as_path()));
    }
    if let Some(path) = &job.init_weights {
        inputs.push((job.init_flag, path.as_path()));
    }
    data::check_streams(&inputs)?;
    let init = match &job.init_weights {
        Some(p) => Some(modelfile::load_flag(job.init_flag, p)?),
        None => None,
    };
    let data = match &job.source {
        DataSource::Csv { path, options } => data::load_csv(path, options)?,
        DataSource::Demo { kind, options } => {
            let d = data::demo(
                *kind,
                &DemoOptions {
                    seed: job.seed,
                    ..options.clone()
                },
            )?;
            one_class_demo(&d, options)?;
            d
        }
    };
    let (mut train, mut val) = match &job.val {
        ValSource::None => (data, None),
        ValSource::File(path) => {
            // The --data file's delimiter; a demo set's --val file is comma-separated.
            let delimiter = match &job.source {
                DataSource::Csv { options, .. } => options.delimiter,
                DataSource::Demo { .. } => b',',
            };
            let v = data::load_csv_like(path, &data, delimiter)?;
            (data, Some(v))
        }
        ValSource::Split(f) => {
            let (t, v) = data::split_stratified(&data, *f, job.seed)?;
            (t, Some(v))
        }
    };
    let standardizer = match (&init, &job.init_weights) {
        (Some(f), Some(path)) => {
            check_init_data(job.init_flag, path, &f.model, &train)?;
            if !job.standardize && f.model.standardization.is_some() {
                return Err(Error::Config(format!(
                    "--no-standardize: the {} model {} was trained on standardized features; continuing uses its statistics",
                    job.init_flag,
                    path.display()
                )));
            }
            f.model.standardization.clone()
        }
        _ => job.standardize.then(|| Standardizer::fit(&train)),
    };
    if let Some(s) = &standardizer {
        s.apply(&mut train);
        if let Some(v) = val.as_mut() {
            s.apply(v);
        }
    }
    Ok(Loaded {
        train,
        val,
        standardized: standardizer.is_some(),
        standardizer,
        init,
    })
}

/// A demo set too small to hold two classes is an error, as a CSV file with one label is.
fn one_class_demo(d: &Dataset, options: &DemoOptions) -> Result<()> {
    let counts = d.class_counts();
    if let Some(only) = counts.iter().position(|&n| n == d.rows) {
        return Err(Error::Config(format!(
            "{}{}: {} row{}, all of class {}; training needs rows of at least two classes",
            d.source.replace("demo:", "--demo "),
            options
                .rows
                .map_or(String::new(), |r| format!(" --rows {r}")),
            d.rows,
            if d.rows == 1 { "" } else { "s" },
            only
        )));
    }
    Ok(())
}

/// The `--init-weights` model must have been trained on the data's features and labels.
fn check_init_data(
    flag: &str,
    path: &std::path::Path,
    model: &Model,
    data: &Dataset,
) -> Result<()> {
    let shown = path.display();
    if model.features != data.feature_names {
        let same_set = {
            let (mut a, mut b) = (model.features.clone(), data.feature_names.clone());
            a.sort();
            b.sort();
            a == b
        };
        return Err(Error::Config(format!(
            "{flag} {shown}: the model's features are [{}] but the data's are [{}]{}",
            model.features.join(", "),
            data.feature_names.join(", "),
            if same_set {
                " (the same columns in another order: reorder the columns)"
            } else {
                ""
            }
        )));
    }
    // Label values compare exactly (numbers by value, never through f64).
    let same = data::same_label;
    let (m, d) = (&model.label, &data.label);
    let classes_match = m.k() == d.k() && m.classes.iter().zip(&d.classes).all(|(a, b)| same(a, b));
    if m.column != d.column || !classes_match {
        let describe = |l: &crate::data::LabelMapping| {
            if model.spec.head == Head::Sigmoid && l.k() == 2 {
                format!("{} = positive, {} = negative", l.positive(), l.negative())
            } else {
                format!("the classes [{}]", l.classes.join(", "))
            }
        };
        return Err(Error::Config(format!(
            "{flag} {shown}: the model's label \"{}\" has {}, but the data's \"{}\" has {} (--label and --positive choose them)",
            m.column,
            describe(m),
            d.column,
            describe(d)
        )));
    }
    Ok(())
}

/// `--hidden` and `--activation`, where given, must match the `--init-weights` model.
pub fn check_init_arch(job: &TrainJob, path: &std::path::Path, model: &Model) -> Result<()> {
    let hidden = &model.spec.layers[1..model.spec.layers.len() - 1];
    let list = |h: &[usize]| {
        let v: Vec<String> = h.iter().map(|x| x.to_string()).collect();
        if v.is_empty() {
            "none (logistic regression)".to_string()
        } else {
            v.join(",")
        }
    };
    if !job.hidden.is_empty() && job.hidden != hidden {
        return Err(Error::Config(format!(
            "--hidden {}: the {} model {} has hidden layers {}; leave out --hidden to take the model's",
            list(&job.hidden),
            job.init_flag,
            path.display(),
            list(hidden)
        )));
    }
    if let (Some(a), None) = (job.activation, model.activation()) {
        return Err(Error::Config(format!(
            "--activation {}: the {} model {} is logistic regression, with no hidden layer to \
             activate; leave out --activation",
            a.name(),
            job.init_flag,
            path.display()
        )));
    }
    if let (Some(a), Some(m)) = (job.activation, model.activation()) {
        if a != m {
            return Err(Error::Config(format!(
                "--activation {}: the {} model {} uses {}; leave out --activation to take the model's",
                a.name(),
                job.init_flag,
                path.display(),
                m.name()
            )));
        }
    }
    Ok(())
}

/// Runs the job: data → model → backend → training loop → report. `checked` is what
/// [`outputs::check_train`] found before anything ran; `--log` is written through it. The
/// returned model is not saved here: the caller writes `--save` with its other outputs.
pub fn run(
    job: &TrainJob,
    checked: &outputs::Checked,
    settled: impl FnOnce(&StopRule),
    observe: impl FnMut(&CheckRecord),
) -> Result<JobResult> {
    check_lr(job)?;
    let start = Instant::now();
    let Loaded {
        train,
        val,
        standardized,
        standardizer,
        init,
    } = load(job)?;
    let resume = resume_state(job, init.as_ref())?;
    let (spec, params) = match (init, &job.init_weights) {
        (Some(f), Some(path)) => {
            check_init_arch(job, path, &f.model)?;
            (f.model.spec, Some(f.model.params))
        }
        _ => {
            let activation = job.activation.unwrap_or(Activation::Relu);
            let k = train.label.k();
            if job.head == Some(Head::Sigmoid) && k != 2 {
                return Err(Error::Config(format!(
                    "--head sigmoid: the label column \"{}\" has {k} classes; a sigmoid head classifies two (use --head softmax)",
                    train.label.column
                )));
            }
            let head = Head::for_classes(k, job.head);
            (
                ModelSpec::with_head(train.features, &job.hidden, activation, head, k)?,
                None,
            )
        }
    };
    let rows = Rows {
        train: Cow::Owned(train),
        val: val.map(Cow::Owned),
        standardized,
        standardizer,
    };
    let from = Start {
        spec,
        params,
        resume,
        mask: None,
    };
    run_from(job, rows, from, start, checked, settled, observe)
}

/// The job's `--lr` is a finite number above 0.
pub fn check_lr(job: &TrainJob) -> Result<()> {
    if job.lr.is_finite() && job.lr > 0.0 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "--lr {}: must be a finite number above 0",
            job.lr
        )))
    }
}

/// A job's rows, loaded and standardized ([`load`]): owned rows go to the session (the CPU
/// keeps them without a copy), borrowed ones are copied or uploaded.
pub struct Rows<'a> {
    pub train: Cow<'a, Dataset>,
    pub val: Option<Cow<'a, Dataset>>,
    pub standardized: bool,
    pub standardizer: Option<Standardizer>,
}

/// Where a run's weights start.
pub struct Start {
    pub spec: ModelSpec,
    /// `None`: initialised from the job's seed, once the shapes are checked.
    pub params: Option<Vec<f32>>,
    pub resume: Option<OptState>,
    /// A pruning mask (see [`SessionConfig::mask`]).
    pub mask: Option<Vec<bool>>,
}

/// The rows' dataset without its features (what the report needs of it).
fn without_x(d: &Dataset) -> Dataset {
    Dataset {
        x: Vec::new(),
        y: d.y.clone(),
        rows: d.rows,
        features: d.features,
        feature_names: d.feature_names.clone(),
        label: d.label.clone(),
        source: d.source.clone(),
    }
}

/// [`run`] on rows already loaded, from `from`; `start` is when the job began (the report's
/// setup time counts from it).
pub fn run_from(
    job: &TrainJob,
    rows: Rows,
    from: Start,
    start: Instant,
    checked: &outputs::Checked,
    settled: impl FnOnce(&StopRule),
    observe: impl FnMut(&CheckRecord),
) -> Result<JobResult> {
    open(job, rows, from, settled)?.train(job, start, checked, observe)
}

/// A job's session, open and ready to train; [`OpenJob::restart`] starts it over.
pub struct OpenJob {
    session: Box<dyn Session>,
    /// A one-line notice for the user (e.g. the CPU fallback), if any.
    pub notice: Option<String>,
    spec: ModelSpec,
    cfg: SessionConfig,
    /// The rows without their features, for the report.
    data: Dataset,
    val: Option<Dataset>,
    standardized: bool,
    standardizer: Option<Standardizer>,
    monitor: Monitor,
    per_epoch: u64,
    /// The rule as settled (`--max-epochs`, per-epoch checks); a caller may change its
    /// bounds between runs (the session's schedule stays the one it opened with).
    pub rule: StopRule,
    step0: u64,
}

/// Opens the job's session over `rows` from `from`; `settled` sees the rule once the rows are
/// known.
pub fn open(
    job: &TrainJob,
    rows: Rows,
    from: Start,
    settled: impl FnOnce(&StopRule),
) -> Result<OpenJob> {
    let Rows {
        train: train_rows,
        val: val_rows,
        standardized,
        standardizer,
    } = rows;
    let data = without_x(&train_rows);
    let val = val_rows.as_deref().map(without_x);
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
    let Start {
        spec,
        params,
        resume,
        mask,
    } = from;
    // Every buffer is checked against the adapter's limits (or the memory) from the shapes
    // alone, before the parameters are initialised.
    let prepared = backend::prepare(
        job.backend,
        job.adapter.as_deref(),
        &train_rows,
        val_rows.as_deref(),
        &spec,
    )?;
    let params = params.unwrap_or_else(|| spec.init_params(job.seed));
    let (batch, per_epoch, rule) = settle(job, data.rows)?;
    settled(&rule);
    let ts = &job.training;
    let step0 = resume.as_ref().map_or(0, |s| s.step);
    if step0
        .checked_add(rule.max_iter)
        .is_none_or(|end| end > MAX_STEP)
    {
        return Err(Error::Config(format!(
            "--max-iter {}: resumed at step {step0}, the optimizer would count more than 2^53 \
             updates",
            rule.max_iter
        )));
    }
    let schedule = match ts.schedule {
        ScheduleKind::Constant => Schedule::Constant,
        ScheduleKind::Step => Schedule::Step {
            step: ts.lr_step,
            gamma: ts.lr_gamma,
        },
        ScheduleKind::Cosine => Schedule::Cosine {
            t_max: ts
                .lr_tmax
                .unwrap_or_else(|| step0.saturating_add(rule.max_iter)),
        },
    };
    let cfg = SessionConfig {
        params,
        lr: job.lr,
        optimizer: ts.optimizer,
        schedule,
        batch,
        resume,
        mask,
    };
    // Owned rows go to the session (the CPU keeps them, the GPU uploads them): X is not
    // copied; what the report needs of the data stays here.
    let opened = match (train_rows, val_rows) {
        (Cow::Owned(t), v) => prepared.open_owned(t, v.map(Cow::into_owned), &spec, &cfg)?,
        (Cow::Borrowed(t), v) => prepared.open(t, v.as_deref(), &spec, &cfg)?,
    };
    let session = opened.session;
    let mut notice = opened.notice;
    let ignored = match (job.chunk, session.adapter()) {
        (Some(k), None) => Some(format!(
            "--chunk {k}: the CPU backend has no round trips to save and runs iteration by iteration; --chunk is ignored"
        )),
        _ => None,
    };
    if let Some(ignored) = ignored {
        notice = Some(match notice {
            Some(n) => format!("{n}\n{ignored}"),
            None => ignored,
        });
    }
    Ok(OpenJob {
        session,
        notice,
        spec,
        cfg,
        data,
        val,
        standardized,
        standardizer,
        monitor,
        per_epoch,
        rule,
        step0,
    })
}

impl OpenJob {
    /// The session starts over from `params` under `mask`, with a fresh optimizer state.
    pub fn restart(&mut self, params: &[f32], mask: Option<&[bool]>) -> Result<()> {
        self.session.restart(params, mask)?;
        self.cfg.resume = None;
        self.cfg.mask = mask.map(<[bool]>::to_vec);
        self.step0 = 0;
        Ok(())
    }

    /// Trains the session from where it stands under `self.rule` and reports; `start` is when
    /// the job began.
    pub fn train(
        &mut self,
        job: &TrainJob,
        start: Instant,
        checked: &outputs::Checked,
        mut observe: impl FnMut(&CheckRecord),
    ) -> Result<JobResult> {
        let OpenJob {
            session,
            notice,
            spec,
            cfg,
            data,
            val,
            standardized,
            standardizer,
            monitor,
            per_epoch,
            rule,
            step0,
        } = self;
        let (monitor, per_epoch, step0, standardized) =
            (*monitor, *per_epoch, *step0, *standardized);
        if let Some(s) = &job.started {
            s.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut log = match &job.log {
            Some(p) => Some(
                RunLog::create(p, val.is_some(), checked)
                    .map_err(|e| Error::Config(WriteError::new("--log", p, &e).to_string()))?,
            ),
            None => None,
        };
        let setup_s = start.elapsed().as_secs_f64();
        let opts = TrainOptions {
            rule: rule.clone(),
            monitor,
            restore_best: job.restore_best,
            sync: job.sync,
            chunk: job.chunk,
            interrupt: job.interrupt.clone(),
            early_bird: job.early_bird.map(|e| e.on(spec.layout())),
        };
        // A failed log write does not stop the run: the log is closed, the error said at once and
        // again in the result.
        let mut write_errors = Vec::new();
        let outcome = train::train(session.as_mut(), &opts, |c| {
            observe(c);
            if let (Some(l), Some(p)) = (log.as_mut(), &job.log) {
                if let Err(e) = l.write(c) {
                    let w = WriteError::new("--log", p, &e);
                    progress::eprintln_above(&format!(
                        "wgtrain: error: {w}; training goes on without the log"
                    ));
                    write_errors.push(w);
                    log = None;
                }
            }
            Ok(())
        })?;
        drop(log);
        let adapter = session.adapter();
        // The state that goes with the returned weights; none for a non-finite stop's.
        let optimizer = match outcome.stop.reason {
            StopReason::NonFinite if !outcome.stop.restored_best => None,
            _ => {
                let mut state = session.optimizer_state(outcome.stop.restored_best)?;
                state.step = step0 + outcome.stop.iteration;
                Some(SavedOptimizer {
                    optimizer: cfg.optimizer,
                    state,
                })
            }
        };
        let report = Report {
            backend: if adapter.is_some() { "gpu" } else { "cpu" }.into(),
            adapter,
            data: DataInfo {
                source: data.source.clone(),
                rows: data.rows,
                features: data.features,
                positives: data.binary_positives(),
                classes: data.label.classes.clone(),
                label_mapping: data.label.json(spec.head == Head::Softmax),
                standardized,
                val: val.as_ref().map(|v| ValInfo {
                    source: v.source.clone(),
                    rows: v.rows,
                    positives: v.binary_positives(),
                }),
            },
            model: ModelInfo {
                layers: spec.layers.clone(),
                head: spec.head,
                activation: (!spec.is_logistic()).then_some(spec.activation),
                parameters: spec.parameter_count(),
                checksum: model::checksum(&outcome.params),
            },
            stop: StopReport {
                message: report::stop_message(&outcome.stop, rule),
                info: outcome.stop.clone(),
            },
            metrics: FullMetrics::new(&outcome.counts.train, &data.label.classes),
            val_metrics: outcome
                .counts
                .val
                .as_ref()
                .map(|c| FullMetrics::new(c, &data.label.classes)),
            max_iter: rule.max_iter,
            eval_every: rule.eval_every,
            training: TrainingInfo::new(cfg, data.rows, per_epoch),
            restore_best: job.restore_best,
            lr: job.lr,
            seed: job.seed,
            timing: Timing {
                setup_s,
                train_s: outcome.train_s,
                // Iterations run: the updates, or at full batch the evaluations (t = 0 included).
                iterations_per_s: if outcome.train_s > 0.0 {
                    outcome.evaluations.max(outcome.updates) as f64 / outcome.train_s
                } else {
                    0.0
                },
            },
        };
        let model = Model {
            spec: spec.clone(),
            features: data.feature_names.clone(),
            standardization: standardizer.as_ref().map(modelfile::file_standardization),
            label: data.label.clone(),
            params: outcome.params.clone(),
        };
        Ok(JobResult {
            report,
            outcome,
            notice: notice.clone(),
            model,
            optimizer,
            write_errors,
        })
    }
}

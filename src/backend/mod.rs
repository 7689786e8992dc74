//! The one interface both backends implement, and backend selection.

pub mod cpu;
pub mod gpu;
pub mod reference;

use std::borrow::Cow;

use serde::Serialize;

use crate::batches::Batching;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::metrics::Counts;
use crate::model::ModelSpec;
use crate::optim::{OptState, Optim, Optimizer, Schedule};
use crate::stop::StopRule;

/// The chunk protocol's limit: the most iterations one `run_chunk` runs (and `--chunk` takes).
pub const MAX_CHUNK: u32 = 1024;

/// Which backend to train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// The GPU when wgpu finds an adapter, else the CPU (with a notice).
    Auto,
    Gpu,
    Cpu,
}

/// The adapter a GPU session runs on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdapterDesc {
    pub name: String,
    pub api: String,
    pub device_type: String,
    pub driver: String,
}

/// Everything a training run needs besides the data and the model's shape.
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    /// Initial parameters, laid out as `ModelSpec::layout`.
    pub params: Vec<f32>,
    /// The base learning rate.
    pub lr: f32,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// Mini-batches; `None` (or a batch of every row) is full batch.
    pub batch: Option<Batching>,
    /// The optimizer's state to resume from (a warm start); `None` starts it at zero.
    pub resume: Option<OptState>,
    /// A pruning mask over the parameters (false: pruned). A pruned parameter is exactly 0.0
    /// after every update, its optimizer state 0 (the mask is applied in the update); it must
    /// be 0 in `params` and `resume` already.
    pub mask: Option<Vec<bool>>,
}

impl SessionConfig {
    /// The rate, schedule and optimizer together.
    pub fn optim(&self) -> Optim {
        Optim {
            lr: self.lr,
            optimizer: self.optimizer,
            schedule: self.schedule,
        }
    }

    /// The batching over `n` training rows when it cuts them into more than one batch.
    pub fn mini_batches(&self, n: usize) -> Option<Batching> {
        self.batch.filter(|b| b.is_mini(n))
    }

    /// The optimizer's state at the start: the resumed one, or zero buffers.
    pub fn initial_state(&self) -> OptState {
        self.resume
            .clone()
            .unwrap_or_else(|| OptState::new(&self.optimizer, self.params.len()))
    }
}

/// The counts of one set of weights on the training rows and, if any, the validation rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    pub train: Counts,
    pub val: Option<Counts>,
}

/// Rejects parameters, data and validation data whose shapes do not fit together.
/// That `params` has P entries and `mask` (if any) P with every pruned parameter 0.
pub(crate) fn check_restart(p: usize, params: &[f32], mask: Option<&[bool]>) -> Result<()> {
    let fits = params.len() == p
        && mask.is_none_or(|m| {
            m.len() == p && params.iter().zip(m).all(|(x, &keep)| keep || *x == 0.0)
        });
    if fits {
        Ok(())
    } else {
        Err(Error::Config(
            "restart: the parameters or the pruning mask do not match the session (or a pruned \
             one is not 0)"
                .into(),
        ))
    }
}

pub(crate) fn check_shapes(
    data: &Dataset,
    val: Option<&Dataset>,
    spec: &ModelSpec,
    cfg: &SessionConfig,
) -> Result<()> {
    if spec.parameter_count() != cfg.params.len() || spec.layers[0] != data.features {
        return Err(Error::Config(
            "the initial parameters do not match the model and data".into(),
        ));
    }
    if let Some(st) = &cfg.resume {
        if st.buffers.len() != cfg.optimizer.buffers()
            || st.buffers.iter().any(|b| b.len() != cfg.params.len())
        {
            return Err(Error::Config(
                "the optimizer state does not match the optimizer and the model".into(),
            ));
        }
    }
    if let Some(mask) = &cfg.mask {
        let pruned_nonzero = |v: &[f32]| v.iter().zip(mask).any(|(x, &keep)| !keep && *x != 0.0);
        if mask.len() != cfg.params.len()
            || pruned_nonzero(&cfg.params)
            || cfg
                .resume
                .as_ref()
                .is_some_and(|st| st.buffers.iter().any(|b| pruned_nonzero(b)))
        {
            return Err(Error::Config(
                "the pruning mask does not match the parameters (or a pruned one is not 0)".into(),
            ));
        }
    }
    if cfg.batch.is_some_and(|b| b.size == 0) {
        return Err(Error::Config("--batch-size 0: must be at least 1".into()));
    }
    if let Some(v) = val {
        if v.features != data.features || v.rows == 0 {
            return Err(Error::Config(format!(
                "the validation data has {} rows × {} features; training has {} features",
                v.rows, v.features, data.features
            )));
        }
    }
    Ok(())
}

/// What the device needs to judge a chunk: the rules, what they watch, whether best weights
/// are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkRule {
    pub rule: StopRule,
    pub monitor_val: bool,
    pub restore_best: bool,
}

/// The host engine's state handed to the device at the start of a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkStart {
    /// The iteration the chunk starts at (its update, if any, is pending).
    pub t: u64,
    pub has_best: bool,
    pub wait: u64,
    /// The host counted the last iteration of the previous chunk, where the device paused
    /// undecided, as an improvement: the device adopts that value as its best.
    pub adopt_candidate: bool,
}

/// One iteration of a chunk as the device ran it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkEntry {
    pub t: u64,
    pub eval: Evaluation,
    /// The device's verdicts: the iteration was a check; it improved (and the weights were
    /// copied as the best); the device paused here.
    pub checked: bool,
    pub improved: bool,
    pub paused: bool,
}

/// One training run's state on one backend: data, weights, optimizer state and scratch,
/// allocated once.
///
/// The iteration contract: `evaluate` yields the counts of the current weights (after t
/// updates) and, at full batch, keeps what the gradient needs; `update` then applies update
/// t + 1 (the optimizer's update number `resume.step + t`). With mini-batches (see
/// [`Session::mini_batches`]) the loop evaluates only at checks and `update` computes its
/// batch's gradient itself. The weights of the previous evaluation stay available through
/// `previous_params`.
pub trait Session {
    /// Forward pass with the current weights over the training rows and the validation rows.
    fn evaluate(&mut self) -> Result<Evaluation>;
    /// One optimizer step: full batch from the last `evaluate`, or over the next mini-batch.
    fn update(&mut self) -> Result<()>;
    /// Whether updates run over mini-batches (then `update` needs no `evaluate` first), and
    /// how many updates an epoch has (1 at full batch).
    fn mini_batches(&self) -> Option<u64> {
        None
    }
    /// The optimizer's state that goes with the current weights (`best`: with the weights
    /// kept by `save_best`).
    fn optimizer_state(&mut self, best: bool) -> Result<OptState>;
    /// The current weights.
    fn params(&mut self) -> Result<Vec<f32>>;
    /// The weights of the evaluation before the last one (at full batch: before the last
    /// update; the initial ones if there was none).
    fn previous_params(&mut self) -> Result<Vec<f32>>;
    /// Keeps a copy of the current weights as the best (on the device for the GPU).
    fn save_best(&mut self) -> Result<()>;
    /// The weights last kept by `save_best` (the initial ones if none were).
    fn best_params(&mut self) -> Result<Vec<f32>>;
    /// Starts over from `params` under `mask` (see [`SessionConfig::mask`]) with a fresh
    /// optimizer state at step 0, keeping the rows and everything allocated: the session is
    /// then as one newly opened with these. (Pruning's rounds.)
    fn restart(&mut self, params: &[f32], mask: Option<&[bool]>) -> Result<()>;
    /// `None` for the CPU.
    fn adapter(&self) -> Option<AdapterDesc>;
    /// The output-layer logits z of the training rows from the last `evaluate`: [rows ×
    /// outputs] row-major (one per row for a sigmoid head, K for softmax). Call it after
    /// `evaluate`, before `update`.
    fn logits(&mut self) -> Result<Vec<f32>>;
    /// The most iterations `run_chunk` runs at once under `rule` (at most [`MAX_CHUNK`]), or
    /// `None` where it runs none (the CPU has no round trip to save).
    fn max_chunk(&self, _rule: &ChunkRule) -> Option<u32> {
        None
    }
    /// Runs up to `k` iterations from `start.t` (recording the pending update first) with the
    /// stop rules judged on the device, which pauses at any iteration where a rule may fire.
    /// Returns the iterations run, the last one evaluated and its update not applied.
    fn run_chunk(
        &mut self,
        _rule: &ChunkRule,
        _start: &ChunkStart,
        _k: u32,
    ) -> Result<Vec<ChunkEntry>> {
        Err(Error::Config("this backend runs no chunks".into()))
    }
}

/// An opened session and what the user should be told about how it was chosen.
pub struct Opened {
    pub session: Box<dyn Session>,
    /// A one-line notice, e.g. that `auto` fell back to the CPU.
    pub notice: Option<String>,
}

/// Opens a session on the chosen backend over the training rows and, if given, validation
/// rows. `adapter` picks a GPU adapter by name substring.
pub fn open(
    choice: BackendChoice,
    adapter: Option<&str>,
    data: &Dataset,
    val: Option<&Dataset>,
    spec: &ModelSpec,
    cfg: &SessionConfig,
) -> Result<Opened> {
    prepare(choice, adapter, data, val, spec)?.open(data, val, spec, cfg)
}

/// The backend chosen and checked against the shapes, before the parameters exist.
pub enum Prepared {
    Cpu {
        notice: Option<String>,
    },
    Gpu {
        ctx: Box<gpu::GpuContext>,
        /// `--backend auto`: the CPU still serves if the session cannot be built.
        auto: bool,
    },
}

/// Chooses the backend and checks every buffer a session over these shapes needs against
/// the adapter's limits (or the machine's memory), reading only the shapes: call it before
/// the parameters are built. `auto` falls back to the CPU where there is no adapter or the
/// model does not fit it; an `--adapter` that matches none is an error.
pub fn prepare(
    choice: BackendChoice,
    adapter: Option<&str>,
    data: &Dataset,
    val: Option<&Dataset>,
    spec: &ModelSpec,
) -> Result<Prepared> {
    let cpu = |notice: Option<String>| -> Result<Prepared> {
        cpu::check_memory(data, val, spec, None)?;
        Ok(Prepared::Cpu { notice })
    };
    match choice {
        BackendChoice::Cpu => cpu(None),
        BackendChoice::Gpu => {
            let ctx = gpu::GpuContext::open(adapter)?;
            gpu::check_limits(&ctx, data, val, spec)?;
            Ok(Prepared::Gpu {
                ctx: Box::new(ctx),
                auto: false,
            })
        }
        BackendChoice::Auto => {
            let checked = gpu::GpuContext::open(adapter)
                .and_then(|ctx| gpu::check_limits(&ctx, data, val, spec).map(|()| ctx));
            match checked {
                Ok(ctx) => Ok(Prepared::Gpu {
                    ctx: Box::new(ctx),
                    auto: true,
                }),
                Err(e) => cpu(Some(auto_fallback(e, adapter, "training")?)),
            }
        }
    }
}

/// Why `--backend auto` runs on the CPU after the GPU failed with `e`, as a notice; `Err`
/// where the failure is the user's to see (an adapter asked for by name and not found, or
/// anything but a missing adapter or a model too large for it).
fn auto_fallback(e: Error, adapter: Option<&str>, doing: &str) -> Result<String> {
    let why = match e {
        Error::NoAdapter(_) if adapter.is_none() => "no GPU adapter found".to_string(),
        Error::TooLarge(why) => why,
        e => return Err(e),
    };
    Ok(fallback_notice(doing, &why))
}

fn fallback_notice(doing: &str, why: &str) -> String {
    format!("{doing} on the CPU: {why} (--backend cpu silences this notice)")
}

/// Inference alone (no training session, no gradient) on the chosen backend: the output
/// logits of `data`'s rows, [rows × outputs] row-major, the adapter used (`None`: the CPU)
/// and, where `auto` fell back to the CPU, a notice saying why.
pub fn forward_logits(
    choice: BackendChoice,
    adapter: Option<&str>,
    spec: &ModelSpec,
    params: &[f32],
    data: &Dataset,
) -> Result<(Vec<f32>, Option<AdapterDesc>, Option<String>)> {
    let cpu = |notice| cpu::forward_logits(spec, params, data).map(|z| (z, None, notice));
    let gpu = |ctx: gpu::GpuContext| {
        gpu::forward_logits(&ctx, spec, params, data).map(|z| (z, Some(ctx.adapter.clone()), None))
    };
    match choice {
        BackendChoice::Cpu => cpu(None),
        BackendChoice::Gpu => gpu(gpu::GpuContext::open(adapter)?),
        BackendChoice::Auto => match gpu::GpuContext::open(adapter).and_then(gpu) {
            Err(e) => cpu(Some(auto_fallback(e, adapter, "running")?)),
            ok => ok,
        },
    }
}

impl Prepared {
    /// Builds the session with the initial parameters; the CPU copies the rows, the GPU
    /// uploads them.
    pub fn open(
        self,
        data: &Dataset,
        val: Option<&Dataset>,
        spec: &ModelSpec,
        cfg: &SessionConfig,
    ) -> Result<Opened> {
        self.open_rows(Cow::Borrowed(data), val.map(Cow::Borrowed), spec, cfg)
    }

    /// Builds the session with the initial parameters, handing it the rows: the CPU keeps
    /// them (no second copy of X), the GPU uploads them and drops them.
    pub fn open_owned(
        self,
        data: Dataset,
        val: Option<Dataset>,
        spec: &ModelSpec,
        cfg: &SessionConfig,
    ) -> Result<Opened> {
        self.open_rows(Cow::Owned(data), val.map(Cow::Owned), spec, cfg)
    }

    /// [`Self::open`] and [`Self::open_owned`]: the CPU takes owned rows as they are and
    /// copies borrowed ones; the GPU only reads them.
    fn open_rows(
        self,
        data: Cow<Dataset>,
        val: Option<Cow<Dataset>>,
        spec: &ModelSpec,
        cfg: &SessionConfig,
    ) -> Result<Opened> {
        let cpu = |data: Cow<Dataset>, val: Option<Cow<Dataset>>, notice| -> Result<Opened> {
            let session = match data {
                Cow::Owned(d) => {
                    cpu::CpuSession::from_owned(d, val.map(Cow::into_owned), spec, cfg)?
                }
                Cow::Borrowed(d) => cpu::CpuSession::new(d, val.as_deref(), spec, cfg)?,
            };
            Ok(Opened {
                session: Box::new(session),
                notice,
            })
        };
        match self {
            Prepared::Cpu { notice } => cpu(data, val, notice),
            Prepared::Gpu { ctx, auto } => {
                match gpu::GpuSession::new(*ctx, &data, val.as_deref(), spec, cfg) {
                    Ok(s) => Ok(Opened {
                        session: Box::new(s),
                        notice: None,
                    }),
                    // E.g. the device ran out of memory, or cannot run mini-batches over
                    // these rows.
                    Err(Error::TooLarge(why) | Error::Unsupported(why)) if auto => {
                        cpu(data, val, Some(fallback_notice("training", &why)))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

//! The CPU training session: the data's copy, the blocks, the weights (current, previous,
//! best), the gradient, and the memory check that runs before any of it is allocated.

use rayon::prelude::*;

use super::block::{Block, Net, softmax_scratch, transpose_weights};
use super::kernels::{GEMM_K, GEMM_ROWS};
use super::{BLOCK_ROWS, Simd, TILE_ROWS};
use crate::backend::{AdapterDesc, Evaluation, Session, SessionConfig, check_shapes};
use crate::batches::Batching;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::memory;
use crate::metrics::Counts;
use crate::model::{Activation, LayerLayout, ModelSpec};
use crate::optim::{self, OptState, Optim};

/// Bytes a session holds with its data, `None` past u64: the caller's rows and the session's
/// copy ([n, f] and [n] each, for the training and the validation rows), the logits [n, K]
/// (K the output layer's width), the weights eleven times (params, wt, prev, best, grad, the
/// last evaluation's, two optimizer buffers and their best copies, and a spare), and per block its
/// tiles' scratch (and a softmax's [K, TILE_ROWS]) and, for the training rows, a partial
/// gradient [p]; with mini-batches of `batch` rows, their copy, logits and blocks (twice:
/// full batches and the remainder).
pub(super) fn working_bytes(
    n: usize,
    n_val: usize,
    f: usize,
    layout: &[LayerLayout],
    p: usize,
    batch: usize,
) -> Option<u64> {
    use memory::mul;
    let rows = |n: usize| mul(n, f.checked_add(1)?);
    let widths = memory::sum(layout.iter().map(|l| Some(l.outputs as u64)))?;
    let scratch = memory::sum([
        mul(2 * TILE_ROWS, widths),
        mul(4, GEMM_K * GEMM_ROWS),
        Some(softmax_scratch(layout) as u64),
    ]);
    let blocks = |n: usize| n.div_ceil(BLOCK_ROWS);
    let outputs = layout.last()?.outputs;
    let floats = memory::sum([
        mul(2, rows(n)?),
        mul(2, rows(n_val)?),
        mul(n, outputs),
        mul(11, p),
        mul(blocks(n), scratch?.checked_add(p as u64)?),
        mul(blocks(n_val), scratch?),
        rows(batch),
        mul(batch, outputs),
        mul(2 * blocks(batch), scratch?.checked_add(p as u64)?),
    ]);
    floats.and_then(memory::f32_bytes)
}

/// Fails unless this machine's memory holds what a session over these shapes allocates;
/// reads only the shapes, so it runs before the parameters are initialised.
pub fn check_memory(
    data: &Dataset,
    val: Option<&Dataset>,
    spec: &ModelSpec,
    batch: Option<Batching>,
) -> Result<()> {
    let layout = spec.layout();
    let p = spec.parameter_count();
    let n_val = val.map_or(0, |v| v.rows);
    let b = batch.filter(|b| b.is_mini(data.rows)).map_or(0, |b| b.size);
    let bytes = working_bytes(data.rows, n_val, data.features, &layout, p, b);
    memory::check(bytes, |size| {
        format!(
            "the CPU backend needs {size} for {} rows{} × {} features and {} parameters \
             (the rows twice, the weights and optimizer state eleven times, a partial \
             gradient per {BLOCK_ROWS} rows)",
            memory::fmt_count(data.rows as u64),
            if n_val > 0 {
                format!(" (and {} validation rows)", memory::fmt_count(n_val as u64))
            } else {
                String::new()
            },
            data.features,
            memory::fmt_count(p as u64)
        )
    })
}

pub struct CpuSession {
    /// [n, f]
    pub(super) x: Vec<f32>,
    /// [n]
    pub(super) y: Vec<f32>,
    /// Validation rows: ([n_val, f], [n_val]).
    pub(super) val: Option<(Vec<f32>, Vec<f32>)>,
    pub(super) blocks: Vec<Block>,
    pub(super) val_blocks: Vec<Block>,
    pub(super) act: Activation,
    pub(super) layout: Vec<LayerLayout>,
    pub(super) optim: Optim,
    /// The optimizer's buffers; `state.step` is the step count at the start (resumed).
    pub(super) state: OptState,
    /// The buffers that go with the best weights.
    pub(super) best_state: Vec<Vec<f32>>,
    /// Updates applied by this session.
    pub(super) updates: u64,
    /// With mini-batches: their rows and scratch.
    pub(super) mini: Option<Mini>,
    /// K: 2 for a sigmoid head, the output width for softmax.
    pub(super) classes: usize,
    pub(super) params: Vec<f32>,
    /// The params' layout with each W transposed, refreshed by every evaluate().
    pub(super) wt: Vec<f32>,
    pub(super) prev: Vec<f32>,
    /// With mini-batches: the weights of the last evaluation (`prev` holds the one before).
    pub(super) last_eval: Vec<f32>,
    pub(super) best: Vec<f32>,
    /// ∇L of the last evaluate(), same layout as params.
    pub(super) grad: Vec<f32>,
    /// [n, outputs], the training logits of the last evaluate().
    pub(super) logits: Vec<f32>,
    pub(super) evaluated: bool,
    pub(super) simd: Simd,
    /// The pruning mask (false: held at 0), applied in every update.
    pub(super) mask: Option<Vec<bool>>,
}

/// A mini-batch run's scratch: the batch's rows gathered in order, and the blocks over a
/// full batch and over the remainder.
pub(super) struct Mini {
    batching: Batching,
    per_epoch: u64,
    /// The epoch whose order `order` holds.
    epoch: Option<u64>,
    order: Vec<u32>,
    /// [B, f] and [B].
    x: Vec<f32>,
    y: Vec<f32>,
    /// [B, outputs].
    logits: Vec<f32>,
    full: Vec<Block>,
    remainder: Vec<Block>,
}

impl CpuSession {
    /// A session over copies of the rows.
    pub fn new(
        data: &Dataset,
        val: Option<&Dataset>,
        spec: &ModelSpec,
        cfg: &SessionConfig,
    ) -> Result<Self> {
        check_shapes(data, val, spec, cfg)?;
        check_memory(data, val, spec, cfg.batch)?;
        Self::from_owned(data.clone(), val.cloned(), spec, cfg)
    }

    /// A session that keeps the rows it is given (no copy of X).
    pub fn from_owned(
        data: Dataset,
        val: Option<Dataset>,
        spec: &ModelSpec,
        cfg: &SessionConfig,
    ) -> Result<Self> {
        check_shapes(&data, val.as_ref(), spec, cfg)?;
        let classes = spec.classes();
        if spec.outputs() > 1 {
            check_classes(&data.y, classes, "training")?;
            if let Some(v) = &val {
                check_classes(&v.y, classes, "validation")?;
            }
        }
        check_memory(&data, val.as_ref(), spec, cfg.batch)?;
        let layout = spec.layout();
        let p = cfg.params.len();
        let cover = |n, train| Block::cover(n, &layout, p, train, classes);
        let mini = cfg.mini_batches(data.rows).map(|b| {
            let f = data.features;
            Mini {
                batching: b,
                per_epoch: b.per_epoch(data.rows),
                epoch: None,
                order: Vec::new(),
                x: vec![0.0; b.size * f],
                y: vec![0.0; b.size],
                logits: vec![0.0; b.size * spec.outputs()],
                full: cover(b.size, true),
                remainder: cover(data.rows % b.size, true),
            }
        });
        let state = cfg.initial_state();
        let val_blocks = val.as_ref().map_or_else(Vec::new, |v| cover(v.rows, false));
        let rows = data.rows;
        Ok(CpuSession {
            x: data.x,
            y: data.y,
            val: val.map(|v| (v.x, v.y)),
            blocks: cover(rows, true),
            val_blocks,
            act: spec.activation,
            optim: cfg.optim(),
            best_state: state.buffers.clone(),
            state,
            updates: 0,
            classes,
            params: cfg.params.clone(),
            wt: vec![0.0; p],
            prev: cfg.params.clone(),
            last_eval: if mini.is_some() {
                cfg.params.clone()
            } else {
                Vec::new()
            },
            mini,
            best: cfg.params.clone(),
            grad: vec![0.0; p],
            logits: vec![0.0; rows * spec.outputs()],
            layout,
            evaluated: false,
            simd: Simd::detect(),
            mask: cfg.mask.clone(),
        })
    }

    /// The same session with its fast path compiled for `simd` (tests compare the two; a set
    /// the CPU lacks falls back to the baseline).
    pub fn with_simd(mut self, simd: Simd) -> Self {
        self.simd = if simd == Simd::detect() {
            simd
        } else {
            Simd::Baseline
        };
        self
    }
}

impl Session for CpuSession {
    /// One pass over the training rows (counts and ∇L, kept for update()) and one forward
    /// pass over the validation rows.
    fn evaluate(&mut self) -> Result<Evaluation> {
        transpose_weights(&self.layout, &self.params, &mut self.wt);
        let net = Net {
            layout: &self.layout,
            act: self.act,
            params: &self.params,
            wt: &self.wt,
        };
        let inv_n = 1.0 / self.y.len() as f32;
        let (x, y, simd) = (&self.x, &self.y, self.simd);
        let out = self.layout[self.layout.len() - 1].outputs;
        if self.mini.is_some() {
            // Counts alone: the updates take their gradients from the batches.
            self.blocks
                .par_iter_mut()
                .for_each(|b| b.run(&net, x, y, None, simd));
            self.prev.copy_from_slice(&self.last_eval);
            self.last_eval.copy_from_slice(&self.params);
        } else {
            self.blocks
                .par_iter_mut()
                .zip(self.logits.par_chunks_mut(BLOCK_ROWS * out))
                .for_each(|(b, logits)| b.run(&net, x, y, Some((inv_n, logits)), simd));
        }
        // The blocks' partials, added in block order.
        self.grad.fill(0.0);
        let mut train = Counts::new(self.classes);
        for b in &self.blocks {
            add_counts(&mut train, &b.counts);
            for (g, p) in self.grad.iter_mut().zip(&b.grad) {
                *g += p;
            }
        }
        let val = self.val.as_ref().map(|(x, y)| {
            self.val_blocks
                .par_iter_mut()
                .for_each(|b| b.run(&net, x, y, None, simd));
            let mut c = Counts::new(self.classes);
            for b in &self.val_blocks {
                add_counts(&mut c, &b.counts);
            }
            c
        });
        self.evaluated = true;
        Ok(Evaluation { train, val })
    }

    /// The optimizer's step with the ∇L the last evaluate() computed, or over the next
    /// mini-batch.
    fn update(&mut self) -> Result<()> {
        let k = self.state.step + self.updates;
        if self.mini.is_some() {
            self.batch_gradient(k);
        } else {
            if !self.evaluated {
                return Err(Error::Config("update() needs an evaluate() first".into()));
            }
            self.prev.copy_from_slice(&self.params);
        }
        optim::apply(
            &self.optim,
            &self.layout,
            &mut self.params,
            &self.grad,
            &mut self.state,
            k,
            self.mask.as_deref(),
        );
        self.updates += 1;
        self.evaluated = false;
        Ok(())
    }

    fn mini_batches(&self) -> Option<u64> {
        self.mini.as_ref().map(|m| m.per_epoch)
    }

    fn optimizer_state(&mut self, best: bool) -> Result<OptState> {
        Ok(OptState {
            step: self.state.step,
            buffers: if best {
                self.best_state.clone()
            } else {
                self.state.buffers.clone()
            },
        })
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn previous_params(&mut self) -> Result<Vec<f32>> {
        Ok(self.prev.clone())
    }

    fn restart(&mut self, params: &[f32], mask: Option<&[bool]>) -> Result<()> {
        crate::backend::check_restart(self.params.len(), params, mask)?;
        for w in [&mut self.params, &mut self.prev, &mut self.best] {
            w.copy_from_slice(params);
        }
        if self.mini.is_some() {
            self.last_eval.copy_from_slice(params);
        }
        if let Some(m) = self.mini.as_mut() {
            m.epoch = None;
        }
        self.state.step = 0;
        for b in self.state.buffers.iter_mut().chain(&mut self.best_state) {
            b.fill(0.0);
        }
        self.updates = 0;
        self.evaluated = false;
        self.mask = mask.map(<[bool]>::to_vec);
        Ok(())
    }

    fn save_best(&mut self) -> Result<()> {
        self.best.copy_from_slice(&self.params);
        for (b, s) in self.best_state.iter_mut().zip(&self.state.buffers) {
            b.copy_from_slice(s);
        }
        Ok(())
    }

    fn best_params(&mut self) -> Result<Vec<f32>> {
        Ok(self.best.clone())
    }

    fn adapter(&self) -> Option<AdapterDesc> {
        None
    }

    fn logits(&mut self) -> Result<Vec<f32>> {
        if self.mini.is_some() {
            return Err(Error::Config(
                "logits(): a mini-batch session's evaluations keep no logits".into(),
            ));
        }
        if !self.evaluated {
            return Err(Error::Config(
                "logits() needs an evaluate() first (and no update() since)".into(),
            ));
        }
        Ok(self.logits.clone())
    }
}

impl CpuSession {
    /// ∇L over update k's mini-batch into `grad`: its rows gathered in the epoch's order,
    /// then the blocks' partials added in block order, the mean over the batch's own rows.
    fn batch_gradient(&mut self, k: u64) {
        let mini = self.mini.as_mut().expect("a mini-batch session");
        let n = self.y.len();
        let f = self.layout[0].inputs;
        let (epoch, range) = mini.batching.batch(n, k);
        if mini.epoch != Some(epoch) {
            mini.order = mini.batching.order(n, epoch);
            mini.epoch = Some(epoch);
        }
        let rows = range.len();
        for (i, &r) in mini.order[range].iter().enumerate() {
            let r = r as usize;
            mini.x[i * f..(i + 1) * f].copy_from_slice(&self.x[r * f..(r + 1) * f]);
            mini.y[i] = self.y[r];
        }
        transpose_weights(&self.layout, &self.params, &mut self.wt);
        let net = Net {
            layout: &self.layout,
            act: self.act,
            params: &self.params,
            wt: &self.wt,
        };
        let inv_n = 1.0 / rows as f32;
        let out = self.layout[self.layout.len() - 1].outputs;
        let blocks = if rows == mini.batching.size {
            &mut mini.full
        } else {
            &mut mini.remainder
        };
        let (x, y, simd) = (&mini.x[..rows * f], &mini.y[..rows], self.simd);
        blocks
            .par_iter_mut()
            .zip(mini.logits[..rows * out].par_chunks_mut(BLOCK_ROWS * out))
            .for_each(|(b, logits)| b.run(&net, x, y, Some((inv_n, logits)), simd));
        self.grad.fill(0.0);
        for b in blocks.iter() {
            for (g, p) in self.grad.iter_mut().zip(&b.grad) {
                *g += p;
            }
        }
    }
}

fn add_counts(total: &mut Counts, c: &Counts) {
    total.add(c);
}

/// Fails unless every label of a softmax head's rows is a class index below `classes`
/// (the kernels index the confusion matrix and the logits with it).
fn check_classes(y: &[f32], classes: usize, which: &str) -> Result<()> {
    match y
        .iter()
        .position(|&v| !(v >= 0.0 && v < classes as f32 && v.fract() == 0.0))
    {
        Some(r) => Err(Error::Config(format!(
            "{which} row {r}: the label {} is not a class index below {classes}",
            y[r]
        ))),
        None => Ok(()),
    }
}

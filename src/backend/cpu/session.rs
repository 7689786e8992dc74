//! The CPU training session: the data's copy, the blocks, the weights (current, previous,
//! best), the gradient, and the memory check that runs before any of it is allocated.

use rayon::prelude::*;

use super::block::{Block, Net, softmax_scratch, transpose_weights};
use super::kernels::{GEMM_K, GEMM_ROWS};
use super::{BLOCK_ROWS, Simd, TILE_ROWS, apply_update};
use crate::backend::{AdapterDesc, Evaluation, Session, SessionConfig, check_shapes};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::memory;
use crate::metrics::Counts;
use crate::model::{Activation, LayerLayout, ModelSpec};

/// Bytes a session holds with its data, `None` past u64: the caller's rows and the session's
/// copy ([n, f] and [n] each, for the training and the validation rows), the logits [n, K]
/// (K the output layer's width), the weights five times (params, wt, prev, best, grad), and
/// per block its tiles' scratch (and a softmax's [K, TILE_ROWS]) and, for the training rows,
/// a partial gradient [p].
pub(super) fn working_bytes(
    n: usize,
    n_val: usize,
    f: usize,
    layout: &[LayerLayout],
    p: usize,
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
        mul(5, p),
        mul(blocks(n), scratch?.checked_add(p as u64)?),
        mul(blocks(n_val), scratch?),
    ]);
    floats.and_then(memory::f32_bytes)
}

/// Fails unless this machine's memory holds what a session over these shapes allocates;
/// reads only the shapes, so it runs before the parameters are initialised.
pub fn check_memory(data: &Dataset, val: Option<&Dataset>, spec: &ModelSpec) -> Result<()> {
    let layout = spec.layout();
    let p = spec.parameter_count();
    let n_val = val.map_or(0, |v| v.rows);
    let bytes = working_bytes(data.rows, n_val, data.features, &layout, p);
    memory::check(bytes, |size| {
        format!(
            "the CPU backend needs {size} for {} rows{} × {} features and {} parameters \
             (the rows twice, the weights five times, a partial gradient per {BLOCK_ROWS} \
             rows)",
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
    pub(super) lr: f32,
    /// K: 2 for a sigmoid head, the output width for softmax.
    pub(super) classes: usize,
    pub(super) params: Vec<f32>,
    /// The params' layout with each W transposed, refreshed by every evaluate().
    pub(super) wt: Vec<f32>,
    pub(super) prev: Vec<f32>,
    pub(super) best: Vec<f32>,
    /// ∇L of the last evaluate(), same layout as params.
    pub(super) grad: Vec<f32>,
    /// [n, outputs], the training logits of the last evaluate().
    pub(super) logits: Vec<f32>,
    pub(super) evaluated: bool,
    pub(super) simd: Simd,
}

impl CpuSession {
    pub fn new(
        data: &Dataset,
        val: Option<&Dataset>,
        spec: &ModelSpec,
        cfg: &SessionConfig,
    ) -> Result<Self> {
        check_shapes(data, val, spec, cfg)?;
        let classes = spec.classes();
        if spec.outputs() > 1 {
            check_classes(&data.y, classes, "training")?;
            if let Some(v) = val {
                check_classes(&v.y, classes, "validation")?;
            }
        }
        check_memory(data, val, spec)?;
        let layout = spec.layout();
        let p = cfg.params.len();
        let cover = |n, train| Block::cover(n, &layout, p, train, classes);
        Ok(CpuSession {
            x: data.x.clone(),
            y: data.y.clone(),
            val: val.map(|v| (v.x.clone(), v.y.clone())),
            blocks: cover(data.rows, true),
            val_blocks: val.map_or_else(Vec::new, |v| cover(v.rows, false)),
            act: spec.activation,
            lr: cfg.lr,
            classes,
            params: cfg.params.clone(),
            wt: vec![0.0; p],
            prev: cfg.params.clone(),
            best: cfg.params.clone(),
            grad: vec![0.0; p],
            logits: vec![0.0; data.rows * spec.outputs()],
            layout,
            evaluated: false,
            simd: Simd::detect(),
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
        self.blocks
            .par_iter_mut()
            .zip(self.logits.par_chunks_mut(BLOCK_ROWS * out))
            .for_each(|(b, logits)| b.run(&net, x, y, Some((inv_n, logits)), simd));
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

    /// W ← W − lr·∇L with the ∇L the last evaluate() computed.
    fn update(&mut self) -> Result<()> {
        if !self.evaluated {
            return Err(Error::Config("update() needs an evaluate() first".into()));
        }
        self.prev.copy_from_slice(&self.params);
        apply_update(&mut self.params, &self.grad, self.lr);
        self.evaluated = false;
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn previous_params(&mut self) -> Result<Vec<f32>> {
        Ok(self.prev.clone())
    }

    fn save_best(&mut self) -> Result<()> {
        self.best.copy_from_slice(&self.params);
        Ok(())
    }

    fn best_params(&mut self) -> Result<Vec<f32>> {
        Ok(self.best.clone())
    }

    fn adapter(&self) -> Option<AdapterDesc> {
        None
    }

    fn logits(&mut self) -> Result<Vec<f32>> {
        if !self.evaluated {
            return Err(Error::Config(
                "logits() needs an evaluate() first (and no update() since)".into(),
            ));
        }
        Ok(self.logits.clone())
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

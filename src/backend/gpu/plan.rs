//! Planning, from the shapes and the adapter's limits alone: which [`KernelPath`] a session
//! takes, how its rows are cut to fit the storage bindings and the driver's loop budget, and
//! the checks that name what is too big before anything is allocated.

use super::device::GpuContext;
use super::kernels::*;
use super::limits::{check_layer_loops, check_model, check_records};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::memory;
use crate::model::{LayerLayout, ModelSpec};

/// The kernels a session runs an iteration with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// Logistic regression on small data, whole iterations in one workgroup
    /// (`lr_loop.wgsl`): a chunk is one dispatch.
    OneWorkgroup,
    /// Logistic regression in blocks of rows (lr_pass, reduce_stats, reduce_update), with
    /// at most [`LR_PASS_MAX_K`] logits.
    Blocked,
    /// An MLP with one hidden layer within `mlp_pass.wgsl`'s limits: one pass over X per
    /// iteration (mlp_pass, reduce_stats, reduce_update).
    OnePassMlp,
    /// Any model: a dispatch per layer and direction (dense_forward, loss_metrics, dense_grad,
    /// dense_backprop), then reduce_stats and reduce_update. Logistic regression takes it
    /// only with more logits than `lr_pass.wgsl` holds.
    Layered,
}

impl KernelPath {
    /// The name `wgtrain bench --gpu-kernels` gives it.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::OneWorkgroup => "one-workgroup",
            KernelPath::Blocked => "blocked",
            KernelPath::OnePassMlp => "one-pass",
            KernelPath::Layered => "layered",
        }
    }

    /// Whether it runs logistic regression (else MLPs).
    pub fn logistic(self) -> bool {
        matches!(self, KernelPath::OneWorkgroup | KernelPath::Blocked)
    }
}

/// Logistic regression whose data has at most this many elements, (training rows + validation
/// rows) × (features + 1), may run whole iterations in one workgroup (`lr_loop.wgsl`): a chunk
/// is one dispatch instead of four per iteration. Beyond it one workgroup would be slower than
/// the dispatches it saves.
pub const LOOP_MAX_ELEMENTS: usize = 1 << 16;
/// `lr_loop.wgsl`'s invocations on CPU adapters: llvmpipe runs a workgroup on one thread, eight
/// invocations per AVX2 vector, so more invocations only add partial sums and barrier switches.
pub(super) const CPU_LOOP_WORKGROUP: u32 = 8;
/// Storage buffers `lr_loop.wgsl` binds.
const LOOP_STORAGE_BUFFERS: u32 = 18;
/// llvmpipe (lavapipe) silently ends every loop of a shader invocation once its loops have
/// taken 65,535 back-edges in all. On CPU adapters an `lr_loop.wgsl` dispatch is kept under
/// this many (see [`loop_edges`]).
pub(super) const CPU_LOOP_BUDGET: u64 = 60_000;
/// Words of stats per part in `partials`, after the gradient: Σ loss. (Confusion counts are
/// integers, tallied with atomics: see `tally.wgsl`.)
pub(super) const STAT_WORDS: usize = 1;
/// The most logits `lr_pass.wgsl` takes: a block of 64 rows' ∂L/∂z fill its MAX_BLOCK words.
pub const LR_PASS_MAX_K: usize = MAX_BLOCK / WORKGROUP;
/// Rows per part of `dense_grad.wgsl`, where a segment holds that many.
const GRAD_CHUNK: usize = 1024;

/// How one set of rows is cut for the device. Rows go in segments of `seg_rows`, each
/// segment's buffers within one storage binding; the gradient (and, for lr_pass.wgsl, the
/// stats) are summed per part of `block` rows, and `seg_rows` is a multiple of `block`, so the
/// segments do not change those sums. (The layered kernels' loss is summed per segment.)
#[derive(Clone, Copy, Debug)]
pub(super) struct Cut {
    pub seg_rows: usize,
    pub block: usize,
}

impl Cut {
    /// The fused logistic-regression pass with `k` logits: X [rows, f] and z [rows, k] share
    /// a segment's buffer.
    fn fused(ctx: &GpuContext, what: &str, data: &Dataset, k: usize) -> Result<Cut> {
        // Blocks of 256 rows, larger for big data so the parts stay few for the update; with
        // k logits at most MAX_BLOCK / k rows (the kernel's ∂L/∂z scratch).
        let want = 256 * data.rows.div_ceil(256 * 256).clamp(1, MAX_BLOCK / 256);
        let want = want.min(MAX_BLOCK / k / WORKGROUP * WORKGROUP);
        let f = data.features;
        Cut::one_pass(ctx, what, data, k, want, WORKGROUP, |b| {
            lr_pass_edges(b, f, k)
        })
    }

    /// `mlp_pass.wgsl`: X [rows, f] and z [rows] share a segment's buffer; blocks of
    /// [`MLP_BLOCK`] rows, larger where `max_parts` parts would not cover the rows, smaller
    /// where the driver's loop budget needs it.
    fn mlp(
        ctx: &GpuContext,
        what: &str,
        data: &Dataset,
        (h, k): (usize, usize),
        max_parts: usize,
    ) -> Result<Cut> {
        let (n, f) = (data.rows, data.features);
        let want = MLP_BLOCK.max(n.div_ceil(max_parts.max(1)).next_multiple_of(MLP_TILE));
        let edges = |b| mlp_pass_edges(b, f, h, k);
        let cut = Cut::one_pass(ctx, what, data, k, want, MLP_TILE, edges)?;
        if n.div_ceil(cut.block) > max_parts.max(1) {
            return Err(too_large(ctx, what, data, 4 * cut.block * (f + k)));
        }
        Ok(cut)
    }

    /// A one-pass kernel's cut, X [rows, f] and z [rows, k] in a segment's buffer: blocks of
    /// `want` rows, at most what one binding holds, shrunk in steps of `step` while one
    /// invocation's back-edges (`edges` of the block) exceed the driver's loop budget.
    fn one_pass(
        ctx: &GpuContext,
        what: &str,
        data: &Dataset,
        k: usize,
        want: usize,
        step: usize,
        edges: impl Fn(usize) -> u64,
    ) -> Result<Cut> {
        let row_words = data.features + k;
        let cap = binding_words(ctx) / row_words;
        if cap < step {
            return Err(too_large(ctx, what, data, 4 * step * row_words));
        }
        let mut block = want.min(cap / step * step);
        if let Some(budget) = ctx.loop_edge_budget {
            while block > step && edges(block) > budget {
                block -= step;
            }
            if edges(block) > budget {
                return Err(loop_limit(ctx, what, data));
            }
        }
        Ok(Cut {
            seg_rows: cap / block * block,
            block,
        })
    }

    /// The layered kernels: a segment's features and every layer's output in one buffer.
    /// Parts of GRAD_CHUNK rows, or more where `max_parts` parts of the partial sums would not
    /// cover the rows.
    fn layered(
        ctx: &GpuContext,
        what: &str,
        data: &Dataset,
        layout: &[LayerLayout],
        max_parts: usize,
    ) -> Result<Cut> {
        let row_words = data.features + layout.iter().map(|l| l.outputs).sum::<usize>();
        Cut::layered_rows(data.rows, row_words, binding_words(ctx), max_parts).ok_or_else(|| {
            Error::TooLarge(format!(
                "{what}: one row's {} features and {} activations need a {} buffer; the \
                 adapter {} binds at most {} per buffer; use a smaller --hidden or --backend cpu",
                memory::fmt_count(data.features as u64),
                memory::fmt_count((row_words - data.features) as u64),
                memory::size_text(memory::f32_bytes(row_words as u64)),
                ctx.adapter.name,
                memory::fmt_bytes(binding_bytes(ctx))
            ))
        })
    }

    /// [`Cut::layered`] for `rows` of `row_words` each and bindings of `binding` words;
    /// `None` where not one row fits.
    pub(super) fn layered_rows(
        rows: usize,
        row_words: usize,
        binding: usize,
        max_parts: usize,
    ) -> Option<Cut> {
        let cap = binding / row_words;
        if cap == 0 {
            return None;
        }
        let block = cap.min(GRAD_CHUNK.max(rows.div_ceil(max_parts.max(1))));
        Some(Cut {
            seg_rows: cap / block * block,
            block,
        })
    }

    pub(super) fn parts(&self, rows: usize) -> usize {
        rows.div_ceil(self.block)
    }

    /// (first row, rows) of each segment.
    pub(super) fn segments(&self, rows: usize) -> impl Iterator<Item = (usize, usize)> {
        let s = self.seg_rows;
        (0..rows.div_ceil(s)).map(move |i| (i * s, s.min(rows - i * s)))
    }
}

/// At most how many loop back-edges one invocation of `lr_pass.wgsl` takes, for blocks of
/// `block` rows of `f` features and `k` logits: per four rows and four logits one loop over
/// the features (each step with a loop over the four) and the stores, per row the softmax's
/// loops over the logits, per item of four features (and four logits) one loop over the
/// block's rows (each step with loops over the fours), and invocation 0's WORKGROUP partials.
fn lr_pass_edges(block: usize, f: usize, k: usize) -> u64 {
    let (b, f, wg, k) = (block as u64, f as u64, WORKGROUP as u64, k as u64);
    let groups = k.div_ceil(4);
    let items = (f + 1).div_ceil(4) * groups;
    let rows = if k == 1 {
        5 * f + 5
    } else {
        groups * (5 * f + 30) + 4 * (3 * k + 4)
    };
    let grad = if k == 1 { 5 * b + 5 } else { 10 * b + 30 };
    b.div_ceil(4 * wg) * rows + items.div_ceil(wg) * grad + wg + 2 * HIST_CELLS as u64 / wg
}

/// Rows per block of `mlp_pass.wgsl` by default.
const MLP_BLOCK: usize = 512;

/// Whether `mlp_pass.wgsl` takes this model: one hidden layer and the logits within its
/// limits.
fn mlp_fits(layout: &[LayerLayout]) -> bool {
    layout.len() == 2
        && layout[0].inputs <= MLP_MAX_F
        && layout[0].outputs <= MLP_MAX_H
        && layout[1].outputs <= MLP_MAX_K
}

/// At most how many loop back-edges one invocation of `mlp_pass.wgsl` takes for blocks of
/// `block` rows, counting every loop as not unrolled and its exit as one more step each time
/// it runs (as llvmpipe does): per tile of 16 rows the loads, its hidden units' loop over the
/// inputs (and two over four units), the logit's loop over the hidden units, three loops over
/// the tile, the δ elements, and the first layer's gradient block (per row of the tile a loop
/// over its four units); then the block's 4 × 8 writes and the 16 partials once.
/// With `k` logits, per tile the logits' elements (each a loop over the hidden units), the
/// softmax's loops over the logits, the output weights' slots (each a loop over the tile) and
/// δ's loop over the logits per element.
fn mlp_pass_edges(block: usize, f: usize, h: usize, k: usize) -> u64 {
    let (s, wg) = (MLP_TILE as u64, MLP_WORKGROUP as u64);
    let (f, h, k) = (f as u64, h as u64, k as u64);
    let mut per_tile = ((s * f).div_ceil(wg) + 1)
        + (f + 11)
        + (h + 1)
        + 3 * (s + 1)
        + ((s * h).div_ceil(wg) + 1)
        + (6 * s + 1)
        + 1;
    if k > 1 {
        per_tile += ((s * k).div_ceil(wg) + 1) * (h + 1)
            + (3 * k + 3)
            + MLP_W1_SLOTS as u64 * (s + 1)
            + (s * h).div_ceil(wg) * k;
    }
    let flush = (HIST_CELLS as u64).div_ceil(wg) + 1;
    (block as u64).div_ceil(s) * per_tile + 41 + (s + 1) + 1 + MLP_W1_SLOTS as u64 + flush
}

/// At most how many loop back-edges one invocation of the layered kernels takes:
/// `dense_forward` (per input 9), `dense_grad` (per row of a part 9), `dense_backprop` (per
/// output 1) and `loss_metrics`: with one logit 1 per LOSS_WORKGROUP rows a segment holds;
/// with K logits 3K + 4 per LOSS_WORKGROUP rows of the largest segment of `rows`, and the
/// histogram's flush.
fn layered_edges(layout: &[LayerLayout], cut: Cut, rows: usize) -> u64 {
    let widest = layout
        .iter()
        .map(|l| l.inputs.max(l.outputs))
        .max()
        .unwrap_or(0);
    let k = layout.last().map_or(1, |l| l.outputs);
    let loss = if k == 1 {
        cut.seg_rows / LOSS_WORKGROUP
    } else {
        cut.seg_rows.min(rows).div_ceil(LOSS_WORKGROUP) * (3 * k + 4) + HIST_CELLS / LOSS_WORKGROUP
    };
    (9 * widest.max(cut.block) + loss + 64) as u64
}

/// The error for data whose kernels would run past the driver's loop limit.
fn loop_limit(ctx: &GpuContext, what: &str, data: &Dataset) -> Error {
    Error::TooLarge(format!(
        "{what}: {} rows × {} features need longer shader loops than {} runs (llvmpipe stops \
         every loop of an invocation after 65,535 steps, silently); use --backend cpu",
        data.rows, data.features, ctx.adapter.name
    ))
}

/// The most 32-bit words one storage binding may hold.
pub(super) fn binding_words(ctx: &GpuContext) -> usize {
    let bytes = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    // Kernels index in u32 words.
    usize::try_from(bytes / 4).map_or(u32::MAX as usize, |w| w.min(u32::MAX as usize))
}

fn too_large(ctx: &GpuContext, what: &str, data: &Dataset, bytes: usize) -> Error {
    Error::TooLarge(format!(
        "{what} need {bytes} bytes in one storage buffer for {} features, more than the {} \
         bytes one may hold on {}; use fewer features or --backend cpu",
        data.features,
        4 * binding_words(ctx),
        ctx.adapter.name
    ))
}

/// What [`GpuSession::new`] builds, decided from the shapes and the adapter's limits alone.
pub(super) struct Plan {
    pub layout: Vec<LayerLayout>,
    pub path: KernelPath,
    pub train_cut: Cut,
    pub val_cut: Option<Cut>,
    pub train_parts: usize,
    /// Parameters, and words per part in `partials`.
    pub p: usize,
    pub stride: usize,
    pub parts: usize,
}

/// Fails, naming what is too big, where a buffer the session would build exceeds the
/// adapter's limits or its kernels the driver's loop budget; reads only the shapes, so it runs
/// before the parameters are initialised or anything big is allocated.
pub fn check_limits(
    ctx: &GpuContext,
    data: &Dataset,
    val: Option<&Dataset>,
    spec: &ModelSpec,
) -> Result<()> {
    plan(ctx, data, val, spec).map(|_| ())
}

/// The kernel path a session on `ctx` over these shapes takes: `ctx.force_path` where it
/// applies and fits (else an error saying why), or the planner's choice: one workgroup where
/// logistic regression's data fits it, else blocked; one pass where the MLP fits it, else
/// layered. For a softmax head of K logits: the one-workgroup kernel takes at most
/// `LOOP_MAX_K` (8) with K·(⌈F/4⌉ + 1) ≤ 17 (else blocked), the blocked kernel at most
/// [`LR_PASS_MAX_K`] (48; more go layered), and the one-pass MLP at most `MLP_MAX_K` (16;
/// more go layered).
pub fn kernel_path(
    ctx: &GpuContext,
    data: &Dataset,
    val: Option<&Dataset>,
    spec: &ModelSpec,
) -> Result<KernelPath> {
    choose_path(ctx, data, val, &spec.layout())
}

fn choose_path(
    ctx: &GpuContext,
    data: &Dataset,
    val: Option<&Dataset>,
    layout: &[LayerLayout],
) -> Result<KernelPath> {
    let logistic = layout.len() == 1;
    let k = layout.last().map_or(1, |l| l.outputs);
    let fits = |p: KernelPath| match p {
        KernelPath::OneWorkgroup => logistic && loop_fits(ctx, data, val, layout),
        KernelPath::Blocked => logistic && k <= LR_PASS_MAX_K,
        KernelPath::OnePassMlp => !logistic && mlp_fits(layout),
        KernelPath::Layered => true,
    };
    let path = match ctx.force_path {
        Some(p) if fits(p) => p,
        Some(p) if p.logistic() && !logistic => {
            return Err(Error::Config(format!(
                "the {} kernels run {}",
                p.name(),
                "logistic regression, not MLPs"
            )));
        }
        Some(KernelPath::OneWorkgroup) => {
            return Err(Error::Config(format!(
                "{} rows × {} features with {k} logits do not fit one workgroup (at most \
                 {LOOP_MAX_FEATURES} features, {LOOP_MAX_K} logits within its registers and \
                 {LOOP_MAX_ELEMENTS} elements)",
                data.rows, data.features
            )));
        }
        Some(KernelPath::Blocked) => {
            return Err(Error::Config(format!(
                "{k} logits do not fit lr_pass.wgsl (at most {LR_PASS_MAX_K})"
            )));
        }
        Some(KernelPath::OnePassMlp) if logistic => {
            return Err(Error::Config(
                "the one-pass kernels run MLPs, not logistic regression".into(),
            ));
        }
        Some(_) => {
            return Err(Error::Config(format!(
                "the MLP {} does not fit mlp_pass.wgsl (one hidden layer of at most {MLP_MAX_H} \
                 units over at most {MLP_MAX_F} features, at most {MLP_MAX_K} logits)",
                layout
                    .iter()
                    .map(|l| l.inputs.to_string())
                    .chain(layout.last().map(|l| l.outputs.to_string()))
                    .collect::<Vec<_>>()
                    .join("→")
            )));
        }
        None if logistic && fits(KernelPath::OneWorkgroup) => KernelPath::OneWorkgroup,
        None if fits(KernelPath::Blocked) => KernelPath::Blocked,
        None if fits(KernelPath::OnePassMlp) => KernelPath::OnePassMlp,
        None => KernelPath::Layered,
    };
    let wg = ctx.loop_workgroup;
    if path == KernelPath::OneWorkgroup
        && !(wg.is_power_of_two() && (2..=LOOP_MAX_WORKGROUP).contains(&wg))
    {
        return Err(Error::Config(format!(
            "loop_workgroup {wg}: a power of two from 2 to {LOOP_MAX_WORKGROUP}"
        )));
    }
    Ok(path)
}

pub(super) fn plan(
    ctx: &GpuContext,
    data: &Dataset,
    val: Option<&Dataset>,
    spec: &ModelSpec,
) -> Result<Plan> {
    check_model(ctx, spec, true)?;
    check_records(ctx, spec.classes())?;
    let layout = spec.layout();
    let path = choose_path(ctx, data, val, &layout)?;
    let fused = path.logistic();
    let mlp = path == KernelPath::OnePassMlp;
    let k = spec.outputs();
    let p = spec.parameter_count();
    let cut = |what: &str, d: &Dataset| {
        // Each set's parts may fill half of one binding of partial sums.
        let max_parts = binding_words(ctx) / 2 / (p + STAT_WORDS);
        if fused {
            Cut::fused(ctx, what, d, k)
        } else if mlp {
            Cut::mlp(ctx, what, d, (layout[0].outputs, k), max_parts)
        } else {
            Cut::layered(ctx, what, d, &layout, max_parts)
        }
    };
    let train_cut = cut("the training rows", data)?;
    let val_cut = val.map(|v| cut("the validation rows", v)).transpose()?;
    if let (false, false, Some(budget)) = (fused, mlp, ctx.loop_edge_budget) {
        check_layer_loops(ctx, spec, budget)?;
        let sets = std::iter::once(("the training rows", data, train_cut));
        let sets = sets.chain(val.zip(val_cut).map(|(v, c)| ("the validation rows", v, c)));
        for (what, d, c) in sets {
            if layered_edges(&layout, c, d.rows) > budget {
                let widest = spec.layers.iter().copied().max().unwrap_or(0);
                return Err(Error::TooLarge(format!(
                    "the widest layer ({} units) with {what} ({} rows) needs longer shader \
                     loops than {} runs (llvmpipe stops every loop of an invocation after \
                     65,535 steps, silently); use smaller layers or --backend cpu",
                    memory::fmt_count(widest as u64),
                    memory::fmt_count(d.rows as u64),
                    ctx.adapter.name
                )));
            }
        }
    }
    let stride = p + STAT_WORDS;
    let train_parts = train_cut.parts(data.rows);
    let val_parts = val.zip(val_cut).map_or(0, |(v, c)| c.parts(v.rows));
    // reduce_update.wgsl adds every part in one loop; reduce_stats.wgsl a 64th of them.
    if let Some(budget) = ctx.loop_edge_budget
        && train_parts.max(val_parts) as u64 + 1 > budget
    {
        let (what, d) = match val {
            Some(v) if val_parts > train_parts => ("the validation rows", v),
            _ => ("the training rows", data),
        };
        return Err(loop_limit(ctx, what, d));
    }
    let parts = train_parts + val_parts;
    let partial_words = memory::mul(parts, stride);
    let limit = binding_bytes(ctx);
    match partial_words.and_then(memory::f32_bytes) {
        Some(b) if b <= limit => {}
        bytes => {
            return Err(Error::TooLarge(format!(
                "the partial sums ({} blocks of {} training and {} validation rows, each a \
                 gradient of {} parameters and {STAT_WORDS} sums) need a {} buffer; the adapter \
                 {} binds at most {} per buffer; use fewer rows, a smaller model or --backend cpu",
                memory::fmt_count(parts as u64),
                memory::fmt_count(data.rows as u64),
                memory::fmt_count(val.map_or(0, |v| v.rows) as u64),
                memory::fmt_count(p as u64),
                memory::size_text(bytes),
                ctx.adapter.name,
                memory::fmt_bytes(limit)
            )));
        }
    }
    // `partials` starts from zeros made on the host.
    memory::check(partial_words.and_then(memory::f32_bytes), |size| {
        format!("the GPU's partial sums per block need {size} on the host")
    })?;
    Ok(Plan {
        layout,
        path,
        train_cut,
        val_cut,
        train_parts,
        p,
        stride,
        parts,
    })
}

/// The most bytes one storage binding of `ctx` holds.
pub(super) fn binding_bytes(ctx: &GpuContext) -> u64 {
    4 * binding_words(ctx) as u64
}

/// Whether `lr_loop.wgsl`'s registers hold `k` logits of `f` features: at most
/// [`LOOP_MAX_FEATURES`] features, and for K ≥ 2 at most `LOOP_MAX_K` logits with
/// K·(⌈f/4⌉ + 1) ≤ LOOP_MAX_FEATURES / 4 + 1 vec4s of partial gradient.
pub(super) fn loop_holds(f: usize, k: usize) -> bool {
    let slots = LOOP_MAX_FEATURES / 4 + 1;
    f <= LOOP_MAX_FEATURES && (k == 1 || (k <= LOOP_MAX_K && k * (f.div_ceil(4) + 1) <= slots))
}

/// Whether `lr_loop.wgsl` takes this logistic regression: logits and features its registers
/// hold ([`loop_holds`]), data of at most [`LOOP_MAX_ELEMENTS`] (rows × (features + 1) ×
/// logits), within the loop budget and one storage binding, on a device that binds its
/// buffers.
fn loop_fits(
    ctx: &GpuContext,
    data: &Dataset,
    val: Option<&Dataset>,
    layout: &[LayerLayout],
) -> bool {
    let f = data.features;
    let k = layout[0].outputs;
    let val_rows = val.map_or(0, |v| v.rows);
    let rows = data.rows + val_rows;
    let edges = loop_edges(data.rows, val_rows, f, k, ctx.loop_workgroup);
    let padded = loop_row_floats(f);
    layout.len() == 1
        && loop_holds(f, k)
        && rows.saturating_mul(f + 1).saturating_mul(k) <= LOOP_MAX_ELEMENTS
        && ctx.loop_edge_budget.is_none_or(|b| edges <= b)
        && memory::mul(data.rows, padded).is_some_and(|w| w <= binding_words(ctx) as u64)
        && memory::mul(val_rows, padded).is_some_and(|w| w <= binding_words(ctx) as u64)
        && ctx.limits.max_storage_buffers_per_shader_stage >= LOOP_STORAGE_BUFFERS
}

/// Floats per row of X in `lr_loop.wgsl`: the features padded to whole vec4s.
fn loop_row_floats(f: usize) -> usize {
    f.next_multiple_of(4)
}

/// The rows of `d` padded with zeros to [`loop_row_floats`] each.
pub(super) fn pad_rows(d: &Dataset) -> Vec<f32> {
    let (f, padded) = (d.features, loop_row_floats(d.features));
    let mut out = Vec::with_capacity(d.rows * padded);
    for row in d.x.chunks_exact(f) {
        out.extend_from_slice(row);
        out.resize(out.len() + padded - f, 0.0);
    }
    out
}

/// At most how many loop back-edges one invocation of `lr_loop.wgsl` (`wg` invocations) takes
/// per iteration, counting every loop as not unrolled and, as llvmpipe does, a loop's exit as
/// one more step each time it runs: the row loops (two loops over a training row's vec4s, one
/// over a validation row's), the loops over the parameters (the dispatch's first load
/// charged to every iteration) and the vec4s, the `wg` partials invocation 0 adds, each
/// owner's `wg`/2 and four, judge() with its class sums and the record's copies (60). With
/// `k` ≥ 2 logits each row's loops run per logit, with the softmax's three over the logits,
/// and the counts and the record take K² more.
pub(super) fn loop_edges(rows: usize, val_rows: usize, f: usize, k: usize, wg: u32) -> u64 {
    let wg = u64::from(wg.max(1));
    let trips = |n: u64| n.div_ceil(wg);
    let f4 = loop_row_floats(f) as u64 / 4;
    let (k, kk) = (k as u64, (k * k) as u64);
    let np = k * (f as u64 + 1);
    let owners = trips(k * (f4 + 1));
    let (row, val_row, extra) = if k == 1 {
        (1 + 2 * (f4 + 1), 1 + f4 + 1, 0)
    } else {
        let soft = 3 * (k + 1) + 1;
        let row = (f4 + 1) + k * (f4 + 2) + soft + k * (f4 + 2) + 2;
        (
            row,
            k * (f4 + 2) + soft + 2,
            6 * kk + k * (f4 + 1) + trips(2 * kk) + 2,
        )
    };
    (trips(rows as u64) * row + 1)
        + (trips(val_rows as u64) * val_row + 1)
        + 3 * (trips(np) + 1)
        + k * (f4 + 1)
        + 2 * (k * (f4 + 1) + 1)
        + (wg + 1)
        + owners * (1 + (wg / 2 + 1) + 5)
        + 1
        + 60
        + 2
        + extra
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts of 1,024 rows while the partial sums fit their budget; larger parts where they
    /// would not; segments always a whole number of parts.
    #[test]
    fn layered_cuts() {
        let c = Cut::layered_rows(100_000, 200, 1 << 24, 1000).unwrap();
        assert_eq!((c.block, c.seg_rows, c.parts(100_000)), (1024, 82_944, 98));
        // 98 parts of 1,024 rows exceed a budget of 40 parts: parts of 2,500 rows.
        let c = Cut::layered_rows(100_000, 200, 1 << 24, 40).unwrap();
        assert_eq!((c.block, c.seg_rows, c.parts(100_000)), (2500, 82_500, 40));
        // A segment holds fewer rows than a part would: parts are segments.
        let c = Cut::layered_rows(300, 9, 1024, 19).unwrap();
        assert_eq!((c.block, c.seg_rows, c.parts(300)), (113, 113, 3));
        assert!(Cut::layered_rows(10, 2000, 1024, 5).is_none());
    }

    /// A context whose storage bindings hold at most `bytes`; `None` (after saying so) where
    /// no adapter opens, which fails the test under CI.
    fn narrow_binding(bytes: u64) -> Option<GpuContext> {
        match GpuContext::open_with_limits(None, |l| l.max_storage_buffer_binding_size = bytes) {
            Ok(c) => Some(c),
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but no GPU adapter is available: {e}"
                );
                eprintln!("SKIPPED: no GPU adapter for the binding-limit checks: {e}");
                None
            }
        }
    }

    /// Each of the model's buffers is checked against the binding limit from the shapes alone,
    /// and the error names it (not the rows).
    #[test]
    fn model_buffers_past_the_binding_limit_are_named() {
        use crate::data::{Demo, DemoOptions};
        use crate::model::Activation;
        let Some(ctx) = narrow_binding(1 << 20) else {
            return;
        };
        let opts = DemoOptions {
            rows: Some(10),
            features: None,
            classes: None,
            noise: 0.0,
            seed: 0,
        };
        let data = crate::data::demo(Demo::Moons, &opts).unwrap();
        let err = |hidden: &[usize]| {
            let spec = ModelSpec::new(2, hidden, Activation::Relu).unwrap();
            check_limits(&ctx, &data, None, &spec)
                .map_err(|e| e.to_string())
                .unwrap_err()
        };
        for (hidden, want) in [
            (
                &[300_000][..],
                "the hidden layer 1 (300,000 units) for one row's activations needs a 1.1 MiB \
                 buffer",
            ),
            (
                &[100_000],
                "the hidden layer 1 (100,000 units) with 300,000 weights and biases needs a 1.1 \
                 MiB buffer",
            ),
            (
                &[8, 60_000],
                "the hidden layer 2 (60,000 units) with 540,000 weights and biases",
            ),
            (
                &[60_000, 4],
                "the model [2, 60000, 4, 1] with 420,009 parameters needs a 1.6 MiB buffer",
            ),
        ] {
            let e = err(hidden);
            assert!(e.contains(want), "{hidden:?}: {e}");
            assert!(e.contains("binds at most 1.0 MiB per buffer"), "{e}");
            assert!(!e.contains("rows"), "{hidden:?} blames the rows: {e}");
        }
        let fits = ModelSpec::new(2, &[16], Activation::Relu).unwrap();
        assert!(check_limits(&ctx, &data, Some(&data), &fits).is_ok());
    }

    /// K classes' records are checked before anything is allocated: 256 classes need a
    /// 512 KiB history entry, past a 256 KiB binding; 16 classes fit.
    #[test]
    fn many_classes_past_the_binding_limit_are_named() {
        use crate::data::{Demo, DemoOptions};
        use crate::model::{Activation, Head};
        let Some(ctx) = narrow_binding(256 << 10) else {
            return;
        };
        let opts = DemoOptions {
            rows: Some(300),
            classes: Some(16),
            ..Default::default()
        };
        let data = crate::data::demo(Demo::Blobs, &opts).unwrap();
        let spec = |k| ModelSpec::with_head(2, &[], Activation::Relu, Head::Softmax, k).unwrap();
        let e = check_limits(&ctx, &data, None, &spec(256)).unwrap_err();
        assert!(matches!(e, Error::TooLarge(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("256 classes") && e.contains("512.0 KiB"), "{e}");
        assert!(check_limits(&ctx, &data, None, &spec(16)).is_ok());
    }
}

//! Checks of the model's buffers against the adapter's limits, from the shapes alone: each
//! layer's weights and activations, the parameters, one block's partial gradient, the records
//! of K classes, and the layered kernels' loops against the driver's loop budget.

use super::device::GpuContext;
use super::kernels::*;
use super::plan::{STAT_WORDS, binding_bytes};
use crate::error::{Error, Result};
use crate::memory;
use crate::model::ModelSpec;

/// The model's buffers against one storage binding: each hidden layer's activations of one
/// row, each layer's weights, all parameters (one buffer), and with `gradient` one block's
/// partial gradient.
pub(super) fn check_model(ctx: &GpuContext, spec: &ModelSpec, gradient: bool) -> Result<()> {
    let limit = binding_bytes(ctx);
    let hint = if spec.is_logistic() {
        "fewer features"
    } else {
        "smaller hidden layers"
    };
    let check = |what: String, words: Option<u64>| -> Result<()> {
        match words.and_then(memory::f32_bytes) {
            Some(b) if b <= limit => Ok(()),
            bytes => Err(Error::TooLarge(format!(
                "{what} needs a {} buffer; the adapter {} binds at most {} per buffer; use {hint} \
                 or --backend cpu",
                memory::size_text(bytes),
                ctx.adapter.name,
                memory::fmt_bytes(limit)
            ))),
        }
    };
    let last = spec.layers.len() - 2;
    for (i, w) in spec.layers.windows(2).enumerate() {
        let (inputs, units) = (w[0], w[1]);
        let layer = if i == last {
            format!(
                "the output layer (on {} inputs)",
                memory::fmt_count(inputs as u64)
            )
        } else {
            format!(
                "the hidden layer {} ({} units)",
                i + 1,
                memory::fmt_count(units as u64)
            )
        };
        if i < last {
            check(
                format!("{layer} for one row's activations"),
                Some(units as u64),
            )?;
        }
        let weights = memory::mul(inputs, units).and_then(|x| x.checked_add(units as u64));
        check(
            format!(
                "{layer} with {} weights and biases",
                memory::count_text(weights)
            ),
            weights,
        )?;
    }
    let p = spec.parameter_count() as u64;
    check(
        format!(
            "the model {} with {} parameters",
            crate::model::layers_text(&spec.layers),
            memory::fmt_count(p)
        ),
        Some(p),
    )?;
    if !gradient {
        return Ok(());
    }
    check(
        format!(
            "one block's partial gradient ({} parameters and {STAT_WORDS} sums)",
            memory::fmt_count(p)
        ),
        p.checked_add(STAT_WORDS as u64),
    )
}

/// The buffers whose size K classes decide, against one storage binding: the evaluation's
/// record and one history entry (each 2·K² counts), and the stop state.
pub(super) fn check_records(ctx: &GpuContext, k: usize) -> Result<()> {
    let bytes = 4 * entry_words(k).max(std::mem::size_of::<State>() / 4 + state_ints(k));
    if bytes as u64 <= binding_bytes(ctx) {
        return Ok(());
    }
    Err(Error::TooLarge(format!(
        "the confusion counts of {k} classes (2 × {k} × {k}, with the stop rule's record) need \
         a {} buffer; the adapter {} binds at most {} per buffer; use fewer classes or \
         --backend cpu",
        memory::size_text(Some(bytes as u64)),
        ctx.adapter.name,
        memory::fmt_bytes(binding_bytes(ctx))
    )))
}

/// The layered kernels loop over the widest layer: a layer past the driver's loop budget
/// whatever the rows is named.
pub(super) fn check_layer_loops(ctx: &GpuContext, spec: &ModelSpec, budget: u64) -> Result<()> {
    // layered_edges with blocks no wider than the layer and no segment.
    let fits = |width: usize| (9 * width as u64).saturating_add(64) <= budget;
    let most = budget.saturating_sub(64) / 9;
    let too_long = |what: String| {
        Error::TooLarge(format!(
            "{what} needs longer shader loops than {} runs (llvmpipe stops every loop of an \
             invocation after 65,535 steps, silently): a layer of {} units or more never fits, \
             and somewhat narrower ones may not either; use smaller layers or --backend cpu",
            ctx.adapter.name,
            memory::fmt_count(most + 1)
        ))
    };
    if !fits(spec.layers[0]) {
        return Err(too_long(format!(
            "the input layer ({} features)",
            memory::fmt_count(spec.layers[0] as u64)
        )));
    }
    for (i, &units) in spec.layers[1..spec.layers.len() - 1].iter().enumerate() {
        if !fits(units) {
            return Err(too_long(format!(
                "the hidden layer {} ({} units)",
                i + 1,
                memory::fmt_count(units as u64)
            )));
        }
    }
    Ok(())
}

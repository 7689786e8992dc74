//! Forward-only inference on the CPU: the output layer's logits of a data set's rows, with
//! the fast path's forward pass and no gradient work, training session or labels.

use rayon::prelude::*;

use super::block::{Block, Net, transpose_weights};
use super::kernels::{GEMM_K, GEMM_ROWS};
use super::{BLOCK_ROWS, Simd, TILE_ROWS};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::memory;
use crate::model::{LayerLayout, ModelSpec};

/// The logits of the output layer for every row of `data` with weights `params` (laid out
/// as `spec.layout()`): [rows, out] row-major, out = the last layer's width (1 for a
/// sigmoid head, K for softmax). The rows run in the session's fixed blocks, in parallel,
/// through the same forward pass, so the logits are bit-identical to [`super::CpuSession`]'s
/// of the same weights. Only the memory it needs (the logits, transposed weights, per-block
/// tile scratch) is allocated, after checking that it fits.
pub fn forward_logits(spec: &ModelSpec, params: &[f32], data: &Dataset) -> Result<Vec<f32>> {
    if spec.parameter_count() != params.len() || spec.layers[0] != data.features {
        return Err(Error::Config(
            "the parameters do not match the model and data".into(),
        ));
    }
    if memory::mul(data.rows, data.features) != Some(data.x.len() as u64) {
        return Err(Error::Config(format!(
            "the data holds {} values, not {} rows × {} features",
            data.x.len(),
            data.rows,
            data.features
        )));
    }
    let layout = spec.layout();
    let out = layout[layout.len() - 1].outputs;
    let bytes = forward_bytes(data.rows, &layout, params.len());
    memory::check(bytes, |size| {
        format!(
            "the CPU forward pass needs {size} for {} rows and {} parameters",
            memory::fmt_count(data.rows as u64),
            memory::fmt_count(params.len() as u64)
        )
    })?;
    let mut wt = vec![0.0; params.len()];
    transpose_weights(&layout, params, &mut wt);
    let net = Net {
        layout: &layout,
        act: spec.activation,
        params,
        wt: &wt,
    };
    let mut logits = vec![0.0; data.rows * out]; // [rows, out]
    let mut blocks = Block::cover_forward(data.rows, &layout);
    let simd = Simd::detect();
    blocks
        .par_iter_mut()
        .zip(logits.par_chunks_mut(BLOCK_ROWS * out))
        .for_each(|(b, z)| b.run_forward(&net, &data.x, z, simd));
    Ok(logits)
}

/// Bytes [`forward_logits`] allocates, `None` past u64: the logits [n, out], the transposed
/// weights [p], and per block its tiles' outputs and the matrix product's pack.
pub(super) fn forward_bytes(n: usize, layout: &[LayerLayout], p: usize) -> Option<u64> {
    use memory::mul;
    let widths = memory::sum(layout.iter().map(|l| Some(l.outputs as u64)))?;
    let out = layout.last()?.outputs;
    let scratch = memory::sum([mul(TILE_ROWS, widths), mul(4, GEMM_K * GEMM_ROWS)]);
    let floats = memory::sum([
        mul(n, out),
        Some(p as u64),
        mul(n.div_ceil(BLOCK_ROWS), scratch?),
    ]);
    floats.and_then(memory::f32_bytes)
}

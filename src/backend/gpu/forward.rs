//! Forward-only inference: the output layer's logits of a set of rows from given weights,
//! computed by `dense_forward.wgsl` layer by layer (no gradient, loss or training session).

use super::device::GpuContext;
use super::kernels::{Dense, Kernel};
use super::limits::{check_layer_loops, check_model};
use super::plan::{binding_bytes, binding_words};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::memory;
use crate::model::ModelSpec;

/// The logits of `data`'s rows under `params` (laid out as [`ModelSpec::layout`]): [rows ×
/// out] in row order, out the last layer's width. Rows go in segments that fit one storage
/// binding (X and every layer's output of a segment in one buffer, reused); each segment's
/// logits are copied into one device buffer, read back once at the end. Sizes are checked
/// against the adapter's limits, and the driver's loop budget, before anything is allocated.
pub fn forward_logits(
    ctx: &GpuContext,
    spec: &ModelSpec,
    params: &[f32],
    data: &Dataset,
) -> Result<Vec<f32>> {
    if spec.parameter_count() != params.len() || spec.layers[0] != data.features {
        return Err(Error::Config(format!(
            "the weights ({} numbers) and data ({} features) do not match the model {}",
            params.len(),
            data.features,
            crate::model::layers_text(&spec.layers)
        )));
    }
    check_model(ctx, spec, false)?;
    if let Some(budget) = ctx.loop_edge_budget {
        check_layer_loops(ctx, spec, budget)?;
    }
    let layout = spec.layout();
    let out = layout.last().map_or(1, |l| l.outputs);
    if data.rows == 0 {
        return Ok(Vec::new());
    }
    let f = data.features;
    let row_words = f + layout.iter().map(|l| l.outputs).sum::<usize>();
    let seg_rows = (binding_words(ctx) / row_words).min(data.rows);
    if seg_rows == 0 {
        return Err(Error::TooLarge(format!(
            "one row's {} features and {} activations need a {} buffer; the adapter {} binds \
             at most {} per buffer; use a smaller model or --backend cpu",
            memory::fmt_count(f as u64),
            memory::fmt_count((row_words - f) as u64),
            memory::size_text(memory::f32_bytes(row_words as u64)),
            ctx.adapter.name,
            memory::fmt_bytes(binding_bytes(ctx))
        )));
    }
    let logit_bytes = memory::mul(data.rows, out).and_then(memory::f32_bytes);
    match logit_bytes {
        Some(b) if b <= ctx.limits.max_buffer_size => {}
        bytes => {
            return Err(Error::TooLarge(format!(
                "the logits of {} rows need a {} buffer; the adapter {} holds at most {} per \
                 buffer; predict fewer rows at once or use --backend cpu",
                memory::fmt_count(data.rows as u64),
                memory::size_text(bytes),
                ctx.adapter.name,
                memory::fmt_bytes(ctx.limits.max_buffer_size)
            )));
        }
    }
    let seg_words = memory::mul(seg_rows, row_words).and_then(memory::f32_bytes);
    memory::check(seg_words, |size| {
        format!("one segment of the GPU's rows needs {size} on the host")
    })?;
    let logit_bytes = logit_bytes.unwrap_or(0);
    // The largest segment's grids are the largest.
    for lay in &layout {
        ctx.grid(Dense::layer(seg_rows, lay, 0, 0, 0).1)?;
    }

    let dev = &ctx.device;
    let oom = dev.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = dev.push_error_scope(wgpu::ErrorFilter::Validation);
    let pipeline = ctx.pipeline(Kernel::DenseForward);
    let weights = ctx.storage("params", params);
    let acts = ctx.storage("rows", &vec![0.0f32; seg_rows * row_words]);
    let logits = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("logits"),
        size: logit_bytes,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let staging = ctx.readback("logits staging", logit_bytes);
    let last = layout.len() - 1;
    for r0 in (0..data.rows).step_by(seg_rows) {
        let len = seg_rows.min(data.rows - r0);
        // Each layer's output [len, out_l] after X, as the layered training kernels have it.
        let mut layers = Vec::with_capacity(layout.len());
        let (mut in_off, mut out_off) = (0, len * f);
        for (l, lay) in layout.iter().enumerate() {
            let act = if l == last { 0 } else { spec.activation.code() };
            let (dense, groups) = Dense::layer(len, lay, in_off, out_off, act);
            let cfg = ctx.uniform("dense_forward cfg", &dense);
            let group = ctx.bind_group(&pipeline, &[&weights, &acts, &cfg]);
            layers.push((group, ctx.grid(groups)?));
            in_off = out_off;
            out_off += len * lay.outputs;
        }
        ctx.queue.write_buffer(
            &acts,
            0,
            bytemuck::cast_slice(&data.x[r0 * f..(r0 + len) * f]),
        );
        let mut enc = dev.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            for (group, (x, y)) in &layers {
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(*x, *y, 1);
            }
        }
        // The logits: the last layer's output, at in_off now.
        let (from, to) = ((4 * in_off) as u64, (4 * r0 * out) as u64);
        enc.copy_buffer_to_buffer(&acts, from, &logits, to, (4 * len * out) as u64);
        ctx.queue.submit([enc.finish()]);
    }
    if let Some(e) = pollster::block_on(validation.pop()) {
        return Err(Error::Gpu(format!("computing the logits: {e}")));
    }
    if let Some(e) = pollster::block_on(oom.pop()) {
        return Err(Error::TooLarge(format!(
            "the GPU ran out of memory for the logits of {} rows × {} features on {}: {e}; use \
             fewer rows or --backend cpu",
            data.rows, data.features, ctx.adapter.name
        )));
    }
    let enc = dev.create_command_encoder(&Default::default());
    let bytes = ctx.read(enc, &logits, &staging, logit_bytes)?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}

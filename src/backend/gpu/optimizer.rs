//! The optimizer on the device: its constants, the table of per-update scalars the host
//! writes before each submission, the per-parameter flags (weight or bias), and the state
//! buffers beside the weights with their copies for the best weights.
//!
//! The state is updated in place by the update kernels (parameter p's state by the invocation
//! that updates p), so it always goes with the current weights; it is not ping-ponged with
//! them, because nothing reads the state of the previous weights. Its best copy is taken
//! wherever the best weights are copied: by `copy_params.wgsl` and `lr_loop.wgsl` inside a
//! chunk, by buffer copies outside one.

use super::device::GpuContext;
use super::kernels::{PARAM_DECAYS, PARAM_PRUNED};
use super::plan::binding_words;
use crate::backend::{MAX_CHUNK, SessionConfig};
use crate::model::LayerLayout;
use crate::optim::{Optim, StepScalars};

/// The most entries of the scalars table: entry j holds the scalars of the update before
/// evaluation j of a chunk (a chunk's pending update is entry 0, so is an update outside a
/// chunk), or with mini-batches of the j-th update of a submission. Fewer where one storage
/// binding holds fewer; chunks and mini-batch submissions are cut to the entries.
pub(super) const STEP_ENTRIES: usize = MAX_CHUNK as usize + 1;

/// Floats of a stand-in for a state buffer the optimizer does not have (bindings cannot be
/// empty).
const DUMMY: usize = 4;

pub(super) struct OptBuffers {
    pub optim: Optim,
    /// `OptConsts` (uniform).
    pub consts: wgpu::Buffer,
    /// `StepScalars` [STEP_ENTRIES] (storage).
    pub steps: wgpu::Buffer,
    /// u32 [P]: [`PARAM_DECAYS`] for weights, 0 for biases.
    pub flags: wgpu::Buffer,
    /// The state buffers m and v, f32 [P] each where the optimizer has them, else dummies.
    pub state: [wgpu::Buffer; 2],
    /// Their copies that go with the best weights.
    pub best: [wgpu::Buffer; 2],
    /// How many of `state` are real (0, 1 or 2).
    pub buffers: usize,
    /// Entries of `steps` (at most [`STEP_ENTRIES`]): the most iterations of one chunk.
    pub entries: usize,
    /// The optimizer's step count at the start (resumed).
    pub step0: u64,
    /// `flags` without a mask: which parameters decay.
    base_flags: Vec<u32>,
    /// `steps` as last written, so that unchanged entries are not written again.
    written: Vec<StepScalars>,
    scratch: Vec<StepScalars>,
}

/// Per parameter of `layout` (P in all): [`PARAM_DECAYS`] for a weight, 0 for a bias, and
/// [`PARAM_PRUNED`] where `mask` is false.
pub(super) fn param_flags(layout: &[LayerLayout], p: usize, mask: Option<&[bool]>) -> Vec<u32> {
    let mut flags = vec![0u32; p];
    for l in layout {
        flags[l.w_off..l.b_off].fill(PARAM_DECAYS);
    }
    if let Some(mask) = mask {
        for (f, _) in flags.iter_mut().zip(mask).filter(|(_, keep)| !**keep) {
            *f |= PARAM_PRUNED;
        }
    }
    flags
}

impl OptBuffers {
    /// The buffers for `cfg`'s optimizer over `p` parameters laid out as `layout`, its state
    /// (and the best's) starting from `cfg.resume` or zeros.
    pub fn new(ctx: &GpuContext, cfg: &SessionConfig, layout: &[LayerLayout], p: usize) -> Self {
        let entry = std::mem::size_of::<StepScalars>();
        let entries = STEP_ENTRIES.min(binding_words(ctx) * 4 / entry).max(1);
        let optim = cfg.optim();
        let init = cfg.initial_state();
        let buffers = init.buffers.len();
        let dummy = vec![0.0f32; DUMMY];
        let buf = |label: &str, i: usize| ctx.storage(label, init.buffers.get(i).unwrap_or(&dummy));
        let written = vec![StepScalars::default(); entries];
        OptBuffers {
            optim,
            consts: ctx.uniform("optimizer constants", &optim.optimizer.consts()),
            steps: ctx.storage_of("optimizer steps", &written),
            flags: ctx.storage_of(
                "parameter flags",
                &param_flags(layout, p, cfg.mask.as_deref()),
            ),
            base_flags: param_flags(layout, p, None),
            state: [buf("optimizer state m", 0), buf("optimizer state v", 1)],
            best: [
                buf("best optimizer state m", 0),
                buf("best optimizer state v", 1),
            ],
            buffers,
            entries,
            step0: init.step,
            written,
            scratch: Vec::with_capacity(entries),
        }
    }

    /// Writes entries `first..first + count` of the table: entry `first + i` gets the scalars
    /// of update `k0 + i` (0-based over the run, the resumed steps included). Only entries
    /// that changed are written.
    pub fn stage(&mut self, queue: &wgpu::Queue, first: usize, k0: u64, count: usize) {
        let count = count.min(self.entries.saturating_sub(first));
        self.scratch.clear();
        self.scratch
            .extend((0..count as u64).map(|i| self.optim.scalars(k0 + i)));
        let old = &self.written[first..first + count];
        let Some(lo) = (0..count).find(|&i| old[i] != self.scratch[i]) else {
            return;
        };
        let hi = (0..count)
            .rfind(|&i| old[i] != self.scratch[i])
            .unwrap_or(lo);
        let entry = std::mem::size_of::<StepScalars>();
        queue.write_buffer(
            &self.steps,
            ((first + lo) * entry) as u64,
            bytemuck::cast_slice(&self.scratch[lo..=hi]),
        );
        self.written[first + lo..=first + hi].copy_from_slice(&self.scratch[lo..=hi]);
    }

    /// Records the copy of the state to its best copy (`bytes`: P floats).
    /// A fresh state at step 0 (zeros, the best's too) under `mask`.
    pub fn restart(&mut self, queue: &wgpu::Queue, bytes: u64, mask: Option<&[bool]>) {
        let zeros = vec![0u8; bytes as usize];
        for b in 0..self.buffers {
            queue.write_buffer(&self.state[b], 0, &zeros);
            queue.write_buffer(&self.best[b], 0, &zeros);
        }
        self.step0 = 0;
        let mut flags = self.base_flags.clone();
        if let Some(mask) = mask {
            for (f, _) in flags.iter_mut().zip(mask).filter(|(_, keep)| !**keep) {
                *f |= PARAM_PRUNED;
            }
        }
        queue.write_buffer(&self.flags, 0, bytemuck::cast_slice(&flags));
    }

    pub fn copy_to_best(&self, enc: &mut wgpu::CommandEncoder, bytes: u64) {
        for b in 0..self.buffers {
            enc.copy_buffer_to_buffer(&self.state[b], 0, &self.best[b], 0, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_decay_and_biases_do_not() {
        // 2 → 3 → 1: W0 [3, 2] at 0, b0 [3] at 6, W1 [1, 3] at 9, b1 at 12.
        let layout = [
            LayerLayout {
                inputs: 2,
                outputs: 3,
                w_off: 0,
                b_off: 6,
            },
            LayerLayout {
                inputs: 3,
                outputs: 1,
                w_off: 9,
                b_off: 12,
            },
        ];
        let d = PARAM_DECAYS;
        assert_eq!(
            param_flags(&layout, 13, None),
            [d, d, d, d, d, d, 0, 0, 0, d, d, d, 0]
        );
    }
}

//! Mini-batches on the GPU: each update gathers its batch's rows on the device
//! (`gather_rows.wgsl`, from a row-index buffer the host uploads once per submission), runs
//! the batch set's forward and backward passes and the optimizer's step, and counts itself
//! (`advance_slot.wgsl`) so that the next update reads the next entries of the tables. The
//! updates between two checks go to the device in one submission, with no readback and no
//! allocation; X is uploaded once, when the session opens. In chunk mode the updates of
//! several checks and the checks' evaluations and stop rule go in one submission
//! (src/backend/gpu/chunk.rs records it).

use super::device::GpuContext;
use super::kernels::{Gather, Kernel, State, WORKGROUP};
use super::session::GpuSession;
use super::sets::{DeviceSet, Dispatch};
use crate::batches::Batching;
use crate::error::{Error, Result};

/// One batch size's dispatches (full batches, or the epoch's remainder).
pub(super) struct BatchSet {
    gather: wgpu::BindGroup,
    grid: (u32, u32),
    pub forward: Vec<Dispatch>,
    pub backward: Vec<Dispatch>,
}

pub(super) struct GpuMini {
    batching: Batching,
    /// Training rows N.
    n: usize,
    pub per_epoch: u64,
    pub full: BatchSet,
    /// Where N is not a multiple of B.
    pub rem: Option<BatchSet>,
    gather: wgpu::ComputePipeline,
    advance: wgpu::ComputePipeline,
    advance_group: wgpu::BindGroup,
    /// The update counter: word STATE_SLOT is the submission's update j (zeroed before it).
    counter: wgpu::Buffer,
    /// u32 [`index_cap`]: the row indices of the submission's batches, one after another.
    index: wgpu::Buffer,
    index_cap: usize,
    /// [u32; 2] [entries]: each update's (first index, rows).
    table: wgpu::Buffer,
    /// Updates one submission holds (the entries of this table and of the optimizer's).
    pub entries: usize,
    /// The updates asked for and not yet sent: whether each is the remainder.
    pub pending: Vec<bool>,
    staged_index: Vec<u32>,
    staged_table: Vec<[u32; 2]>,
    /// The epoch whose order `order` holds.
    epoch: Option<u64>,
    order: Vec<u32>,
    /// The weights of the last two evaluations: `evals[last]` the last one.
    pub evals: [wgpu::Buffer; 2],
    pub last: usize,
    /// copy_params.wgsl, which copies a chunk's evaluated weights, params[c], to evals[e]
    /// with `keep[c][e]` (and dummies for the optimizer state), sized by args entry
    /// `keep_arg`.
    pub copy: wgpu::ComputePipeline,
    pub keep: [[wgpu::BindGroup; 2]; 2],
    pub keep_arg: usize,
}

/// The buffers the batch sets' gather and count read and write.
pub(super) struct GatherBuffers<'a> {
    /// The training rows' activations (features first) and labels.
    pub train: &'a (wgpu::Buffer, wgpu::Buffer),
    /// The update counter the batch sets' updates read.
    pub counter: wgpu::Buffer,
    pub params: &'a [wgpu::Buffer; 2],
    /// The args entry of the evaluated weights' copy.
    pub keep_arg: usize,
}

/// Most row indices one submission holds beyond an epoch's (N): 16 MiB of them.
const INDEX_WORDS: usize = 1 << 22;

impl GpuMini {
    /// The kit over `full` (and `rem`), sets of B (and N mod B) rows built like the training
    /// set; each must be one segment, as must the training rows.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        batching: Batching,
        n: usize,
        features: usize,
        full: DeviceSet,
        rem: Option<DeviceSet>,
        bufs: GatherBuffers,
        entries: usize,
        params: &[f32],
    ) -> Result<Self> {
        let gather = ctx.pipeline(Kernel::GatherRows);
        let advance = ctx.pipeline(Kernel::AdvanceSlot);
        // Room for every update the tables hold, or an epoch's rows where that is less.
        let index_cap = entries
            .saturating_mul(batching.size)
            .min(INDEX_WORDS)
            .max(n)
            .max(1);
        let index = ctx.storage_of("batch row indices", &vec![0u32; index_cap]);
        let table = ctx.storage_of("batch table", &vec![[0u32; 2]; entries]);
        let cfg = ctx.uniform(
            "gather_rows cfg",
            &Gather {
                features: features as u32,
                ..Default::default()
            },
        );
        let make = |set: DeviceSet, rows: usize| -> Result<BatchSet> {
            let [(acts, labels)] = <[_; 1]>::try_from(set.segments).map_err(|_| one_segment())?;
            let (tx, ty) = bufs.train;
            let group = ctx.bind_group(
                &gather,
                &[tx, ty, &index, &table, &bufs.counter, &acts, &labels, &cfg],
            );
            Ok(BatchSet {
                gather: group,
                grid: ctx.grid((rows * features).div_ceil(WORKGROUP))?,
                forward: set.forward,
                backward: set.backward,
            })
        };
        let rem_rows = n % batching.size;
        let full = make(full, batching.size)?;
        let rem = rem.map(|s| make(s, rem_rows)).transpose()?;
        let advance_group = ctx.bind_group(&advance, &[&bufs.counter]);
        let evals = [
            ctx.storage("last evaluation's weights", params),
            ctx.storage("previous evaluation's weights", params),
        ];
        let copy = ctx.pipeline(Kernel::CopyParams);
        // Read and written dummies must differ: a buffer is bound either way in one group.
        let dummy = |what| ctx.storage(what, &[0.0; 4]);
        let (src, dst_m, dst_v) = (dummy("keep src"), dummy("keep m"), dummy("keep v"));
        let keep = [0, 1].map(|c| {
            [0, 1].map(|e| {
                let from = &bufs.params[c];
                ctx.bind_group(&copy, &[from, &evals[e], &src, &src, &dst_m, &dst_v])
            })
        });
        Ok(GpuMini {
            batching,
            n,
            per_epoch: batching.per_epoch(n),
            full,
            rem,
            gather,
            advance,
            advance_group,
            counter: bufs.counter,
            index,
            index_cap,
            table,
            entries,
            pending: Vec::new(),
            staged_index: Vec::with_capacity(n),
            staged_table: Vec::with_capacity(entries),
            epoch: None,
            order: Vec::new(),
            evals,
            last: 0,
            copy,
            keep,
            keep_arg: bufs.keep_arg,
        })
    }

    /// Back to the start with the weights `params`: nothing pending, no epoch ordered.
    pub fn restart(&mut self, queue: &wgpu::Queue, params: &[f32]) {
        self.clear();
        self.epoch = None;
        self.last = 0;
        for e in &self.evals {
            queue.write_buffer(e, 0, bytemuck::cast_slice(params));
        }
    }

    /// Whether update `k` (0-based over the run) can join the pending ones, or they must be
    /// sent first: the index buffer and the tables hold one submission's worth.
    pub fn has_room(&self, k: u64) -> bool {
        self.has_room_for(k..k + 1)
    }

    /// Whether updates `ks` can all join the pending ones.
    pub fn has_room_for(&self, ks: std::ops::Range<u64>) -> bool {
        let count = ks.end.saturating_sub(ks.start);
        if count > (self.entries - self.pending.len()) as u64 {
            return false;
        }
        let rows: usize = ks.map(|k| self.batching.batch(self.n, k).1.len()).sum();
        self.staged_index.len() + rows <= self.index_cap
    }

    /// Adds update `k`: its batch's rows in its epoch's order.
    pub fn push(&mut self, k: u64) {
        let (epoch, range) = self.batching.batch(self.n, k);
        if self.epoch != Some(epoch) {
            self.order = self.batching.order(self.n, epoch);
            self.epoch = Some(epoch);
        }
        let first = self.staged_index.len() as u32;
        self.staged_table.push([first, range.len() as u32]);
        self.pending.push(range.len() != self.batching.size);
        self.staged_index.extend_from_slice(&self.order[range]);
    }

    /// Writes the pending updates' indices and table for the next submission, and the
    /// update counter's 0.
    pub fn stage(&self, queue: &wgpu::Queue) {
        queue.write_buffer(&self.index, 0, bytemuck::cast_slice(&self.staged_index));
        queue.write_buffer(&self.table, 0, bytemuck::cast_slice(&self.staged_table));
        let at = std::mem::offset_of!(State, slot) as u64;
        queue.write_buffer(&self.counter, at, bytemuck::bytes_of(&0u32));
    }

    /// After the submission: nothing pending.
    pub fn clear(&mut self) {
        self.pending.clear();
        self.staged_index.clear();
        self.staged_table.clear();
    }

    /// The set update `j` of the pending ones runs on.
    pub fn set(&self, remainder: bool) -> &BatchSet {
        match (&self.rem, remainder) {
            (Some(r), true) => r,
            _ => &self.full,
        }
    }

    /// Records the gather of `set`'s rows.
    pub fn record_gather(&self, pass: &mut wgpu::ComputePass, set: &BatchSet) {
        pass.set_pipeline(&self.gather);
        pass.set_bind_group(0, &set.gather, &[]);
        pass.dispatch_workgroups(set.grid.0, set.grid.1, 1);
    }

    /// Records the count of one update.
    pub fn record_advance(&self, pass: &mut wgpu::ComputePass) {
        pass.set_pipeline(&self.advance);
        pass.set_bind_group(0, &self.advance_group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
}

impl GpuSession {
    /// A mini-batch update asked for: queued, sent with the next use of the weights (or now,
    /// where the queue is full).
    pub(super) fn push_update(&mut self) -> Result<()> {
        let k = self.opt.step0 + self.updates;
        if !self.mini.as_ref().is_some_and(|m| m.has_room(k)) {
            self.flush()?;
        }
        if let Some(m) = self.mini.as_mut() {
            m.push(k);
        }
        self.updates += 1;
        self.evaluated = false;
        Ok(())
    }

    /// Sends the pending mini-batch updates in one submission: per update the gather, the
    /// batch set's forward pass (with the weights params[c]), its backward pass and step
    /// (into params[1 − c]) and the count; entry j of the tables is the j-th update's.
    pub(super) fn flush(&mut self) -> Result<()> {
        let Some(mini) = self.mini.take() else {
            return Ok(());
        };
        if mini.pending.is_empty() {
            self.mini = Some(mini);
            return Ok(());
        }
        let q = &self.ctx.queue;
        let count = mini.pending.len();
        let k0 = self.opt.step0 + self.updates - count as u64;
        self.opt.stage(q, 0, k0, count);
        mini.stage(q);
        let mut enc = self.encoder();
        let mut c = self.cur;
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for &rem in &mini.pending {
                c = self.record_batch_update(&mut pass, &mini, rem, c);
            }
        }
        self.ctx.queue.submit([enc.finish()]);
        self.cur = c;
        let mut mini = mini;
        mini.clear();
        self.mini = Some(mini);
        Ok(())
    }

    /// Records one update on `mini`'s full or remainder (`rem`) batch set, from the weights in
    /// params[c] into params[1 − c]: the gather, the forward pass, the backward pass and
    /// step, the count. Returns 1 − c.
    pub(super) fn record_batch_update(
        &self,
        pass: &mut wgpu::ComputePass,
        mini: &GpuMini,
        rem: bool,
        c: usize,
    ) -> usize {
        let set = mini.set(rem);
        mini.record_gather(pass, set);
        for d in &set.forward {
            self.record(pass, d, c);
        }
        for d in &set.backward {
            self.record(pass, d, 1 - c);
        }
        mini.record_advance(pass);
        1 - c
    }

    /// Records the copy of the evaluated weights, params[cur], as the last evaluation's (the
    /// one before stays for `previous_params`).
    pub(super) fn keep_evaluated(&mut self, enc: &mut wgpu::CommandEncoder) {
        if let Some(m) = self.mini.as_mut() {
            m.last = 1 - m.last;
            enc.copy_buffer_to_buffer(
                &self.params[self.cur],
                0,
                &m.evals[m.last],
                0,
                self.param_bytes,
            );
        }
    }
}

fn one_segment() -> Error {
    Error::Unsupported(
        "mini-batches on the GPU need the training rows and a batch in one storage binding; \
         they run on the CPU (--backend cpu)"
            .into(),
    )
}

/// [`one_segment`]'s error where `segments` is not one.
pub(super) fn check_one_segment(segments: usize) -> Result<()> {
    if segments == 1 {
        Ok(())
    } else {
        Err(one_segment())
    }
}

//! The chunk protocol with the device stop rule: its pipelines and buffers, a chunk of
//! iterations judged on the device (`run_chunk`), and the harness that runs the rule alone.

use std::mem::size_of;

use bytemuck::Zeroable;
use wgpu::util::DeviceExt;

use super::device::GpuContext;
use super::kernels::*;
use super::minibatch::GpuMini;
use super::optimizer::OptBuffers;
use super::plan::binding_bytes;
use super::session::GpuSession;
use crate::backend::{ChunkEntry, ChunkRule, ChunkStart, Evaluation, MAX_CHUNK};
use crate::error::{Error, Result};

/// A chunk of `lr_loop.wgsl`: one dispatch whose uniform is written per chunk.
pub(super) struct LoopChunk {
    /// Variant s reads the weights from params[s] (src) and alternates with params[1 − s].
    pub groups: [wgpu::BindGroup; 2],
    /// An evaluation of params[s] that keeps z, which training skips, for `logits()`.
    pub logits: [wgpu::BindGroup; 2],
    pub cfg: wgpu::Buffer,
    /// The uniform as a chunk without a pending update.
    pub chunk_cfg: Loop,
    /// The most iterations per dispatch (bounded where the driver bounds loops).
    pub max_k: u32,
}

/// What `run_chunk` needs besides the training dispatches.
pub(super) struct ChunkKit {
    stop: wgpu::ComputePipeline,
    stop_group: wgpu::BindGroup,
    copy: wgpu::ComputePipeline,
    /// Variant k copies params[k] to the best weights, and the optimizer state to its best
    /// copy.
    copy_groups: [wgpu::BindGroup; 2],
    pub rule: wgpu::Buffer,
    /// [`State`], then [`state_ints`] words.
    pub state: wgpu::Buffer,
    /// Entries of [`entry_words`] words.
    pub history: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// Most iterations one chunk's history holds.
    capacity: u32,
    /// K.
    classes: usize,
    /// The device state as last read back: its head and integers.
    last_state: (State, Vec<u32>),
}

/// The most bytes of history one chunk keeps (and reads back): with many classes a record is
/// large (K = 256: 512 KiB), and chunks are cut shorter rather than the buffer made larger.
pub(super) const HISTORY_BYTES: usize = 4 << 20;

/// Entries one chunk's history holds for K classes on `ctx`: [`MAX_CHUNK`], or fewer where
/// [`HISTORY_BYTES`] or one storage binding holds fewer (at least one).
pub(super) fn history_capacity(ctx: &GpuContext, k: usize) -> usize {
    let entry = 4 * entry_words(k);
    (MAX_CHUNK as usize)
        .min(HISTORY_BYTES / entry)
        .min(binding_bytes(ctx) as usize / entry)
        .max(1)
}

/// The stop state's initial words: a zero [`State`] and integers.
fn state_words(s: &State, ints: &[u32]) -> Vec<u32> {
    let mut w = bytemuck::cast_slice::<State, u32>(std::slice::from_ref(s)).to_vec();
    w.extend_from_slice(ints);
    w
}

/// The device stop rule's state for K classes (made before the session's dispatches: the
/// update kernels read which update of a chunk they run from it).
pub(super) fn stop_state(ctx: &GpuContext, classes: usize) -> wgpu::Buffer {
    let ints = vec![0u32; state_ints(classes)];
    ctx.storage_of("stop state", &state_words(&State::zeroed(), &ints))
}

/// The device stop rule's pipelines and buffers, over the session's result, weights (and the
/// optimizer state that goes with them), dispatch sizes and stop state ([`stop_state`]).
pub(super) fn chunk_kit(
    ctx: &GpuContext,
    result: &wgpu::Buffer,
    (params, best, opt): (&[wgpu::Buffer; 2], &wgpu::Buffer, &OptBuffers),
    args: &wgpu::Buffer,
    classes: usize,
    state: wgpu::Buffer,
) -> Result<ChunkKit> {
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let stop = ctx.pipeline(Kernel::StopRule);
    let copy = ctx.pipeline(Kernel::CopyParams);
    let rule = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("stop rule"),
        size: size_of::<Rule>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let ints = vec![0u32; state_ints(classes)];
    let capacity = history_capacity(ctx, classes);
    let history_bytes = (4 * entry_words(classes) * capacity) as u64;
    let history = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("history"),
        size: history_bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let state_bytes = (size_of::<State>() + 4 * ints.len()) as u64;
    let staging = ctx.readback("chunk staging", state_bytes + history_bytes);
    let stop_group = ctx.bind_group(&stop, &[result, &state, &history, args, &rule]);
    let ([m, v], [bm, bv]) = (&opt.state, &opt.best);
    let copy_groups = [0, 1].map(|k| ctx.bind_group(&copy, &[&params[k], best, m, v, bm, bv]));
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(Error::Gpu(format!("setting up the device stop rule: {e}")));
    }
    Ok(ChunkKit {
        stop,
        stop_group,
        copy,
        copy_groups,
        rule,
        state,
        history,
        staging,
        capacity: capacity as u32,
        classes,
        last_state: (State::zeroed(), ints),
    })
}

impl ChunkKit {
    /// The state of a fresh session (the device's words are written with each chunk). The
    /// slot stays as the device holds it, so that `clear_slot` still zeroes it before a lone
    /// update.
    pub(super) fn restart(&mut self) {
        let slot = self.last_state.0.slot;
        self.last_state = (State::zeroed(), vec![0u32; state_ints(self.classes)]);
        self.last_state.0.slot = slot;
    }

    /// Sets the device state's slot to 0 where the last chunk left it otherwise (the slot is
    /// the entry of the optimizer's scalars an update reads).
    pub(super) fn clear_slot(&mut self, queue: &wgpu::Queue) {
        let slot = &mut self.last_state.0.slot;
        if *slot != 0 {
            let at = std::mem::offset_of!(State, slot) as u64;
            queue.write_buffer(&self.state, at, bytemuck::bytes_of(&0u32));
            *slot = 0;
        }
    }
}

/// A chunk's readback: the stop state (head and integers) and the history entries (each its
/// head and its record's words).
type Readback = ((State, Vec<u32>), Vec<(EntryHead, Vec<u32>)>);

/// The state and the first `n` history entries from a chunk's readback for K classes.
fn decode_chunk(bytes: &[u8], k: usize, n: usize) -> Readback {
    let words: Vec<u32> = bytemuck::pod_collect_to_vec(bytes);
    let head = size_of::<State>() / 4;
    let (state, rest) = words.split_at(head + state_ints(k));
    let st: State = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&state[..head]));
    let entries = rest
        .chunks_exact(entry_words(k))
        .take(n)
        .map(|e| {
            let h: EntryHead = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&e[..HEAD_WORDS]));
            (h, e[HEAD_WORDS..].to_vec())
        })
        .collect();
    ((st, state[head..].to_vec()), entries)
}

impl GpuSession {
    /// Workgroups of the best-weights copy (copy_params.wgsl).
    fn copy_groups(&self) -> u64 {
        (self.param_bytes / 4).div_ceil(WORKGROUP as u64)
    }

    /// The most iterations one chunk runs under `r`: the history's capacity
    /// ([`history_capacity`]: at most [`HISTORY_BYTES`] of K-class entries), the optimizer's
    /// table of scalars and, in one workgroup, the driver's loop budget; `None` where the rule's bounds or the best-weights
    /// copy do not fit the device's words and grids.
    pub(super) fn chunk_capacity(&self, r: &ChunkRule) -> Option<u32> {
        let fits = r.rule.max_iter < u64::from(u32::MAX)
            && r.rule.eval_every <= u64::from(u32::MAX)
            && self.copy_groups()
                <= u64::from(self.ctx.limits.max_compute_workgroups_per_dimension);
        let max_k = self.looped.as_ref().map_or(u32::MAX, |l| l.max_k);
        let steps = self.opt.entries as u32;
        fits.then(|| self.chunks.capacity.min(max_k).min(steps))
    }

    /// [`crate::backend::Session::run_chunk`].
    pub(super) fn chunk(
        &mut self,
        r: &ChunkRule,
        start: &ChunkStart,
        k: u32,
    ) -> Result<Vec<ChunkEntry>> {
        let Some(capacity) = self.chunk_capacity(r) else {
            return Err(Error::Config(
                "this run cannot be chunked; use --sync every".into(),
            ));
        };
        let k = k.clamp(1, capacity);
        let n_args = self.live_args.len() - 1;
        let copy_groups = if r.restore_best {
            self.copy_groups() as u32
        } else {
            0
        };
        let k_classes = self.classes;
        // With mini-batches the device judges checks (StopRule::in_checks).
        let mini = self.mini.is_some();
        let in_checks = mini.then(|| ChunkRule {
            rule: r.rule.in_checks(),
            ..r.clone()
        });
        let rule = Rule::new(
            in_checks.as_ref().unwrap_or(r),
            k_classes,
            self.has_val,
            n_args as u32,
            copy_groups,
        );
        let t_device = if mini {
            r.rule.check_number(start.t)
        } else {
            start.t
        };
        self.flush()?;
        let kit = &self.chunks;
        let (mut st, mut ints) = kit.last_state.clone();
        if start.adopt_candidate {
            st.best = st.cand;
            st.best_a = st.cand_a;
            st.best_b = st.cand_b;
            ints.copy_within(2 * k_classes.., 0);
        }
        st.t = t_device as u32;
        st.slot = 0;
        st.paused = 0;
        st.has_best = start.has_best as u32;
        st.wait = start.wait.min(u64::from(u32::MAX)) as u32;
        let q = &self.ctx.queue;
        q.write_buffer(&kit.rule, 0, bytemuck::bytes_of(&rule));
        q.write_buffer(
            &kit.state,
            0,
            bytemuck::cast_slice(&state_words(&st, &ints)),
        );
        q.write_buffer(&self.args, 0, bytemuck::cast_slice(&self.live_args));
        let t0 = self.updates;
        // Per entry i of the chunk: its weights' buffer and iteration.
        let (enc, at): (_, Vec<(usize, u64)>) = if mini {
            self.record_mini_chunk(r, start.t, k, n_args)?
        } else {
            // Entry j of the optimizer's table: the update before the chunk's evaluation j,
            // this session's update T + j − 1 (T: the updates asked for so far, a pending one
            // included).
            let k0 = self.opt.step0 + t0;
            if t0 > 0 {
                self.opt.stage(q, 0, k0 - 1, k as usize);
            } else {
                self.opt.stage(q, 1, k0, k as usize - 1);
            }
            // Iteration i of the chunk has its weights in params[base ^ ((i + shift) & 1)].
            let (enc, base, shift) = if let Some(lc) = &self.looped {
                // lr_loop.wgsl applies a pending update itself, before the first evaluation.
                let shift = usize::from(self.pending);
                let base = self.cur ^ shift;
                let cfg = Loop {
                    iters: k,
                    update_first: shift as u32,
                    ..lc.chunk_cfg
                };
                q.write_buffer(&lc.cfg, 0, bytemuck::bytes_of(&cfg));
                self.pending = false;
                let mut enc = self.encoder();
                if let Some(lc) = &self.looped {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&self.pipelines[Kernel::LrLoop as usize]);
                    pass.set_bind_group(0, &lc.groups[base], &[]);
                    pass.dispatch_workgroups(1, 1, 1);
                }
                (enc, base, shift)
            } else {
                (self.record_chunk(r, k, n_args), self.cur, 0)
            };
            // Entry i is iteration T + i.
            let at = (0..k as usize)
                .map(|i| (base ^ ((i + shift) & 1), t0 + i as u64))
                .collect();
            (enc, at)
        };
        let k = at.len();
        // The chunk may zero dispatch sizes, whatever happens below.
        self.args_stale = true;
        let kit = &self.chunks;
        let state_bytes = (size_of::<State>() + 4 * state_ints(kit.classes)) as u64;
        let history_bytes = (4 * entry_words(kit.classes) * k) as u64;
        let bytes = self.ctx.read_parts(
            enc,
            &[(&kit.state, state_bytes), (&kit.history, history_bytes)],
            &kit.staging,
        )?;
        let (state, history) = decode_chunk(&bytes, kit.classes, k);
        let ran = state.0.slot as usize;
        if ran == 0 || ran > k {
            return Err(Error::Gpu(format!(
                "the device stop rule ran {ran} of {k} iterations"
            )));
        }
        let entries = history
            .iter()
            .take(ran)
            .map(|(e, record)| ChunkEntry {
                t: if mini {
                    r.rule.check_iteration(u64::from(e.t))
                } else {
                    u64::from(e.t)
                },
                eval: self.decode(record),
                checked: e.checked(),
                improved: e.improved(),
                paused: e.paused(),
            })
            .collect();
        self.chunks.last_state = state;
        let (cur, t_last) = at[ran - 1];
        if let Some(m) = self.mini.as_mut() {
            // Entry i's copy went to evals[(last + 1 + i) & 1].
            m.last = (m.last + ran) & 1;
            m.clear();
        }
        self.updates = t_last;
        self.cur = cur;
        self.pending = false;
        self.evaluated = true;
        Ok(entries)
    }

    /// The blocked and layered paths' chunk of `k` iterations: per iteration the update (from
    /// the second on), the evaluation, the stop rule and the indirect best-weights copy;
    /// iteration i has its weights in params[cur ^ (i & 1)].
    fn record_chunk(&mut self, r: &ChunkRule, k: u32, n_args: usize) -> wgpu::CommandEncoder {
        let mut enc = self.encoder();
        let cur0 = self.cur;
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for i in 0..k as usize {
                let c = cur0 ^ (i & 1);
                if i > 0 {
                    for d in &self.backward {
                        self.record(&mut pass, d, c);
                    }
                }
                self.record_judged(&mut pass, r, c, n_args, None);
            }
        }
        enc
    }

    /// Records the evaluation of params[c] on every set, with mini-batches (`keep`) its copy
    /// to evals[e], the stop rule and (with restore-best) the indirect best-weights copy.
    fn record_judged(
        &self,
        pass: &mut wgpu::ComputePass,
        r: &ChunkRule,
        c: usize,
        n_args: usize,
        keep: Option<(&GpuMini, usize)>,
    ) {
        let kit = &self.chunks;
        for d in &self.forward {
            self.record(pass, d, c);
        }
        if let Some((m, e)) = keep {
            // For `previous_params`; before the rule judges these weights, so that a pause
            // here keeps it.
            pass.set_pipeline(&m.copy);
            pass.set_bind_group(0, &m.keep[c][e], &[]);
            pass.dispatch_workgroups_indirect(&self.args, args_offset(m.keep_arg));
        }
        pass.set_pipeline(&kit.stop);
        pass.set_bind_group(0, &kit.stop_group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
        if r.restore_best {
            pass.set_pipeline(&kit.copy);
            pass.set_bind_group(0, &kit.copy_groups[c], &[]);
            pass.dispatch_workgroups_indirect(&self.args, args_offset(n_args));
        }
    }

    /// A mini-batch chunk from the check at iteration `t0` (the current weights, evaluated
    /// first): per further check of the `k` asked for, its updates (each a gather, the batch
    /// set's passes and step, the count; no-ops after a pause, as the evaluations are), its
    /// evaluation and the stop rule. It holds as many checks as the tables and the index
    /// buffer hold updates for (at least the first). Returns the encoder and, per entry, its
    /// weights' buffer and iteration.
    fn record_mini_chunk(
        &mut self,
        r: &ChunkRule,
        t0: u64,
        k: u32,
        n_args: usize,
    ) -> Result<(wgpu::CommandEncoder, Vec<(usize, u64)>)> {
        let mut mini = self
            .mini
            .take()
            .ok_or_else(|| Error::Config("a mini-batch chunk without mini-batches".into()))?;
        let step0 = self.opt.step0;
        let c0 = r.rule.check_number(t0);
        let last = r.rule.check_number(r.rule.max_iter);
        let mut ts = vec![t0];
        while ts.len() < k as usize && c0 + (ts.len() as u64) <= last {
            let from = ts[ts.len() - 1];
            let next = r.rule.check_iteration(c0 + ts.len() as u64);
            if !mini.has_room_for(step0 + from..step0 + next) {
                break;
            }
            for u in from..next {
                mini.push(step0 + u);
            }
            ts.push(next);
        }
        let q = &self.ctx.queue;
        self.opt.stage(q, 0, step0 + t0, mini.pending.len());
        mini.stage(q);
        let last0 = mini.last;
        let mut enc = self.encoder();
        let mut at = Vec::with_capacity(ts.len());
        let mut c = self.cur;
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            let mut update = 0;
            for (i, &t) in ts.iter().enumerate() {
                if i > 0 {
                    for _ in ts[i - 1]..t {
                        c = self.record_batch_update(&mut pass, &mini, mini.pending[update], c);
                        update += 1;
                    }
                }
                // Entry i's copy goes to evals[(last + 1 + i) & 1].
                let e = (last0 + 1 + i) & 1;
                self.record_judged(&mut pass, r, c, n_args, Some((&mini, e)));
                at.push((c, t));
            }
        }
        self.mini = Some(mini);
        Ok((enc, at))
    }
}

/// The byte offset of indirect dispatch `i`'s sizes in the session's `args`.
pub(super) fn args_offset(i: usize) -> u64 {
    (size_of::<DispatchArgs>() * i) as u64
}

/// Runs `stop_rule.wgsl` alone over a sequence of evaluations, as one chunk from t = 0 with a
/// fresh state, and returns the entries up to where it paused: the harness that holds the
/// device rule to the host engine (src/stop.rs) on the same metric sequences.
pub fn device_rule_trace(
    ctx: &GpuContext,
    r: &ChunkRule,
    has_val: bool,
    seq: &[Evaluation],
) -> Result<Vec<ChunkEntry>> {
    let n = seq.len().clamp(1, MAX_CHUNK as usize);
    let k = seq.first().map_or(2, |e| e.train.k());
    if let Some(e) = seq
        .iter()
        .find(|e| e.train.k() != k || e.val.as_ref().is_some_and(|v| v.k() != k) || k > MAX_CLASSES)
    {
        return Err(Error::Config(format!(
            "the sequence mixes or exceeds class counts: {} and {k} (at most {MAX_CLASSES})",
            e.train.k()
        )));
    }
    let words = record_words(k);
    let mut evals = Vec::with_capacity(n * words);
    for i in 0..n {
        let none = Evaluation {
            train: crate::metrics::Counts::new(k),
            val: None,
        };
        evals.extend(encode_record(seq.get(i).unwrap_or(&none), k));
    }
    let dev = &ctx.device;
    let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
    let results = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("sequence"),
        contents: bytemuck::cast_slice(&evals),
        usage: wgpu::BufferUsages::COPY_SRC,
    });
    let result = ctx.storage_of("result", &vec![0u32; words]);
    let ints = vec![0u32; state_ints(k)];
    let state = ctx.storage_of("stop state", &state_words(&State::zeroed(), &ints));
    let history = ctx.storage_of("history", &vec![0u32; n * entry_words(k)]);
    let args = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("args"),
        contents: bytemuck::bytes_of(&DispatchArgs { x: 0, y: 1, z: 1 }),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let rule = ctx.uniform("stop rule", &Rule::new(r, k, has_val, 0, 1));
    let stop = ctx.pipeline(Kernel::StopRule);
    let group = ctx.bind_group(&stop, &[&result, &state, &history, &args, &rule]);
    let mut enc = dev.create_command_encoder(&Default::default());
    let step_bytes = 4 * words as u64;
    for i in 0..n as u64 {
        enc.copy_buffer_to_buffer(&results, i * step_bytes, &result, 0, step_bytes);
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&stop);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    let state_bytes = (size_of::<State>() + 4 * ints.len()) as u64;
    let history_bytes = (4 * entry_words(k) * n) as u64;
    let staging = ctx.readback("trace staging", state_bytes + history_bytes);
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(Error::Gpu(format!("setting up the stop rule trace: {e}")));
    }
    let bytes = ctx.read_parts(
        enc,
        &[(&state, state_bytes), (&history, history_bytes)],
        &staging,
    )?;
    let (state, history) = decode_chunk(&bytes, k, n);
    Ok(history
        .iter()
        .take(state.0.slot as usize)
        .zip(seq)
        .map(|((e, record), ev)| {
            debug_assert_eq!(
                &decode_record(record, has_val).train.confusion,
                &ev.train.confusion
            );
            ChunkEntry {
                t: u64::from(e.t),
                eval: ev.clone(),
                checked: e.checked(),
                improved: e.improved(),
                paused: e.paused(),
            }
        })
        .collect())
}

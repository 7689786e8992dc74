//! The training session: every buffer, pipeline and bind group made once when it opens, and
//! the per-iteration protocol (evaluate, a lazily recorded update, the weights' ping-pong).

use std::mem::size_of;

use wgpu::util::DeviceExt;

use super::chunk::args_offset;
use super::chunk::{ChunkKit, LoopChunk, chunk_kit, stop_state};
use super::device::GpuContext;
use super::kernels::*;
use super::minibatch::{GatherBuffers, GpuMini, check_one_segment};
use super::optimizer::OptBuffers;
use super::plan::{KernelPath, Plan, kernel_path, loop_edges, pad_rows, plan};
use super::sets::{Dispatch, Shared};
use crate::backend::{
    AdapterDesc, ChunkEntry, ChunkRule, ChunkStart, Evaluation, MAX_CHUNK, Session, SessionConfig,
};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::memory;
use crate::metrics::Counts;
use crate::model::ModelSpec;

pub struct GpuSession {
    pub(super) ctx: GpuContext,
    /// Parts of the training rows in `partials`.
    pub(super) train_parts: usize,
    /// The training rows' logits for `logits()`, per segment: buffer, byte offset, words
    /// (rows × outputs, row-major).
    pub(super) train_logits: Vec<(wgpu::Buffer, u64, usize)>,
    pub(super) pipelines: Vec<wgpu::ComputePipeline>,
    /// The training rows' evaluation (per segment: lr_pass, or each layer's forward and the
    /// loss; then reduce_stats), then the validation rows' (if any).
    pub(super) forward: Vec<Dispatch>,
    /// The update: per segment of an MLP each layer's gradient (last layer first) and
    /// backprop; then reduce_update.
    pub(super) backward: Vec<Dispatch>,
    /// Ping-pong weights: `params[cur]` holds the current weights, the other the previous.
    pub(super) params: [wgpu::Buffer; 2],
    pub(super) cur: usize,
    /// The weights kept by `save_best`.
    pub(super) best: wgpu::Buffer,
    /// The last evaluation's record ([`RecordHead`], then each set's K × K counts).
    pub(super) result: wgpu::Buffer,
    /// Each set's confusion counts while an evaluation runs (zeroed by reduce_stats).
    pub(super) tally: wgpu::Buffer,
    /// K (2 for a sigmoid head).
    pub(super) classes: usize,
    pub(super) result_staging: wgpu::Buffer,
    pub(super) params_staging: wgpu::Buffer,
    pub(super) param_bytes: u64,
    pub(super) has_val: bool,
    /// An update was requested and is recorded before the next use of the weights.
    pub(super) pending: bool,
    /// `save_best` was asked for the weights in params[k] (and the optimizer state that goes
    /// with them); copied with the next submission, before the pending update where `save_best`
    /// came before `update` (true), else after it.
    pub(super) pending_best: Option<(usize, bool)>,
    pub(super) evaluated: bool,
    /// Indirect dispatch sizes of every dispatch, then of the best-weights copy.
    pub(super) args: wgpu::Buffer,
    /// Their values when live.
    pub(super) live_args: Vec<DispatchArgs>,
    /// A chunk may have zeroed some of `args` since they were last written live.
    pub(super) args_stale: bool,
    /// The device stop rule's pipelines and buffers.
    pub(super) chunks: ChunkKit,
    /// With the one-workgroup kernel (`lr_loop.wgsl`): its chunk dispatch.
    pub(super) looped: Option<LoopChunk>,
    pub(super) path: KernelPath,
    /// The optimizer's buffers on the device.
    pub(super) opt: OptBuffers,
    /// Updates asked for so far (a pending one included): the weights' iteration.
    pub(super) updates: u64,
    /// With mini-batches: the batch sets, their tables and the pending updates.
    pub(super) mini: Option<GpuMini>,
}

impl GpuSession {
    pub fn new(
        ctx: GpuContext,
        data: &Dataset,
        val: Option<&Dataset>,
        spec: &ModelSpec,
        cfg: &SessionConfig,
    ) -> Result<Self> {
        crate::backend::check_shapes(data, val, spec, cfg)?;
        let batching = cfg.mini_batches(data.rows);
        let mut ctx = ctx;
        if batching.is_some() {
            // lr_loop.wgsl runs whole iterations in one workgroup, full batch only: small
            // logistic regressions take the blocked pass instead.
            match ctx.force_path {
                Some(KernelPath::OneWorkgroup) => {
                    return Err(Error::Unsupported(
                        "the one-workgroup kernel runs full batches only; mini-batches take \
                         the other paths"
                            .into(),
                    ));
                }
                None if kernel_path(&ctx, data, val, spec)? == KernelPath::OneWorkgroup => {
                    ctx.force_path = Some(KernelPath::Blocked);
                }
                _ => {}
            }
        }
        let Plan {
            layout,
            path,
            train_cut,
            val_cut,
            train_parts,
            p,
            stride,
            parts,
        } = plan(&ctx, data, val, spec)?;

        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);

        let params = [
            ctx.storage("params0", &cfg.params),
            ctx.storage("params1", &cfg.params),
        ];
        let best = ctx.storage("best", &cfg.params);
        let opt = OptBuffers::new(&ctx, cfg, &layout, p);
        let partials = ctx.storage("partials", &vec![0.0f32; parts * stride]);
        let classes = spec.classes();
        let stop = stop_state(&ctx, classes);
        let none = Evaluation {
            train: Counts::new(classes),
            val: None,
        };
        let result = ctx.storage_of("result", &encode_record(&none, classes));
        let result_bytes = 4 * record_words(classes) as u64;
        let tally = ctx.storage_of("tally", &vec![0u32; 2 * classes * classes]);
        let param_bytes = 4 * p as u64;
        let result_staging = ctx.readback("result staging", result_bytes);
        let params_staging = ctx.readback("params staging", param_bytes);
        let looped = path == KernelPath::OneWorkgroup;
        let wg = ctx.loop_workgroup;
        // The kernels that compute the loss are specialised to the logits, lr_loop.wgsl also
        // to the data's features; the others are generic.
        let outputs = spec.outputs();
        let mut pipelines: Vec<wgpu::ComputePipeline> = Kernel::ITERATION
            .iter()
            .map(|&k| match k {
                Kernel::LossMetrics | Kernel::LrPass | Kernel::MlpPass => {
                    ctx.pipeline_with(k, &[("K", outputs as f64)])
                }
                _ => ctx.pipeline(k),
            })
            .collect();
        if looped {
            let constants = [
                ("F", data.features as f64),
                ("WG", f64::from(wg)),
                ("K", outputs as f64),
            ];
            pipelines.push(ctx.pipeline_with(Kernel::LrLoop, &constants));
        }
        let shared = Shared {
            path,
            ctx: &ctx,
            pipelines: &pipelines,
            params: &params,
            partials: &partials,
            result: &result,
            tally: &tally,
            spec,
            layout: &layout,
            stride,
            opt: &opt,
            stop: &stop,
        };
        let (mut forward, mut backward, train_logits, loop_data, train_rows) = if looped {
            // X in rows padded to whole vec4s; z in a buffer of its own.
            let n = data.rows;
            let acts = ctx.storage("training rows", &pad_rows(data));
            let z = ctx.storage("logits", &vec![0.0f32; n * outputs]);
            let (vx, vy) = match val {
                Some(v) if v.rows > 0 => (pad_rows(v), v.y.clone()),
                _ => (vec![0.0; 4], vec![0.0]),
            };
            let buffers = [
                acts,
                ctx.storage("labels", &data.y),
                ctx.storage("validation rows", &vx),
                ctx.storage("validation labels", &vy),
                z.clone(),
            ];
            let logits = vec![(z, 0, n * outputs)];
            (Vec::new(), Vec::new(), logits, Some(buffers), Vec::new())
        } else {
            let train = shared.set("training rows", data, train_cut, 0, 0, true)?;
            let mut forward = train.forward;
            if let (Some(v), Some(c)) = (val, val_cut) {
                let set = shared.set("validation rows", v, c, train_parts, 1, false)?;
                forward.extend(set.forward);
            }
            (forward, train.backward, train.logits, None, train.segments)
        };
        // Mini-batches: a set of B rows (and one of the remainder), filled by gather_rows.wgsl.
        // Their updates count themselves in a word of their own (advance_slot.wgsl), apart
        // from the stop rule's slot, which counts a chunk's checks.
        let counter = ctx.storage_of("update counter", &[0u32; size_of::<State>() / 4]);
        let batch_shared = Shared {
            stop: &counter,
            ..shared
        };
        let mut batch_sets = match batching {
            None => None,
            Some(b) => {
                check_one_segment(train_rows.len())?;
                let zeros = |rows: usize| Dataset {
                    x: vec![0.0; rows * data.features],
                    y: vec![0.0; rows],
                    rows,
                    features: data.features,
                    feature_names: Vec::new(),
                    label: data.label.clone(),
                    source: String::new(),
                };
                let set = |what, rows| batch_shared.set(what, &zeros(rows), train_cut, 0, 0, true);
                let full = set("a mini-batch's rows", b.size)?;
                check_one_segment(full.segments.len())?;
                let rem = data.rows % b.size;
                let rem = (rem > 0)
                    .then(|| set("the remainder batch's rows", rem))
                    .transpose()?;
                Some((b, full, rem))
            }
        };

        // Every dispatch is indirect, so that a stop on the device can turn the rest of a
        // chunk into no-ops; the last entry is the best-weights copy.
        let mut live_args = Vec::new();
        let mut assign = |d: &mut Dispatch| {
            d.arg = live_args.len();
            live_args.push(DispatchArgs {
                x: d.grid.0,
                y: d.grid.1,
                z: 1,
            });
        };
        forward
            .iter_mut()
            .chain(backward.iter_mut())
            .for_each(&mut assign);
        if let Some((_, full, rem)) = batch_sets.as_mut() {
            let sets = std::iter::once(full).chain(rem.as_mut());
            for set in sets {
                set.forward
                    .iter_mut()
                    .chain(set.backward.iter_mut())
                    .for_each(&mut assign);
            }
        }
        let one = DispatchArgs { x: 1, y: 1, z: 1 };
        // A chunk's copy of each check's weights (copy_params.wgsl), a no-op after a pause.
        let keep_arg = batch_sets.as_ref().map(|_| {
            live_args.push(DispatchArgs {
                x: u32::try_from(p.div_ceil(WORKGROUP)).unwrap_or(u32::MAX),
                ..one
            });
            live_args.len() - 1
        });
        if looped {
            // lr_loop.wgsl's evaluation (arg 0) and update (arg 1), added below.
            live_args.extend([one, one]);
        }
        let mini = match batch_sets {
            None => None,
            Some((b, full, rem)) => Some(GpuMini::new(
                &ctx,
                b,
                data.rows,
                data.features,
                full,
                rem,
                GatherBuffers {
                    train: &train_rows[0],
                    counter,
                    params: &params,
                    keep_arg: keep_arg.unwrap_or_default(),
                },
                opt.entries,
                &cfg.params,
            )?),
        };
        // x is set by stop_rule.wgsl when an iteration improves.
        live_args.push(DispatchArgs { x: 0, ..one });
        let args = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("dispatch args"),
                contents: bytemuck::cast_slice(&live_args),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::INDIRECT
                    | wgpu::BufferUsages::COPY_DST,
            });

        let chunks = chunk_kit(&ctx, &result, (&params, &best, &opt), &args, classes, stop)?;
        let looped = match &loop_data {
            None => None,
            Some(bufs) => {
                let u = |v: usize| v as u32;
                let nv = val.map_or(0, |v| v.rows);
                let (n, f) = (data.rows, data.features);
                let words = |iters: u32, update_first: u32, judge: u32, keep_z: u32| Loop {
                    rows: u(n),
                    features: u(f),
                    val_rows: u(nv),
                    iters,
                    inv_rows: 1.0f32 / n as f32,
                    update_first,
                    judge,
                    keep_z,
                    ..Default::default()
                };
                // Bindings 0..=20 in order; `src` is params[s].
                let group = |cfg: &wgpu::Buffer, s: usize| {
                    let (k, h, r) = (&chunks.state, &chunks.history, &chunks.rule);
                    let [acts, labels, vx, vy, z] = bufs;
                    let (src, dst, b) = (&params[s], &params[1 - s], &best);
                    let ([m, v], [bm, bv]) = (&opt.state, &opt.best);
                    let all = [
                        cfg,
                        k,
                        h,
                        src,
                        r,
                        dst,
                        b,
                        acts,
                        labels,
                        vx,
                        vy,
                        &partials,
                        &result,
                        z,
                        &opt.consts,
                        &opt.steps,
                        &opt.flags,
                        m,
                        v,
                        bm,
                        bv,
                    ];
                    ctx.bind_group(&pipelines[Kernel::LrLoop as usize], &all)
                };
                let evaluate = ctx.uniform("lr_loop evaluate", &words(1, 0, 0, 0));
                let update = ctx.uniform("lr_loop update", &words(0, 1, 0, 0));
                let keep_z = ctx.uniform("lr_loop logits", &words(1, 0, 0, 1));
                forward.push(Dispatch {
                    kernel: Kernel::LrLoop,
                    groups: [0, 1].map(|k| group(&evaluate, k)),
                    grid: (1, 1),
                    arg: 0,
                });
                // Recorded with the new weights' buffer as the variant: it reads the other.
                backward.push(Dispatch {
                    kernel: Kernel::LrLoop,
                    groups: [0, 1].map(|k| group(&update, 1 - k)),
                    grid: (1, 1),
                    arg: 1,
                });
                let chunk = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("lr_loop chunk"),
                    size: std::mem::size_of::<Loop>() as u64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let edges = loop_edges(n, nv, f, outputs, wg);
                let max_k = ctx.loop_edge_budget.map_or(u32::MAX, |b| {
                    u32::try_from(b / edges).unwrap_or(u32::MAX).max(1)
                });
                Some(LoopChunk {
                    groups: [0, 1].map(|k| group(&chunk, k)),
                    logits: [0, 1].map(|k| group(&keep_z, k)),
                    cfg: chunk,
                    chunk_cfg: words(0, 0, 1, 0),
                    max_k,
                })
            }
        };
        if let Some(e) = pollster::block_on(validation.pop()) {
            return Err(Error::Gpu(format!("setting up the session: {e}")));
        }
        if let Some(e) = pollster::block_on(oom.pop()) {
            let x_bytes = memory::sum([
                memory::mul(data.rows, data.features),
                val.map_or(Some(0), |v| memory::mul(v.rows, v.features)),
            ])
            .and_then(memory::f32_bytes);
            return Err(Error::TooLarge(format!(
                "the GPU ran out of memory for {} rows × {} features ({} of features, {} \
                 parameters) on {}: {e}; use fewer rows or --backend cpu",
                data.rows,
                data.features,
                memory::size_text(x_bytes),
                p,
                ctx.adapter.name
            )));
        }
        Ok(GpuSession {
            train_parts,
            train_logits,
            ctx,
            pipelines,
            forward,
            backward,
            params,
            cur: 0,
            best,
            result,
            tally,
            classes,
            result_staging,
            params_staging,
            param_bytes,
            has_val: val.is_some(),
            pending: false,
            pending_best: None,
            evaluated: false,
            args,
            live_args,
            args_stale: false,
            chunks,
            looped,
            path,
            opt,
            updates: 0,
            mini,
        })
    }

    /// The kernels one iteration runs, in recording order (the training rows' evaluation, the
    /// validation rows', then the update), by shader name: for benchmarks.
    pub fn kernels(&self) -> Vec<&'static str> {
        self.forward
            .iter()
            .chain(&self.backward)
            .map(|d| d.kernel.name())
            .collect()
    }

    /// Runs kernel `i` of [`Self::kernels`] `times` times in one submission and returns the
    /// wall time until the device has finished. For benchmarks: the update kernels write the
    /// previous weights' buffer, so the current weights survive, but the session needs an
    /// `evaluate` before its next `update`, and `previous_params` and the optimizer state
    /// (updated in place) are undefined afterwards.
    pub fn time_kernel(&mut self, i: usize, times: u32) -> Result<std::time::Duration> {
        let enc = self.encoder();
        self.ctx.queue.submit([enc.finish()]);
        self.ctx.wait()?;
        let n = self.forward.len();
        let (d, variant) = match i.checked_sub(n) {
            None => (&self.forward[i], self.cur),
            Some(j) if j < self.backward.len() => (&self.backward[j], 1 - self.cur),
            Some(_) => {
                return Err(Error::Config(format!(
                    "kernel {i} of {}",
                    n + self.backward.len()
                )));
            }
        };
        let began = std::time::Instant::now();
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..times {
                self.record(&mut pass, d, variant);
            }
        }
        self.ctx.queue.submit([enc.finish()]);
        self.ctx.wait()?;
        let elapsed = began.elapsed();
        // Passes without their reduce_stats leave counts in the tally.
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        enc.clear_buffer(&self.tally, 0, None);
        self.ctx.queue.submit([enc.finish()]);
        self.evaluated = false;
        Ok(elapsed)
    }

    /// How many parts (blocks of rows with their own partial sums) the training rows have.
    pub fn parts(&self) -> usize {
        self.train_parts
    }

    /// The kernels this session runs.
    pub fn path(&self) -> KernelPath {
        self.path
    }

    /// How many segments the training rows were cut into to fit the storage bindings.
    pub fn segments(&self) -> usize {
        self.train_logits.len()
    }

    pub(super) fn record(&self, pass: &mut wgpu::ComputePass, d: &Dispatch, variant: usize) {
        pass.set_pipeline(&self.pipelines[d.kernel as usize]);
        pass.set_bind_group(0, &d.groups[variant], &[]);
        pass.dispatch_workgroups_indirect(&self.args, args_offset(d.arg));
    }

    /// An encoder that starts with the pending update and the pending copy of the best
    /// weights and optimizer state, if any, in the order they were asked for.
    pub(super) fn encoder(&mut self) -> wgpu::CommandEncoder {
        if std::mem::take(&mut self.args_stale) {
            let args = bytemuck::cast_slice(&self.live_args);
            self.ctx.queue.write_buffer(&self.args, 0, args);
        }
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        let best = self.pending_best.take();
        if let Some((k, true)) = best {
            self.copy_best(&mut enc, k);
        }
        if self.pending {
            self.stage_lone_update();
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in &self.backward {
                self.record(&mut pass, d, self.cur);
            }
            drop(pass);
            self.pending = false;
        }
        if let Some((k, false)) = best {
            self.copy_best(&mut enc, k);
        }
        enc
    }

    /// Records the copy of params[k] and of the optimizer state to their best copies. (The
    /// state is updated in place, so it goes with params[k] only where no update came since.)
    fn copy_best(&self, enc: &mut wgpu::CommandEncoder, k: usize) {
        enc.copy_buffer_to_buffer(&self.params[k], 0, &self.best, 0, self.param_bytes);
        self.opt.copy_to_best(enc, self.param_bytes);
    }

    /// Before an update outside a chunk: its scalars in entry 0 of the optimizer's table, and
    /// the stop state's slot, which the update kernels read as their entry, at 0.
    fn stage_lone_update(&mut self) {
        let k = self.opt.step0 + self.updates - 1;
        self.opt.stage(&self.ctx.queue, 0, k, 1);
        self.chunks.clear_slot(&self.ctx.queue);
    }

    /// The training and validation counts of a record's words.
    pub(super) fn decode(&self, words: &[u32]) -> Evaluation {
        decode_record(words, self.has_val)
    }

    fn read_params(&mut self, which: Option<usize>) -> Result<Vec<f32>> {
        let src = match which {
            Some(k) => self.params[k].clone(),
            None => self.best.clone(),
        };
        self.read_buffer(&src)
    }

    /// P floats of `src`, after whatever is pending.
    pub(super) fn read_buffer(&mut self, src: &wgpu::Buffer) -> Result<Vec<f32>> {
        let enc = self.encoder();
        let bytes = self
            .ctx
            .read(enc, src, &self.params_staging, self.param_bytes)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

impl Session for GpuSession {
    fn optimizer_state(&mut self, best: bool) -> Result<crate::optim::OptState> {
        self.flush()?;
        let mut buffers = Vec::with_capacity(self.opt.buffers);
        for b in 0..self.opt.buffers {
            // After the pending update and best copy, if any.
            let enc = self.encoder();
            let src = if best {
                &self.opt.best[b]
            } else {
                &self.opt.state[b]
            };
            let bytes = self
                .ctx
                .read(enc, src, &self.params_staging, self.param_bytes)?;
            buffers.push(bytemuck::pod_collect_to_vec(&bytes));
        }
        Ok(crate::optim::OptState {
            step: self.opt.step0,
            buffers,
        })
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        self.flush()?;
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in &self.forward {
                self.record(&mut pass, d, self.cur);
            }
        }
        self.keep_evaluated(&mut enc);
        let bytes = 4 * record_words(self.classes) as u64;
        let read = self
            .ctx
            .read(enc, &self.result, &self.result_staging, bytes)?;
        self.evaluated = true;
        Ok(self.decode(&bytemuck::pod_collect_to_vec(&read)))
    }

    fn update(&mut self) -> Result<()> {
        if self.mini.is_some() {
            return self.push_update();
        }
        if !self.evaluated {
            return Err(Error::Config("update() needs an evaluate() first".into()));
        }
        // Recorded lazily, in front of the next evaluate's forward pass: one submission
        // and one readback per iteration.
        self.cur = 1 - self.cur;
        self.pending = true;
        self.updates += 1;
        self.evaluated = false;
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        self.flush()?;
        self.read_params(Some(self.cur))
    }

    fn previous_params(&mut self) -> Result<Vec<f32>> {
        self.flush()?;
        match &self.mini {
            Some(m) => {
                let src = m.evals[1 - m.last].clone();
                self.read_buffer(&src)
            }
            None => self.read_params(Some(1 - self.cur)),
        }
    }

    fn mini_batches(&self) -> Option<u64> {
        self.mini.as_ref().map(|m| m.per_epoch)
    }

    fn restart(&mut self, params: &[f32], mask: Option<&[bool]>) -> Result<()> {
        crate::backend::check_restart((self.param_bytes / 4) as usize, params, mask)?;
        if let Some(m) = self.mini.as_mut() {
            m.restart(&self.ctx.queue, params);
        }
        let q = &self.ctx.queue;
        for w in self.params.iter().chain([&self.best]) {
            q.write_buffer(w, 0, bytemuck::cast_slice(params));
        }
        self.opt.restart(q, self.param_bytes, mask);
        self.chunks.restart();
        self.cur = 0;
        self.updates = 0;
        self.pending = false;
        self.pending_best = None;
        self.evaluated = false;
        self.args_stale = true;
        Ok(())
    }

    fn save_best(&mut self) -> Result<()> {
        // Recorded with the next submission: the weights params[cur] are the same before and
        // after a pending update asked for later (it writes the other buffer), but the
        // optimizer state is updated in place, so the copy goes first then.
        self.pending_best = Some((self.cur, !self.pending));
        Ok(())
    }

    fn best_params(&mut self) -> Result<Vec<f32>> {
        self.flush()?;
        self.read_params(None)
    }

    fn adapter(&self) -> Option<AdapterDesc> {
        Some(self.ctx.adapter.clone())
    }

    fn max_chunk(&self, r: &ChunkRule) -> Option<u32> {
        self.chunk_capacity(r).map(|k| k.min(MAX_CHUNK))
    }

    fn run_chunk(&mut self, r: &ChunkRule, start: &ChunkStart, k: u32) -> Result<Vec<ChunkEntry>> {
        self.chunk(r, start, k)
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
        let mut logits = Vec::new();
        for (acts, offset, n) in &self.train_logits {
            let bytes = 4 * *n as u64;
            // Out of the activations into a buffer of their own: `read` copies from offset 0.
            let out = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("logits"),
                size: bytes,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let staging = self.ctx.readback("logits staging", bytes);
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            if let Some(lc) = &self.looped {
                // Training keeps no z here: the current weights' evaluation again, keeping it.
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&self.pipelines[Kernel::LrLoop as usize]);
                pass.set_bind_group(0, &lc.logits[self.cur], &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
            enc.copy_buffer_to_buffer(acts, *offset, &out, 0, bytes);
            let read = self.ctx.read(enc, &out, &staging, bytes)?;
            logits.extend(bytemuck::pod_collect_to_vec::<u8, f32>(&read));
        }
        Ok(logits)
    }
}

//! The GPU backend: wgpu compute pipelines over the kernels in `shaders/`.
//!
//! Device setup (`GpuContext`) is kept apart from the work (`GpuSession`) so tests and tools
//! can open a device once and reuse the pieces. All buffers, pipelines and bind groups are
//! made when the session opens; an iteration only records dispatches.

use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::backend::{
    AdapterDesc, ChunkEntry, ChunkRule, ChunkStart, Evaluation, Session, SessionConfig,
};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::memory;
use crate::metrics::Counts;
use crate::metrics::Metric;
use crate::model::{LayerLayout, ModelSpec};
use crate::stop::MinDelta;

/// activation.wgsl's functions, then their callers (WGSL has no includes).
const DENSE_FORWARD: &str = concat!(
    include_str!("../../shaders/activation.wgsl"),
    include_str!("../../shaders/dense_forward.wgsl")
);
const LOSS_METRICS: &str = include_str!("../../shaders/loss_metrics.wgsl");
const DENSE_GRAD: &str = include_str!("../../shaders/dense_grad.wgsl");
const LR_PASS_WGSL: &str = include_str!("../../shaders/lr_pass.wgsl");
const REDUCE_STATS: &str = include_str!("../../shaders/reduce_stats.wgsl");
const REDUCE_UPDATE: &str = include_str!("../../shaders/reduce_update.wgsl");
const DENSE_BACKPROP: &str = concat!(
    include_str!("../../shaders/activation.wgsl"),
    include_str!("../../shaders/dense_backprop.wgsl")
);
/// stop_rule_core.wgsl's judge(), then its callers (WGSL has no includes).
const STOP_RULE: &str = concat!(
    include_str!("../../shaders/stop_rule_core.wgsl"),
    include_str!("../../shaders/stop_rule.wgsl")
);
const MLP_PASS: &str = concat!(
    include_str!("../../shaders/activation.wgsl"),
    include_str!("../../shaders/mlp_pass.wgsl")
);
const LR_LOOP: &str = concat!(
    include_str!("../../shaders/stop_rule_core.wgsl"),
    include_str!("../../shaders/lr_loop.wgsl")
);
const COPY_PARAMS: &str = include_str!("../../shaders/copy_params.wgsl");

/// Most iterations in one chunk.
pub const MAX_CHUNK: u32 = 1024;
/// 32-bit words of `stop_rule.wgsl`'s State and of one history Entry.
const STATE_WORDS: usize = 12;
const ENTRY_WORDS: usize = 20;

/// Invocations per workgroup of the element-wise kernels (forward, backprop).
const WORKGROUP: usize = 64;

/// Logistic regression whose data has at most this many elements, (training rows + validation
/// rows) × (features + 1), may run whole iterations in one workgroup (`lr_loop.wgsl`): a chunk
/// is one dispatch instead of four per iteration. Beyond it one workgroup would be slower than
/// the dispatches it saves. See [`GpuContext::loop_max_elements`].
pub const LOOP_MAX_ELEMENTS: usize = 1 << 16;
/// The most features `lr_loop.wgsl` takes (4 × its MAX_F4).
const LOOP_MAX_FEATURES: usize = 64;
/// The most invocations of `lr_loop.wgsl`'s workgroup (its MAX_WG).
pub const LOOP_MAX_WORKGROUP: u32 = 64;
/// `lr_loop.wgsl`'s invocations on CPU adapters: llvmpipe runs a workgroup on one thread, eight
/// invocations per AVX2 vector, so more invocations only add partial sums and barrier switches.
const CPU_LOOP_WORKGROUP: u32 = 8;
/// Storage buffers `lr_loop.wgsl` binds.
const LOOP_STORAGE_BUFFERS: u32 = 12;
/// llvmpipe (lavapipe) silently ends every loop of a shader invocation once its loops have
/// taken 65,535 back-edges in all. On CPU adapters an `lr_loop.wgsl` dispatch is kept under
/// this many (see [`loop_edges`]).
const CPU_LOOP_BUDGET: u64 = 60_000;

/// How to get a GPU adapter where there is none.
pub const NO_ADAPTER_HELP: &str = "no GPU adapter found. Without a GPU, Mesa's software \
Vulkan driver (lavapipe) serves: on Debian/Ubuntu `apt-get install mesa-vulkan-drivers`. \
Or train with --backend cpu";

/// The wgpu instance: Vulkan, Metal, DX12 (not GL), overridable with WGPU_BACKEND.
pub fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    wgpu::Instance::new(desc.with_env())
}

fn describe(info: &wgpu::AdapterInfo) -> AdapterDesc {
    let driver = match (info.driver.is_empty(), info.driver_info.is_empty()) {
        (false, false) => format!("{} ({})", info.driver, info.driver_info),
        (false, true) => info.driver.clone(),
        _ => info.driver_info.clone(),
    };
    AdapterDesc {
        name: info.name.clone(),
        api: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver,
    }
}

/// Every adapter wgpu sees on the enabled backends.
pub fn list_adapters() -> Vec<AdapterDesc> {
    let inst = instance();
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|a| describe(&a.get_info()))
        .collect()
}

/// An opened device and queue, with errors wgpu reports outside error scopes collected.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterDesc,
    pub limits: wgpu::Limits,
    /// Logistic-regression data up to this many elements takes the one-workgroup kernel
    /// ([`LOOP_MAX_ELEMENTS`] when opened; 0: never). Tests and `wgtrain bench --gpu-kernels`
    /// set it to choose a path.
    pub loop_max_elements: usize,
    /// Loop back-edges one invocation may take, where the driver bounds them (CPU adapters).
    pub loop_edge_budget: Option<u64>,
    /// Invocations of the one-workgroup kernel: a power of two in 2..=[`LOOP_MAX_WORKGROUP`]
    /// (8 on CPU adapters, 64 on others when opened).
    pub loop_workgroup: u32,
    /// MLPs with one hidden layer within `mlp_pass.wgsl`'s limits take it, one pass over X
    /// per iteration (true when opened); false: the layered kernels. Tests set it.
    pub mlp_pass: bool,
    errors: Arc<Mutex<Vec<String>>>,
}

impl GpuContext {
    /// Opens the adapter whose name contains `name` (case-insensitive; WGPU_ADAPTER_NAME when
    /// `None`), else the high-performance default.
    pub fn open(name: Option<&str>) -> Result<Self> {
        Self::open_with_limits(name, |_| {})
    }

    /// As `open`, with the device's limits narrowed by `narrow` (tests use it to force the
    /// 2-D dispatch grids that only huge data would otherwise reach).
    pub fn open_with_limits(
        name: Option<&str>,
        narrow: impl FnOnce(&mut wgpu::Limits),
    ) -> Result<Self> {
        let inst = instance();
        let wanted = name
            .map(str::to_owned)
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|s| !s.is_empty());
        let adapter = match wanted {
            Some(n) => {
                let all = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
                let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
                all.into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&n.to_lowercase()))
                    .ok_or_else(|| {
                        Error::NoAdapter(if names.is_empty() {
                            format!("--adapter {n}: {NO_ADAPTER_HELP}")
                        } else {
                            format!(
                                "--adapter {n}: no adapter's name contains \"{n}\" (wgpu sees: {})",
                                names.join("; ")
                            )
                        })
                    })?
            }
            None => pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            }))
            .map_err(|e| Error::NoAdapter(format!("{NO_ADAPTER_HELP}\n  wgpu: {e}")))?,
        };
        let mut limits = adapter.limits();
        narrow(&mut limits);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgtrain"),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("cannot open a device on the adapter: {e}")))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let cpu = adapter.get_info().device_type == wgpu::DeviceType::Cpu;
        // llvmpipe's loop limit: see CPU_LOOP_BUDGET.
        Ok(GpuContext {
            device,
            queue,
            adapter: describe(&adapter.get_info()),
            limits,
            loop_max_elements: LOOP_MAX_ELEMENTS,
            loop_edge_budget: cpu.then_some(CPU_LOOP_BUDGET),
            loop_workgroup: if cpu {
                CPU_LOOP_WORKGROUP
            } else {
                LOOP_MAX_WORKGROUP
            },
            mlp_pass: true,
            errors,
        })
    }

    /// The first error wgpu reported since the last call, if any.
    fn take_error(&self) -> Option<String> {
        let mut v = self.errors.lock().ok()?;
        if v.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut *v).join("\n"))
        }
    }

    /// A storage buffer holding `data`.
    fn storage(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// A uniform buffer of 32-bit words (f32 fields passed as their bits).
    fn uniform(&self, label: &str, words: &[u32]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(words),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    fn readback(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    fn pipeline(&self, label: &str, source: &str) -> wgpu::ComputePipeline {
        self.pipeline_with(label, source, &[])
    }

    /// A pipeline with its shader's override constants set.
    fn pipeline_with(
        &self,
        label: &str,
        source: &str,
        constants: &[(&str, f64)],
    ) -> wgpu::ComputePipeline {
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        self.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            })
    }

    fn bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// A 2-D grid for `groups` workgroups within the per-dimension limit.
    fn grid(&self, groups: usize) -> Result<(u32, u32)> {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as usize;
        if groups <= max {
            Ok((groups.max(1) as u32, 1))
        } else if groups.div_ceil(max) <= max {
            Ok((max as u32, groups.div_ceil(max) as u32))
        } else {
            Err(Error::TooLarge(format!(
                "{groups} workgroups in one dispatch exceed the {max} × {max} grid of {}",
                self.adapter.name
            )))
        }
    }

    /// Waits until the device has finished all submitted work; fails with any error wgpu
    /// reported meanwhile.
    fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        match self.take_error() {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }

    /// Copies `bytes` of `src` into `staging` after the work in `encoder`, submits, waits and
    /// returns the bytes.
    fn read(
        &self,
        encoder: wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        staging: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        self.read_parts(encoder, &[(src, bytes)], staging)
    }

    /// As `read`, for the leading bytes of several buffers, laid end to end in `staging`.
    fn read_parts(
        &self,
        mut encoder: wgpu::CommandEncoder,
        parts: &[(&wgpu::Buffer, u64)],
        staging: &wgpu::Buffer,
    ) -> Result<Vec<u8>> {
        let mut bytes = 0;
        for (src, len) in parts {
            encoder.copy_buffer_to_buffer(src, 0, staging, bytes, *len);
            bytes += len;
        }
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, ..bytes, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match pollster::block_on(rx.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::Gpu(format!("reading results back: {e}"))),
            None => return Err(Error::Gpu("reading results back: no answer".into())),
        }
        let out = {
            let view = staging
                .get_mapped_range(..bytes)
                .map_err(|e| Error::Gpu(format!("reading results back: {e}")))?;
            view.to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}

/// One dispatch, recorded every iteration: a pipeline, its bind groups for each of the two
/// weight buffers being current, and its grid.
struct Dispatch {
    pipeline: usize,
    groups: [wgpu::BindGroup; 2],
    grid: (u32, u32),
    /// Its entry in the indirect-dispatch buffer.
    arg: usize,
}

pub struct GpuSession {
    ctx: GpuContext,
    /// Parts of the training rows in `partials`.
    train_parts: usize,
    /// The training rows' logits for `logits()`, per segment: buffer, byte offset, rows.
    train_logits: Vec<(wgpu::Buffer, u64, usize)>,
    pipelines: Vec<wgpu::ComputePipeline>,
    /// The training rows' evaluation (per segment: lr_pass, or each layer's forward and the
    /// loss; then reduce_stats), then the validation rows' (if any).
    forward: Vec<Dispatch>,
    /// The update: per segment of an MLP each layer's gradient (last layer first) and
    /// backprop; then reduce_update.
    backward: Vec<Dispatch>,
    /// Ping-pong weights: `params[cur]` holds the current weights, the other the previous.
    params: [wgpu::Buffer; 2],
    cur: usize,
    /// The weights kept by `save_best`.
    best: wgpu::Buffer,
    /// u32[16]: the training rows' loss and counts at 0..5, the validation rows' at 8..13.
    result: wgpu::Buffer,
    result_staging: wgpu::Buffer,
    params_staging: wgpu::Buffer,
    param_bytes: u64,
    has_val: bool,
    /// An update was requested and is recorded before the next use of the weights.
    pending: bool,
    /// `save_best` was asked for the weights in params[k]; copied with the next submission.
    pending_best: Option<usize>,
    evaluated: bool,
    /// Indirect dispatch sizes [x, y, 1] of every dispatch, then of the best-weights copy.
    args: wgpu::Buffer,
    /// Their values when live.
    live_args: Vec<u32>,
    /// A chunk may have zeroed some of `args` since they were last written live.
    args_stale: bool,
    /// The device stop rule's pipelines and buffers.
    chunks: ChunkKit,
    /// With the one-workgroup kernel (`lr_loop.wgsl`): its chunk dispatch.
    looped: Option<LoopChunk>,
    /// The MLP runs `mlp_pass.wgsl`.
    mlp: bool,
}

/// A chunk of `lr_loop.wgsl`: one dispatch whose uniform is written per chunk.
struct LoopChunk {
    /// Variant s reads the weights from params[s] (src) and alternates with params[1 − s].
    groups: [wgpu::BindGroup; 2],
    /// An evaluation of params[s] that keeps z, which training skips, for `logits()`.
    logits: [wgpu::BindGroup; 2],
    cfg: wgpu::Buffer,
    /// The uniform's words, as a chunk without a pending update.
    words: [u32; 12],
    /// The most iterations per dispatch (bounded where the driver bounds loops).
    max_k: u32,
}

/// What `run_chunk` needs besides the training dispatches.
struct ChunkKit {
    stop: wgpu::ComputePipeline,
    stop_group: wgpu::BindGroup,
    copy: wgpu::ComputePipeline,
    /// Variant k copies params[k] to the best weights.
    copy_groups: [wgpu::BindGroup; 2],
    rule: wgpu::Buffer,
    state: wgpu::Buffer,
    history: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// Most iterations one chunk's history holds.
    capacity: u32,
    /// The device state as last read back.
    last_state: [u32; STATE_WORDS],
}

/// Every kernel of an iteration, indexed by the constants below.
const KERNELS: [(&str, &str); 9] = [
    ("dense_forward", DENSE_FORWARD),
    ("loss_metrics", LOSS_METRICS),
    ("dense_grad", DENSE_GRAD),
    ("dense_backprop", DENSE_BACKPROP),
    ("lr_pass", LR_PASS_WGSL),
    ("reduce_stats", REDUCE_STATS),
    ("reduce_update", REDUCE_UPDATE),
    ("mlp_pass", MLP_PASS),
    ("lr_loop", LR_LOOP),
];
const FORWARD: usize = 0;
const LOSS: usize = 1;
const GRAD: usize = 2;
const BACKPROP: usize = 3;
const LR_PASS: usize = 4;
const STATS: usize = 5;
const UPDATE: usize = 6;
const MLP: usize = 7;
const LOOP: usize = 8;
/// 32-bit words of `result` per set of rows.
const RESULT_WORDS: usize = 8;
/// Words of loss and counts per part in `partials`: Σ loss, TP, FP, FN, TN.
const STAT_WORDS: usize = 5;
/// Most rows per block of `lr_pass.wgsl` (its MAX_BLOCK).
const MAX_BLOCK: usize = 3072;
/// Rows per part of `dense_grad.wgsl`, where a segment holds that many.
const GRAD_CHUNK: usize = 1024;
/// The (o, i) tile of one `dense_grad.wgsl` workgroup is TILE × TILE.
const TILE: usize = 32;

/// How one set of rows is cut for the device. Rows go in segments of `seg_rows`, each
/// segment's buffers within one storage binding; the gradient (and, for lr_pass.wgsl, the
/// stats) are summed per part of `block` rows, and `seg_rows` is a multiple of `block`, so the
/// segments do not change those sums. (The layered kernels' loss is summed per segment.)
#[derive(Clone, Copy, Debug)]
struct Cut {
    seg_rows: usize,
    block: usize,
}

impl Cut {
    /// The fused logistic-regression pass: X [rows, f] and z [rows] share a segment's buffer.
    fn fused(ctx: &GpuContext, what: &str, data: &Dataset) -> Result<Cut> {
        // Blocks of 256 rows, larger for big data so the parts stay few for the update.
        let want = 256 * data.rows.div_ceil(256 * 256).clamp(1, MAX_BLOCK / 256);
        let f = data.features;
        Cut::one_pass(ctx, what, data, want, WORKGROUP, |b| lr_pass_edges(b, f))
    }

    /// `mlp_pass.wgsl`: X [rows, f] and z [rows] share a segment's buffer; blocks of
    /// [`MLP_BLOCK`] rows, larger where `max_parts` parts would not cover the rows, smaller
    /// where the driver's loop budget needs it.
    fn mlp(
        ctx: &GpuContext,
        what: &str,
        data: &Dataset,
        h: usize,
        max_parts: usize,
    ) -> Result<Cut> {
        let (n, f) = (data.rows, data.features);
        let want = MLP_BLOCK.max(n.div_ceil(max_parts.max(1)).next_multiple_of(MLP_TILE));
        let edges = |b| mlp_pass_edges(b, f, h);
        let cut = Cut::one_pass(ctx, what, data, want, MLP_TILE, edges)?;
        if n.div_ceil(cut.block) > max_parts.max(1) {
            return Err(too_large(ctx, what, data, 4 * cut.block * (f + 1)));
        }
        Ok(cut)
    }

    /// A one-pass kernel's cut, X [rows, f] and z [rows] in a segment's buffer: blocks of
    /// `want` rows, at most what one binding holds, shrunk in steps of `step` while one
    /// invocation's back-edges (`edges` of the block) exceed the driver's loop budget.
    fn one_pass(
        ctx: &GpuContext,
        what: &str,
        data: &Dataset,
        want: usize,
        step: usize,
        edges: impl Fn(usize) -> u64,
    ) -> Result<Cut> {
        let row_words = data.features + 1;
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
    fn layered_rows(
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

    fn parts(&self, rows: usize) -> usize {
        rows.div_ceil(self.block)
    }

    /// (first row, rows) of each segment.
    fn segments(&self, rows: usize) -> impl Iterator<Item = (usize, usize)> {
        let s = self.seg_rows;
        (0..rows.div_ceil(s)).map(move |i| (i * s, s.min(rows - i * s)))
    }
}

/// At most how many loop back-edges one invocation of `lr_pass.wgsl` takes, for blocks of
/// `block` rows of `f` features: per four rows one loop over the features (each step with a
/// loop over the four), per group of four features one loop over the block's rows (each step
/// with a loop over the four), and invocation 0's 64 partials.
fn lr_pass_edges(block: usize, f: usize) -> u64 {
    let (b, f) = (block as u64, f as u64);
    b.div_ceil(256) * (5 * f + 5) + (f + 1).div_ceil(256) * (5 * b + 5) + 64
}

/// Rows per tile of `mlp_pass.wgsl` (its S) and per block by default.
const MLP_TILE: usize = 16;
const MLP_BLOCK: usize = 512;
/// `mlp_pass.wgsl`'s limits: inputs (MAX_F) and hidden units (MAX_H).
const MLP_MAX_F: usize = 64;
const MLP_MAX_H: usize = 128;

/// Whether `mlp_pass.wgsl` takes this model: one hidden layer within its limits.
fn mlp_fits(ctx: &GpuContext, layout: &[LayerLayout]) -> bool {
    ctx.mlp_pass
        && layout.len() == 2
        && layout[0].inputs <= MLP_MAX_F
        && layout[0].outputs <= MLP_MAX_H
}

/// At most how many loop back-edges one invocation of `mlp_pass.wgsl` takes for blocks of
/// `block` rows, counting every loop as not unrolled and its exit as one more step each time
/// it runs (as llvmpipe does): per tile of 16 rows the loads, its hidden units' loop over the
/// inputs (and two over four units), the logit's loop over the hidden units, three loops over
/// the tile, the δ elements, and the first layer's gradient block (per row of the tile a loop
/// over its four units); then the block's 4 × 8 writes and the 16 partials once.
fn mlp_pass_edges(block: usize, f: usize, h: usize) -> u64 {
    let (s, wg) = (MLP_TILE as u64, 256u64);
    let (f, h) = (f as u64, h as u64);
    let per_tile = ((s * f).div_ceil(wg) + 1)
        + (f + 11)
        + (h + 1)
        + 3 * (s + 1)
        + ((s * h).div_ceil(wg) + 1)
        + (6 * s + 1)
        + 1;
    (block as u64).div_ceil(s) * per_tile + 41 + (s + 1) + 1
}

/// At most how many loop back-edges one invocation of the layered kernels takes:
/// `dense_forward` (per input 9), `dense_grad` (per row of a part 9), `dense_backprop` (per
/// output 1) and `loss_metrics` (per 256 rows of a segment 1).
fn layered_edges(layout: &[LayerLayout], cut: Cut) -> u64 {
    let widest = layout
        .iter()
        .map(|l| l.inputs.max(l.outputs))
        .max()
        .unwrap_or(0);
    (9 * widest.max(cut.block) + cut.seg_rows / 256 + 64) as u64
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
fn binding_words(ctx: &GpuContext) -> usize {
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

/// One set of rows (training or validation) on the device, cut in segments.
struct DeviceSet {
    /// Evaluation: the passes over every segment, then the stats reduction into `result`.
    forward: Vec<Dispatch>,
    /// Training only: the gradient of every segment (layered kernels), then the update.
    backward: Vec<Dispatch>,
    /// Each segment's logits: buffer, byte offset, rows.
    logits: Vec<(wgpu::Buffer, u64, usize)>,
}

/// What every set of rows is built against.
struct Shared<'a> {
    /// The MLP runs `mlp_pass.wgsl` (see [`mlp_fits`]).
    mlp: bool,
    ctx: &'a GpuContext,
    pipelines: &'a [wgpu::ComputePipeline],
    params: &'a [wgpu::Buffer; 2],
    partials: &'a wgpu::Buffer,
    result: &'a wgpu::Buffer,
    spec: &'a ModelSpec,
    layout: &'a [LayerLayout],
    /// Words per part in `partials`: the gradient [P], then the stats.
    stride: usize,
    lr: f32,
}

impl Shared<'_> {
    fn uniform(&self, label: &str, words: &[u32]) -> wgpu::Buffer {
        self.ctx.uniform(label, words)
    }

    /// A dispatch whose bind group is the same for both weight buffers.
    fn fixed(&self, pipeline: usize, buffers: &[&wgpu::Buffer], grid: (u32, u32)) -> Dispatch {
        let group = self.ctx.bind_group(&self.pipelines[pipeline], buffers);
        Dispatch {
            pipeline,
            groups: [group.clone(), group],
            grid,
            arg: 0,
        }
    }

    /// A dispatch whose variant k binds `buffers(k)`.
    fn variants<'b>(
        &self,
        pipeline: usize,
        buffers: impl Fn(usize) -> Vec<&'b wgpu::Buffer>,
        grid: (u32, u32),
    ) -> Dispatch {
        Dispatch {
            pipeline,
            groups: [0, 1].map(|k| self.ctx.bind_group(&self.pipelines[pipeline], &buffers(k))),
            grid,
            arg: 0,
        }
    }

    /// Builds one set: its parts are `part0..part0 + cut.parts(rows)` of `partials`, its
    /// stats land in `result` at `out_off`; `train` adds the gradient and the update.
    fn set(
        &self,
        what: &str,
        data: &Dataset,
        cut: Cut,
        part0: usize,
        out_off: usize,
        train: bool,
    ) -> Result<DeviceSet> {
        let (n, f) = (data.rows, data.features);
        let u = |v: usize| v as u32;
        let inv_rows = (1.0f32 / n as f32).to_bits();
        let params_len = self.stride - STAT_WORDS;
        let mut set = DeviceSet {
            forward: Vec::new(),
            backward: Vec::new(),
            logits: Vec::new(),
        };
        let fused = self.layout.len() == 1;
        let row_words = if fused || self.mlp {
            f + 1
        } else {
            f + self.layout.iter().map(|l| l.outputs).sum::<usize>()
        };
        // A segment's rows are staged on the host (within one binding, by the cut).
        let staged = memory::mul(cut.seg_rows.min(n), row_words).and_then(memory::f32_bytes);
        memory::check(staged, |size| {
            format!("{what}: one segment of the GPU's rows needs {size} on the host")
        })?;
        for (r0, len) in cut.segments(n) {
            let mut init = vec![0.0f32; len * row_words];
            init[..len * f].copy_from_slice(&data.x[r0 * f..(r0 + len) * f]);
            let acts = self.ctx.storage(what, &init);
            let labels = self.ctx.storage("labels", &data.y[r0..r0 + len]);
            if fused || self.mlp {
                // lr_pass.wgsl's uniform, and mlp_pass.wgsl's starts the same.
                let mut words = vec![
                    u(len),
                    u(f),
                    u(len * f),
                    u(part0 + r0 / cut.block),
                    u(self.stride),
                    u32::from(train),
                    inv_rows,
                    u(cut.block),
                ];
                let kernel = if fused {
                    LR_PASS
                } else {
                    let (l0, l1) = (self.layout[0], self.layout[1]);
                    let act = self.spec.activation.code();
                    let (w0, b0, w1, b1) = (l0.w_off, l0.b_off, l1.w_off, l1.b_off);
                    words.extend([u(l0.outputs), act, u(w0), u(b0), u(w1), u(b1)]);
                    words.extend([u(params_len), 0]);
                    MLP
                };
                let cfg = self.uniform(&format!("{} cfg", KERNELS[kernel].0), &words);
                let grid = self.ctx.grid(cut.parts(len))?;
                set.forward.push(self.variants(
                    kernel,
                    |k| vec![&self.params[k], &acts, &labels, self.partials, &cfg],
                    grid,
                ));
                set.logits.push((acts, 4 * (len * f) as u64, len));
                continue;
            }
            // The layered kernels: each layer's output [len, out_l] at out_off[l] after X.
            let mut out_off = Vec::new();
            let mut d_off = Vec::new();
            let (mut a, mut d) = (len * f, 0);
            for l in self.layout {
                out_off.push(a);
                d_off.push(d);
                a += len * l.outputs;
                d += len * l.outputs;
            }
            let in_off = |l: usize| if l == 0 { 0 } else { out_off[l - 1] };
            // The words every layer kernel's uniform starts with: rows, in_dim, out_dim, in_off,
            // then the offset of what it writes or reads (`at`).
            let head = |l: usize, at: usize| {
                let lay = &self.layout[l];
                [u(len), u(lay.inputs), u(lay.outputs), u(in_off(l)), u(at)]
            };
            let last = self.layout.len() - 1;
            for (l, lay) in self.layout.iter().enumerate() {
                let act = if l == last {
                    0
                } else {
                    self.spec.activation.code()
                };
                // Invocations along the outputs: 8, fewer for a narrow layer.
                let tx = lay.outputs.div_ceil(4).next_power_of_two().min(8);
                let tiles_o = lay.outputs.div_ceil(4 * tx);
                let tail = [u(lay.w_off), u(lay.b_off), act, u(tiles_o), u(tx), 0, 0];
                let words = [&head(l, out_off[l])[..], &tail].concat();
                let cfg = self.uniform("dense_forward cfg", &words);
                let grid = self
                    .ctx
                    .grid(len.div_ceil(4 * (WORKGROUP / tx)) * tiles_o)?;
                set.forward.push(self.variants(
                    FORWARD,
                    |k| vec![&self.params[k], &acts, &cfg],
                    grid,
                ));
            }
            // ∂L/∂Z of every layer (training), or only the logits' (never used).
            let deltas = self
                .ctx
                .storage("deltas", &vec![0.0f32; if train { d } else { len }]);
            let dz_off = if train { d_off[last] } else { 0 };
            let words = [
                u(len),
                u(out_off[last]),
                u(dz_off),
                inv_rows,
                u((part0 + r0 / cut.block) * self.stride + params_len),
                0,
                0,
                0,
            ];
            let cfg = self.uniform("loss_metrics cfg", &words);
            set.forward.push(self.fixed(
                LOSS,
                &[&acts, &labels, &deltas, self.partials, &cfg],
                (1, 1),
            ));
            set.logits
                .push((acts.clone(), 4 * out_off[last] as u64, len));
            if !train {
                continue;
            }
            // Variant k of a backward dispatch reads the weights before the step, params[1 − k].
            for l in (0..self.layout.len()).rev() {
                let lay = self.layout[l];
                let tiles_i = (lay.inputs + 1).div_ceil(TILE);
                let tiles = lay.outputs.div_ceil(TILE) * tiles_i;
                let tail = [
                    u(lay.w_off),
                    u(lay.b_off),
                    u((part0 + r0 / cut.block) * self.stride),
                    u(self.stride),
                    u(cut.block),
                    u(tiles_i),
                    u(tiles),
                ];
                let words = [&head(l, d_off[l])[..], &tail].concat();
                let cfg = self.uniform("dense_grad cfg", &words);
                let grid = self.ctx.grid(tiles * cut.parts(len))?;
                set.backward
                    .push(self.fixed(GRAD, &[&acts, &deltas, self.partials, &cfg], grid));
                if l > 0 {
                    let tail = [u(d_off[l - 1]), u(lay.w_off), self.spec.activation.code()];
                    let words = [&head(l, d_off[l])[..], &tail].concat();
                    let cfg = self.uniform("dense_backprop cfg", &words);
                    let grid = self.ctx.grid((len * lay.inputs).div_ceil(WORKGROUP))?;
                    set.backward.push(self.variants(
                        BACKPROP,
                        |k| vec![&self.params[1 - k], &acts, &deltas, &cfg],
                        grid,
                    ));
                }
            }
        }
        let words = [
            u(part0),
            u(cut.parts(n)),
            u(self.stride),
            u(params_len),
            u(out_off),
            0,
            0,
            0,
        ];
        let cfg = self.uniform("reduce_stats cfg", &words);
        set.forward
            .push(self.fixed(STATS, &[self.partials, self.result, &cfg], (1, 1)));
        if train {
            // Training parts come first in `partials`, so the update sums parts 0..parts.
            let words = [
                u(params_len),
                u(cut.parts(n)),
                u(self.stride),
                self.lr.to_bits(),
            ];
            let cfg = self.uniform("reduce_update cfg", &words);
            let grid = self.ctx.grid(params_len.div_ceil(WORKGROUP))?;
            set.backward.push(self.variants(
                UPDATE,
                |k| vec![&self.params[1 - k], &self.params[k], self.partials, &cfg],
                grid,
            ));
        }
        Ok(set)
    }
}

impl GpuSession {
    pub fn new(
        ctx: GpuContext,
        data: &Dataset,
        val: Option<&Dataset>,
        spec: &ModelSpec,
        cfg: &SessionConfig,
    ) -> Result<Self> {
        super::check_shapes(data, val, spec, cfg)?;
        let Plan {
            layout,
            mlp,
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
        let partials = ctx.storage("partials", &vec![0.0f32; parts * stride]);
        let result_bytes = (4 * 2 * RESULT_WORDS) as u64;
        let result = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("result"),
            size: result_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let param_bytes = 4 * p as u64;
        let result_staging = ctx.readback("result staging", result_bytes);
        let params_staging = ctx.readback("params staging", param_bytes);
        let looped = loop_fits(&ctx, data, val, &layout);
        let wg = ctx.loop_workgroup;
        if looped && !(wg.is_power_of_two() && (2..=LOOP_MAX_WORKGROUP).contains(&wg)) {
            return Err(Error::Config(format!(
                "loop_workgroup {wg}: a power of two from 2 to {LOOP_MAX_WORKGROUP}"
            )));
        }
        // lr_loop.wgsl is specialised to the data's features; the other kernels are generic.
        let mut pipelines: Vec<wgpu::ComputePipeline> = KERNELS[..LOOP]
            .iter()
            .map(|(name, source)| ctx.pipeline(name, source))
            .collect();
        if looped {
            let (name, source) = KERNELS[LOOP];
            let constants = [("F", data.features as f64), ("WG", f64::from(wg))];
            pipelines.push(ctx.pipeline_with(name, source, &constants));
        }
        let shared = Shared {
            mlp,
            ctx: &ctx,
            pipelines: &pipelines,
            params: &params,
            partials: &partials,
            result: &result,
            spec,
            layout: &layout,
            stride,
            lr: cfg.lr,
        };
        let (mut forward, mut backward, train_logits, loop_data) = if looped {
            // X in rows padded to whole vec4s; z in a buffer of its own.
            let n = data.rows;
            let acts = ctx.storage("training rows", &pad_rows(data));
            let z = ctx.storage("logits", &vec![0.0f32; n]);
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
            let logits = vec![(z, 0, n)];
            (Vec::new(), Vec::new(), logits, Some(buffers))
        } else {
            let train = shared.set("training rows", data, train_cut, 0, 0, true)?;
            let mut forward = train.forward;
            if let (Some(v), Some(c)) = (val, val_cut) {
                let set = shared.set("validation rows", v, c, train_parts, RESULT_WORDS, false)?;
                forward.extend(set.forward);
            }
            (forward, train.backward, train.logits, None)
        };

        // Every dispatch is indirect, so that a stop on the device can turn the rest of a
        // chunk into no-ops; the last entry is the best-weights copy.
        let mut live_args = Vec::new();
        for (i, d) in forward.iter_mut().chain(backward.iter_mut()).enumerate() {
            d.arg = i;
            live_args.extend([d.grid.0, d.grid.1, 1]);
        }
        if looped {
            // lr_loop.wgsl's evaluation (arg 0) and update (arg 1), added below.
            live_args.extend([1, 1, 1, 1, 1, 1]);
        }
        // x is set by stop_rule.wgsl when an iteration improves.
        live_args.extend([0, 1, 1]);
        let args = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("dispatch args"),
                contents: bytemuck::cast_slice(&live_args),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::INDIRECT
                    | wgpu::BufferUsages::COPY_DST,
            });

        let chunks = chunk_kit(&ctx, &result, &params, &best, &args)?;
        let looped = match &loop_data {
            None => None,
            Some(bufs) => {
                let u = |v: usize| v as u32;
                let nv = val.map_or(0, |v| v.rows);
                let (n, f) = (data.rows, data.features);
                // lr_loop.wgsl's Loop uniform.
                let words = |iters: u32, update_first: u32, judge: u32, keep_z: u32| {
                    let inv_rows = (1.0f32 / n as f32).to_bits();
                    let lr = cfg.lr.to_bits();
                    [
                        u(n),
                        u(f),
                        u(nv),
                        iters,
                        lr,
                        inv_rows,
                        update_first,
                        judge,
                        keep_z,
                        0,
                        0,
                        0,
                    ]
                };
                // Bindings 0..=13 in order; `src` is params[s].
                let group = |cfg: &wgpu::Buffer, s: usize| {
                    let (k, h, r) = (&chunks.state, &chunks.history, &chunks.rule);
                    let [acts, labels, vx, vy, z] = bufs;
                    let (src, dst, b) = (&params[s], &params[1 - s], &best);
                    let all = [
                        cfg, k, h, src, r, dst, b, acts, labels, vx, vy, &partials, &result, z,
                    ];
                    ctx.bind_group(&pipelines[LOOP], &all)
                };
                let evaluate = ctx.uniform("lr_loop evaluate", &words(1, 0, 0, 0));
                let update = ctx.uniform("lr_loop update", &words(0, 1, 0, 0));
                let keep_z = ctx.uniform("lr_loop logits", &words(1, 0, 0, 1));
                forward.push(Dispatch {
                    pipeline: LOOP,
                    groups: [0, 1].map(|k| group(&evaluate, k)),
                    grid: (1, 1),
                    arg: 0,
                });
                // Recorded with the new weights' buffer as the variant: it reads the other.
                backward.push(Dispatch {
                    pipeline: LOOP,
                    groups: [0, 1].map(|k| group(&update, 1 - k)),
                    grid: (1, 1),
                    arg: 1,
                });
                let chunk = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("lr_loop chunk"),
                    size: 48,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let edges = loop_edges(n, nv, f, wg);
                let max_k = ctx.loop_edge_budget.map_or(u32::MAX, |b| {
                    u32::try_from(b / edges).unwrap_or(u32::MAX).max(1)
                });
                Some(LoopChunk {
                    groups: [0, 1].map(|k| group(&chunk, k)),
                    logits: [0, 1].map(|k| group(&keep_z, k)),
                    cfg: chunk,
                    words: words(0, 0, 1, 0),
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
            mlp,
        })
    }

    /// The kernels one iteration runs, in recording order (the training rows' evaluation, the
    /// validation rows', then the update), by shader name: for benchmarks.
    pub fn kernels(&self) -> Vec<&'static str> {
        self.forward
            .iter()
            .chain(&self.backward)
            .map(|d| KERNELS[d.pipeline].0)
            .collect()
    }

    /// Runs kernel `i` of [`Self::kernels`] `times` times in one submission and returns the
    /// wall time until the device has finished. For benchmarks: the update kernels write the
    /// previous weights' buffer, so the current weights survive, but the session needs an
    /// `evaluate` before its next `update`, and `previous_params` is undefined afterwards.
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
        self.evaluated = false;
        Ok(began.elapsed())
    }

    /// How many parts (blocks of rows with their own partial sums) the training rows have.
    pub fn parts(&self) -> usize {
        self.train_parts
    }

    /// Whether whole iterations run in one workgroup (`lr_loop.wgsl`), a chunk in one
    /// dispatch.
    pub fn looped(&self) -> bool {
        self.looped.is_some()
    }

    /// Whether the MLP runs `mlp_pass.wgsl`, one pass over X per iteration, rather than the
    /// layered kernels.
    pub fn one_pass_mlp(&self) -> bool {
        self.mlp
    }

    /// How many segments the training rows were cut into to fit the storage bindings.
    pub fn segments(&self) -> usize {
        self.train_logits.len()
    }

    fn record(&self, pass: &mut wgpu::ComputePass, d: &Dispatch, variant: usize) {
        pass.set_pipeline(&self.pipelines[d.pipeline]);
        pass.set_bind_group(0, &d.groups[variant], &[]);
        pass.dispatch_workgroups_indirect(&self.args, 12 * d.arg as u64);
    }

    /// An encoder that starts with the pending update and the pending copy of the best
    /// weights, if any.
    fn encoder(&mut self) -> wgpu::CommandEncoder {
        if std::mem::take(&mut self.args_stale) {
            let args = bytemuck::cast_slice(&self.live_args);
            self.ctx.queue.write_buffer(&self.args, 0, args);
        }
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        if self.pending {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in &self.backward {
                self.record(&mut pass, d, self.cur);
            }
            drop(pass);
            self.pending = false;
        }
        if let Some(k) = self.pending_best.take() {
            enc.copy_buffer_to_buffer(&self.params[k], 0, &self.best, 0, self.param_bytes);
        }
        enc
    }

    /// The training and validation counts from `result`-layout words.
    fn decode(&self, w: &[u32]) -> Evaluation {
        let counts = |w: &[u32]| Counts {
            loss_sum: f32::from_bits(w[0]) as f64,
            tp: w[1] as u64,
            fp: w[2] as u64,
            fn_: w[3] as u64,
            tn: w[4] as u64,
        };
        Evaluation {
            train: counts(&w[..RESULT_WORDS]),
            val: self
                .has_val
                .then(|| counts(&w[RESULT_WORDS..2 * RESULT_WORDS])),
        }
    }

    /// The blocked kernels' chunk of `k` iterations: per iteration the update (from the
    /// second on), the evaluation, the stop rule and the indirect best-weights copy; iteration
    /// i has its weights in params[cur ^ (i & 1)].
    fn record_chunk(&mut self, r: &ChunkRule, k: u32, n_args: usize) -> wgpu::CommandEncoder {
        let mut enc = self.encoder();
        let kit = &self.chunks;
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
                for d in &self.forward {
                    self.record(&mut pass, d, c);
                }
                pass.set_pipeline(&kit.stop);
                pass.set_bind_group(0, &kit.stop_group, &[]);
                pass.dispatch_workgroups(1, 1, 1);
                if r.restore_best {
                    pass.set_pipeline(&kit.copy);
                    pass.set_bind_group(0, &kit.copy_groups[c], &[]);
                    pass.dispatch_workgroups_indirect(&self.args, 12 * n_args as u64);
                }
            }
        }
        enc
    }

    fn read_params(&mut self, which: Option<usize>) -> Result<Vec<f32>> {
        let enc = self.encoder();
        let src = match which {
            Some(k) => &self.params[k],
            None => &self.best,
        };
        let bytes = self
            .ctx
            .read(enc, src, &self.params_staging, self.param_bytes)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

/// What [`GpuSession::new`] builds, decided from the shapes and the adapter's limits alone.
struct Plan {
    layout: Vec<LayerLayout>,
    mlp: bool,
    train_cut: Cut,
    val_cut: Option<Cut>,
    train_parts: usize,
    /// Parameters, and words per part in `partials`.
    p: usize,
    stride: usize,
    parts: usize,
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

fn plan(ctx: &GpuContext, data: &Dataset, val: Option<&Dataset>, spec: &ModelSpec) -> Result<Plan> {
    check_model(ctx, spec)?;
    let layout = spec.layout();
    let fused = layout.len() == 1;
    let mlp = mlp_fits(ctx, &layout);
    let p = spec.parameter_count();
    let cut = |what: &str, d: &Dataset| {
        // Each set's parts may fill half of one binding of partial sums.
        let max_parts = binding_words(ctx) / 2 / (p + STAT_WORDS);
        if fused {
            Cut::fused(ctx, what, d)
        } else if mlp {
            Cut::mlp(ctx, what, d, layout[0].outputs, max_parts)
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
            if layered_edges(&layout, c) > budget {
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
        mlp,
        train_cut,
        val_cut,
        train_parts,
        p,
        stride,
        parts,
    })
}

/// The most bytes one storage binding of `ctx` holds.
fn binding_bytes(ctx: &GpuContext) -> u64 {
    4 * binding_words(ctx) as u64
}

/// The model's buffers against one storage binding: each hidden layer's activations of one
/// row, each layer's weights, all parameters (one buffer), one block's partial gradient.
fn check_model(ctx: &GpuContext, spec: &ModelSpec) -> Result<()> {
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
    check(
        format!(
            "one block's partial gradient ({} parameters and {STAT_WORDS} sums)",
            memory::fmt_count(p)
        ),
        p.checked_add(STAT_WORDS as u64),
    )
}

/// The layered kernels loop over the widest layer: a layer past the driver's loop budget
/// whatever the rows is named.
fn check_layer_loops(ctx: &GpuContext, spec: &ModelSpec, budget: u64) -> Result<()> {
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

/// Whether this session takes `lr_loop.wgsl`: logistic regression on data within
/// `ctx.loop_max_elements`, the loop budget and one storage binding, on a device that binds
/// its buffers.
fn loop_fits(
    ctx: &GpuContext,
    data: &Dataset,
    val: Option<&Dataset>,
    layout: &[LayerLayout],
) -> bool {
    let f = data.features;
    let val_rows = val.map_or(0, |v| v.rows);
    let rows = data.rows + val_rows;
    let edges = loop_edges(data.rows, val_rows, f, ctx.loop_workgroup);
    let padded = loop_row_floats(f);
    layout.len() == 1
        && f <= LOOP_MAX_FEATURES
        && rows.saturating_mul(f + 1) <= ctx.loop_max_elements
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
fn pad_rows(d: &Dataset) -> Vec<f32> {
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
/// owner's `wg`/2 and four, and judge()'s 16.
fn loop_edges(rows: usize, val_rows: usize, f: usize, wg: u32) -> u64 {
    let wg = u64::from(wg.max(1));
    let trips = |n: u64| n.div_ceil(wg);
    let f4 = loop_row_floats(f) as u64 / 4;
    let np = f as u64 + 1;
    let owners = trips(f4 + 1);
    (trips(rows as u64) * (1 + 2 * (f4 + 1)) + 1)
        + (trips(val_rows as u64) * (1 + f4 + 1) + 1)
        + 3 * (trips(np) + 1)
        + (f4 + 1)
        + 2 * (f4 + 2)
        + (wg + 1)
        + owners * (1 + (wg / 2 + 1) + 5)
        + 1
        + 17
        + 2
}

/// The device stop rule's pipelines and buffers, over the session's result, weights and
/// dispatch sizes.
fn chunk_kit(
    ctx: &GpuContext,
    result: &wgpu::Buffer,
    params: &[wgpu::Buffer; 2],
    best: &wgpu::Buffer,
    args: &wgpu::Buffer,
) -> Result<ChunkKit> {
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let stop = ctx.pipeline("stop_rule", STOP_RULE);
    let copy = ctx.pipeline("copy_params", COPY_PARAMS);
    let rule = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("stop rule"),
        size: 64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let state = ctx.storage("stop state", &[0.0; STATE_WORDS]);
    // MAX_CHUNK entries, or as many as one storage binding holds.
    let capacity = (MAX_CHUNK as usize)
        .min(binding_words(ctx) / ENTRY_WORDS)
        .max(1);
    let history_bytes = (4 * ENTRY_WORDS * capacity) as u64;
    let history = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("history"),
        size: history_bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = ctx.readback("chunk staging", 4 * STATE_WORDS as u64 + history_bytes);
    let stop_group = ctx.bind_group(&stop, &[result, &state, &history, args, &rule]);
    let copy_groups = [0, 1].map(|k| ctx.bind_group(&copy, &[&params[k], best]));
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
        last_state: [0; STATE_WORDS],
    })
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
    let mut words = vec![0u32; 2 * RESULT_WORDS * n];
    for (w, e) in words.chunks_exact_mut(2 * RESULT_WORDS).zip(seq) {
        let mut put = |at: usize, c: &Counts| {
            w[at] = (c.loss_sum as f32).to_bits();
            w[at + 1..at + 5].copy_from_slice(&[
                c.tp as u32,
                c.fp as u32,
                c.fn_ as u32,
                c.tn as u32,
            ]);
        };
        put(0, &e.train);
        if let Some(v) = &e.val {
            put(RESULT_WORDS, v);
        }
    }
    let dev = &ctx.device;
    let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
    let results = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("sequence"),
        contents: bytemuck::cast_slice(&words),
        usage: wgpu::BufferUsages::COPY_SRC,
    });
    let result = ctx.storage("result", &[0.0; 2 * RESULT_WORDS]);
    let state = ctx.storage("stop state", &[0.0; STATE_WORDS]);
    let history = ctx.storage("history", &vec![0.0; ENTRY_WORDS * n]);
    let args = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("args"),
        contents: bytemuck::cast_slice(&[0u32, 1, 1]),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let rule = ctx.uniform("stop rule", &chunk_rule_words(r, has_val, 0, 1));
    let stop = ctx.pipeline("stop_rule", STOP_RULE);
    let group = ctx.bind_group(&stop, &[&result, &state, &history, &args, &rule]);
    let mut enc = dev.create_command_encoder(&Default::default());
    let step_bytes = 4 * 2 * RESULT_WORDS as u64;
    for i in 0..n as u64 {
        enc.copy_buffer_to_buffer(&results, i * step_bytes, &result, 0, step_bytes);
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&stop);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    let history_bytes = 4 * (ENTRY_WORDS * n) as u64;
    let staging = ctx.readback("trace staging", 4 * STATE_WORDS as u64 + history_bytes);
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(Error::Gpu(format!("setting up the stop rule trace: {e}")));
    }
    let bytes = ctx.read_parts(
        enc,
        &[(&state, 4 * STATE_WORDS as u64), (&history, history_bytes)],
        &staging,
    )?;
    let w: &[u32] = bytemuck::cast_slice(&bytes);
    let ran = w[1] as usize;
    Ok(w[STATE_WORDS..]
        .chunks_exact(ENTRY_WORDS)
        .take(ran)
        .zip(seq)
        .map(|(e, ev)| ChunkEntry {
            t: u64::from(e[16]),
            eval: *ev,
            checked: e[17] & 1 != 0,
            improved: e[17] & 2 != 0,
            paused: e[17] & 4 != 0,
        })
        .collect())
}

/// `stop_rule.wgsl`'s Rule uniform.
fn chunk_rule_words(r: &ChunkRule, has_val: bool, n_args: u32, copy_groups: u32) -> [u32; 16] {
    let rule = &r.rule;
    let clamp = |v: u64| v.min(u64::from(u32::MAX)) as u32;
    let metric = match rule.metric {
        Metric::Accuracy => 0,
        Metric::Precision => 1,
        Metric::Recall => 2,
        Metric::F1 => 3,
        Metric::Iou => 4,
        Metric::Loss => 5,
    };
    let (relative, delta) = match rule.min_delta {
        MinDelta::Abs(d) => (false, d),
        MinDelta::Rel(r) => (true, r),
    };
    let track = rule.patience.is_some() || r.restore_best;
    let flags = u32::from(rule.threshold.is_some())
        | u32::from(rule.divergence.is_some()) << 1
        | u32::from(rule.patience.is_some()) << 2
        | u32::from(track) << 3
        | u32::from(relative) << 4;
    [
        metric,
        u32::from(r.monitor_val),
        u32::from(has_val),
        flags,
        (rule.threshold.unwrap_or(0.0) as f32).to_bits(),
        (rule.divergence.unwrap_or(0.0) as f32).to_bits(),
        (delta as f32).to_bits(),
        clamp(rule.patience.unwrap_or(1).max(1)),
        clamp(rule.warmup),
        clamp(rule.eval_every.max(1)),
        clamp(rule.max_iter),
        n_args,
        copy_groups,
        0,
        0,
        0,
    ]
}

impl Session for GpuSession {
    fn evaluate(&mut self) -> Result<Evaluation> {
        let mut enc = self.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in &self.forward {
                self.record(&mut pass, d, self.cur);
            }
        }
        let words = if self.has_val {
            2 * RESULT_WORDS
        } else {
            RESULT_WORDS
        };
        let bytes = self
            .ctx
            .read(enc, &self.result, &self.result_staging, 4 * words as u64)?;
        self.evaluated = true;
        Ok(self.decode(&bytemuck::pod_collect_to_vec(&bytes)))
    }

    fn update(&mut self) -> Result<()> {
        if !self.evaluated {
            return Err(Error::Config("update() needs an evaluate() first".into()));
        }
        // Recorded lazily, in front of the next evaluate's forward pass: one submission
        // and one readback per iteration.
        self.cur = 1 - self.cur;
        self.pending = true;
        self.evaluated = false;
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        self.read_params(Some(self.cur))
    }

    fn previous_params(&mut self) -> Result<Vec<f32>> {
        self.read_params(Some(1 - self.cur))
    }

    fn save_best(&mut self) -> Result<()> {
        // Recorded with the next submission, after any pending update: that update writes
        // the other buffer, so params[cur] is the same before and after it.
        self.pending_best = Some(self.cur);
        Ok(())
    }

    fn best_params(&mut self) -> Result<Vec<f32>> {
        self.read_params(None)
    }

    fn adapter(&self) -> Option<AdapterDesc> {
        Some(self.ctx.adapter.clone())
    }

    fn supports_chunks(&self, r: &ChunkRule) -> bool {
        let copy_groups = (self.param_bytes / 4).div_ceil(WORKGROUP as u64);
        r.rule.max_iter < u64::from(u32::MAX)
            && r.rule.eval_every <= u64::from(u32::MAX)
            && copy_groups <= u64::from(self.ctx.limits.max_compute_workgroups_per_dimension)
    }

    fn run_chunk(&mut self, r: &ChunkRule, start: &ChunkStart, k: u32) -> Result<Vec<ChunkEntry>> {
        if !self.supports_chunks(r) {
            return Err(Error::Config(
                "this run cannot be chunked; use --sync every".into(),
            ));
        }
        let max_k = self.looped.as_ref().map_or(u32::MAX, |l| l.max_k);
        let k = k.clamp(1, self.chunks.capacity.min(max_k));
        let n_args = self.live_args.len() / 3 - 1;
        let copy_groups = if r.restore_best {
            (self.param_bytes / 4).div_ceil(WORKGROUP as u64) as u32
        } else {
            0
        };
        let rule_words = chunk_rule_words(r, self.has_val, n_args as u32, copy_groups);
        let kit = &self.chunks;
        let mut st = kit.last_state;
        if start.adopt_candidate {
            st.copy_within(8..11, 4); // best, best_a, best_b ← cand, cand_a, cand_b
        }
        st[0] = start.t as u32;
        st[1] = 0;
        st[2] = 0;
        st[3] = start.has_best as u32;
        st[7] = start.wait.min(u64::from(u32::MAX)) as u32;
        let q = &self.ctx.queue;
        q.write_buffer(&kit.rule, 0, bytemuck::cast_slice(&rule_words));
        q.write_buffer(&kit.state, 0, bytemuck::cast_slice(&st));
        q.write_buffer(&self.args, 0, bytemuck::cast_slice(&self.live_args));

        // Iteration i of the chunk has its weights in params[base ^ ((i + shift) & 1)].
        let (enc, base, shift) = if let Some(lc) = &self.looped {
            // lr_loop.wgsl applies a pending update itself, before the first evaluation.
            let shift = usize::from(self.pending);
            let base = self.cur ^ shift;
            let mut words = lc.words;
            words[3] = k;
            words[6] = shift as u32;
            q.write_buffer(&lc.cfg, 0, bytemuck::cast_slice(&words));
            self.pending = false;
            let mut enc = self.encoder();
            if let Some(lc) = &self.looped {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&self.pipelines[LOOP]);
                pass.set_bind_group(0, &lc.groups[base], &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
            (enc, base, shift)
        } else {
            (self.record_chunk(r, k, n_args), self.cur, 0)
        };
        // The chunk may zero dispatch sizes, whatever happens below.
        self.args_stale = true;
        let kit = &self.chunks;
        let state_bytes = 4 * STATE_WORDS as u64;
        let history_bytes = 4 * (ENTRY_WORDS * k as usize) as u64;
        let bytes = self.ctx.read_parts(
            enc,
            &[(&kit.state, state_bytes), (&kit.history, history_bytes)],
            &kit.staging,
        )?;
        let words: &[u32] = bytemuck::cast_slice(&bytes);
        let mut state = [0u32; STATE_WORDS];
        state.copy_from_slice(&words[..STATE_WORDS]);
        let ran = state[1] as usize;
        if ran == 0 || ran > k as usize {
            return Err(Error::Gpu(format!(
                "the device stop rule ran {ran} of {k} iterations"
            )));
        }
        let entries = words[STATE_WORDS..]
            .chunks_exact(ENTRY_WORDS)
            .take(ran)
            .map(|e| ChunkEntry {
                t: u64::from(e[16]),
                eval: self.decode(&e[..2 * RESULT_WORDS]),
                checked: e[17] & 1 != 0,
                improved: e[17] & 2 != 0,
                paused: e[17] & 4 != 0,
            })
            .collect();
        self.chunks.last_state = state;
        self.cur = base ^ ((ran - 1 + shift) & 1);
        self.pending = false;
        self.evaluated = true;
        Ok(entries)
    }

    fn logits(&mut self) -> Result<Vec<f32>> {
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
                pass.set_pipeline(&self.pipelines[LOOP]);
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

    /// Each of the model's buffers is checked against the binding limit from the shapes alone,
    /// and the error names it (not the rows).
    #[test]
    fn model_buffers_past_the_binding_limit_are_named() {
        use crate::data::{Demo, DemoOptions};
        use crate::model::Activation;
        let ctx = match GpuContext::open_with_limits(None, |l| {
            l.max_storage_buffer_binding_size = 1 << 20;
        }) {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but no GPU adapter is available: {e}"
                );
                eprintln!("SKIPPED: no GPU adapter for the binding-limit checks: {e}");
                return;
            }
        };
        let opts = DemoOptions {
            rows: Some(10),
            features: None,
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
}

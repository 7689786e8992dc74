//! The GPU backend: wgpu compute pipelines over the kernels in `shaders/`.
//!
//! Device setup (`GpuContext`) is kept apart from the work (`GpuSession`) so tests and tools
//! can open a device once and reuse the pieces. All buffers, pipelines and bind groups are
//! made when the session opens; an iteration only records dispatches.

use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::backend::{AdapterDesc, Evaluation, Session, SessionConfig};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::metrics::Counts;
use crate::model::{LayerLayout, ModelSpec};

const DENSE_FORWARD: &str = include_str!("../../shaders/dense_forward.wgsl");
const LOSS_METRICS: &str = include_str!("../../shaders/loss_metrics.wgsl");
const DENSE_GRAD_UPDATE: &str = include_str!("../../shaders/dense_grad_update.wgsl");
const DENSE_BACKPROP: &str = include_str!("../../shaders/dense_backprop.wgsl");

/// Invocations per workgroup of the element-wise kernels (forward, backprop).
const WORKGROUP: usize = 64;

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
        Ok(GpuContext {
            device,
            queue,
            adapter: describe(&adapter.get_info()),
            limits,
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
                compilation_options: Default::default(),
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

    /// Copies `bytes` of `src` into `staging` after the work in `encoder`, submits, waits and
    /// returns the bytes.
    fn read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        staging: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        encoder.copy_buffer_to_buffer(src, 0, staging, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, ..bytes, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        if let Some(e) = self.take_error() {
            return Err(Error::Gpu(e));
        }
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
}

pub struct GpuSession {
    ctx: GpuContext,
    pipelines: Vec<wgpu::ComputePipeline>,
    /// The training rows' forward passes and loss, then the validation rows' (if any).
    forward: Vec<Dispatch>,
    /// In recording order: last layer first; each grad-update followed by its backprop.
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
    /// `save_best` was asked for the weights in params[k]; copied before the next update.
    pending_best: Option<usize>,
    evaluated: bool,
}

const FORWARD: usize = 0;
const LOSS: usize = 1;
const GRAD: usize = 2;
const BACKPROP: usize = 3;
/// 32-bit words of `result` per set of rows.
const RESULT_WORDS: usize = 8;

/// One set of rows on the device: features and per-layer outputs in `acts`.
struct DeviceRows {
    /// X [n, f] at 0, then each layer's output [n, out_l] at `out_off[l]`.
    acts: wgpu::Buffer,
    out_off: Vec<usize>,
}

impl DeviceRows {
    fn new(ctx: &GpuContext, what: &str, data: &Dataset, layout: &[LayerLayout]) -> Result<Self> {
        let n = data.rows;
        let mut out_off = Vec::new();
        let mut len = n * data.features;
        for l in layout {
            out_off.push(len);
            len += n * l.outputs;
        }
        check_size(
            ctx,
            &format!("the {what} features and activations"),
            len,
            data,
        )?;
        let mut init = vec![0.0f32; len];
        init[..data.x.len()].copy_from_slice(&data.x);
        Ok(DeviceRows {
            acts: ctx.storage(what, &init),
            out_off,
        })
    }

    fn in_off(&self, l: usize) -> usize {
        if l == 0 { 0 } else { self.out_off[l - 1] }
    }

    /// The forward dispatches of every layer, then the loss/metrics reduction into
    /// `result[result_off..]`, writing ∂L/∂z into `dz` at `dz_off`.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        ctx: &GpuContext,
        pipelines: &[wgpu::ComputePipeline],
        params: &[wgpu::Buffer; 2],
        data: &Dataset,
        spec: &ModelSpec,
        layout: &[LayerLayout],
        (dz, dz_off): (&wgpu::Buffer, usize),
        (result, result_off): (&wgpu::Buffer, usize),
    ) -> Result<Vec<Dispatch>> {
        let n = data.rows;
        let u = |v: usize| v as u32;
        let last = layout.len() - 1;
        let mut out = Vec::new();
        for (l, lay) in layout.iter().enumerate() {
            let act = if l == last { 0 } else { spec.activation.code() };
            let words = [
                u(n),
                u(lay.inputs),
                u(lay.outputs),
                u(self.in_off(l)),
                u(self.out_off[l]),
                u(lay.w_off),
                u(lay.b_off),
                act,
            ];
            let cfg = ctx.uniform("dense_forward cfg", &words);
            out.push(Dispatch {
                pipeline: FORWARD,
                groups: [0, 1]
                    .map(|k| ctx.bind_group(&pipelines[FORWARD], &[&params[k], &self.acts, &cfg])),
                grid: ctx.grid((n * lay.outputs).div_ceil(WORKGROUP))?,
            });
        }
        let words = [
            u(n),
            u(self.out_off[last]),
            u(dz_off),
            (1.0f32 / n as f32).to_bits(),
            u(result_off),
            0,
            0,
            0,
        ];
        let cfg = ctx.uniform("loss_metrics cfg", &words);
        let group = ctx.bind_group(
            &pipelines[LOSS],
            &[
                &self.acts,
                &ctx.storage("labels", &data.y),
                dz,
                result,
                &cfg,
            ],
        );
        out.push(Dispatch {
            pipeline: LOSS,
            groups: [group.clone(), group],
            grid: (1, 1),
        });
        Ok(out)
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
        let n = data.rows;
        let layout = spec.layout();
        // deltas: each layer's ∂L/∂Z [n, out_l] on the training rows, at d_off[l].
        let mut d_off = Vec::new();
        let mut deltas_len = 0;
        for l in &layout {
            d_off.push(deltas_len);
            deltas_len += n * l.outputs;
        }
        check_size(&ctx, "the gradients per row", deltas_len, data)?;
        check_size(&ctx, "the parameters", cfg.params.len(), data)?;

        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);

        let train_rows = DeviceRows::new(&ctx, "training", data, &layout)?;
        let deltas = ctx.storage("deltas", &vec![0.0f32; deltas_len]);
        let params = [
            ctx.storage("params0", &cfg.params),
            ctx.storage("params1", &cfg.params),
        ];
        let best = ctx.storage("best", &cfg.params);
        let result_bytes = (4 * 2 * RESULT_WORDS) as u64;
        let result = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("result"),
            size: result_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let param_bytes = 4 * cfg.params.len() as u64;
        let result_staging = ctx.readback("result staging", result_bytes);
        let params_staging = ctx.readback("params staging", param_bytes);
        let pipelines = vec![
            ctx.pipeline("dense_forward", DENSE_FORWARD),
            ctx.pipeline("loss_metrics", LOSS_METRICS),
            ctx.pipeline("dense_grad_update", DENSE_GRAD_UPDATE),
            ctx.pipeline("dense_backprop", DENSE_BACKPROP),
        ];
        let last = layout.len() - 1;
        let mut forward = train_rows.forward(
            &ctx,
            &pipelines,
            &params,
            data,
            spec,
            &layout,
            (&deltas, d_off[last]),
            (&result, 0),
        )?;
        if let Some(v) = val {
            let val_rows = DeviceRows::new(&ctx, "validation", v, &layout)?;
            // The validation rows' ∂L/∂z is written but never used.
            let scratch = ctx.storage("validation dz", &vec![0.0f32; v.rows]);
            forward.extend(val_rows.forward(
                &ctx,
                &pipelines,
                &params,
                v,
                spec,
                &layout,
                (&scratch, 0),
                (&result, RESULT_WORDS),
            )?);
        }

        // Variant k of a backward dispatch writes params[k] from the old weights params[1 − k].
        let u = |v: usize| v as u32;
        let acts = &train_rows.acts;
        let mut backward = Vec::new();
        for l in (0..layout.len()).rev() {
            let lay: LayerLayout = layout[l];
            let in_off = train_rows.in_off(l);
            let words = [
                u(n),
                u(lay.inputs),
                u(lay.outputs),
                u(in_off),
                u(d_off[l]),
                u(lay.w_off),
                u(lay.b_off),
                cfg.lr.to_bits(),
            ];
            let grad_cfg = ctx.uniform("dense_grad_update cfg", &words);
            backward.push(Dispatch {
                pipeline: GRAD,
                groups: [0, 1].map(|k| {
                    ctx.bind_group(
                        &pipelines[GRAD],
                        &[&params[1 - k], &params[k], acts, &deltas, &grad_cfg],
                    )
                }),
                grid: ctx.grid(lay.outputs * (lay.inputs + 1))?,
            });
            if l > 0 {
                let words = [
                    u(n),
                    u(lay.inputs),
                    u(lay.outputs),
                    u(in_off),
                    u(d_off[l]),
                    u(d_off[l - 1]),
                    u(lay.w_off),
                    spec.activation.code(),
                ];
                let back_cfg = ctx.uniform("dense_backprop cfg", &words);
                backward.push(Dispatch {
                    pipeline: BACKPROP,
                    groups: [0, 1].map(|k| {
                        ctx.bind_group(
                            &pipelines[BACKPROP],
                            &[&params[1 - k], acts, &deltas, &back_cfg],
                        )
                    }),
                    grid: ctx.grid((n * lay.inputs).div_ceil(WORKGROUP))?,
                });
            }
        }

        if let Some(e) = pollster::block_on(validation.pop()) {
            return Err(Error::Gpu(format!("setting up the session: {e}")));
        }
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(Error::TooLarge(format!(
                "the GPU ran out of memory for {} rows × {} features: {e}",
                data.rows, data.features
            )));
        }
        Ok(GpuSession {
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
        })
    }

    fn record(&self, pass: &mut wgpu::ComputePass, d: &Dispatch, variant: usize) {
        pass.set_pipeline(&self.pipelines[d.pipeline]);
        pass.set_bind_group(0, &d.groups[variant], &[]);
        pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
    }

    /// An encoder that starts with the pending update and the pending copy of the best
    /// weights, if any.
    fn encoder(&mut self) -> wgpu::CommandEncoder {
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

fn check_size(ctx: &GpuContext, what: &str, elements: usize, data: &Dataset) -> Result<()> {
    let bytes = 4 * elements as u64;
    let limit = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    if bytes > limit {
        return Err(Error::TooLarge(format!(
            "{what} need {bytes} bytes for {} rows × {} features, more than the {limit} bytes \
             one storage buffer may hold on {}; use fewer rows or --backend cpu",
            data.rows, data.features, ctx.adapter.name
        )));
    }
    Ok(())
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
        let w: &[u32] = bytemuck::cast_slice(&bytes);
        let counts = |w: &[u32]| Counts {
            loss_sum: f32::from_bits(w[0]) as f64,
            tp: w[1] as u64,
            fp: w[2] as u64,
            fn_: w[3] as u64,
            tn: w[4] as u64,
        };
        self.evaluated = true;
        Ok(Evaluation {
            train: counts(&w[..RESULT_WORDS]),
            val: self.has_val.then(|| counts(&w[RESULT_WORDS..])),
        })
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
}

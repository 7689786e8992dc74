//! Device opening and adapter choice: the wgpu instance, the adapters it sees, and
//! [`GpuContext`], an opened device with its limits and the helpers every part builds with.

use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::kernels::Kernel;
use super::plan::{CPU_LOOP_BUDGET, CPU_LOOP_WORKGROUP, KernelPath};
use crate::backend::AdapterDesc;
use crate::error::{Error, Result};

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
    /// The kernel path every session on this context must take (`None` when opened: the
    /// planner's choice). Where the path does not apply to the model or the data does not fit
    /// it, a session fails. Tests and `wgtrain bench --gpu-kernels` set it.
    pub force_path: Option<KernelPath>,
    /// Loop back-edges one invocation may take, where the driver bounds them (CPU adapters).
    pub loop_edge_budget: Option<u64>,
    /// Invocations of the one-workgroup kernel: a power of two in
    /// 2..=[`LOOP_MAX_WORKGROUP`](super::LOOP_MAX_WORKGROUP) (8 on CPU adapters, 64 on others
    /// when opened).
    pub loop_workgroup: u32,
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
            force_path: None,
            loop_edge_budget: cpu.then_some(CPU_LOOP_BUDGET),
            loop_workgroup: if cpu {
                CPU_LOOP_WORKGROUP
            } else {
                super::LOOP_MAX_WORKGROUP
            },
            errors,
        })
    }

    /// The first error wgpu reported since the last call, if any.
    pub(super) fn take_error(&self) -> Option<String> {
        let mut v = self.errors.lock().ok()?;
        if v.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut *v).join("\n"))
        }
    }

    /// A storage buffer holding `data`.
    pub(super) fn storage(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        self.storage_of(label, data)
    }

    /// A storage buffer holding `data`, e.g. of the Pod layouts of [`super::kernels`].
    pub(super) fn storage_of<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// A uniform buffer holding `value`, one of the Pod layouts of [`super::kernels`].
    pub(super) fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    pub(super) fn readback(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub(super) fn pipeline(&self, kernel: Kernel) -> wgpu::ComputePipeline {
        self.pipeline_with(kernel, &[])
    }

    /// A pipeline with its shader's override constants set.
    pub(super) fn pipeline_with(
        &self,
        kernel: Kernel,
        constants: &[(&str, f64)],
    ) -> wgpu::ComputePipeline {
        let label = kernel.name();
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
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

    pub(super) fn bind_group(
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
    pub(super) fn grid(&self, groups: usize) -> Result<(u32, u32)> {
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
    pub(super) fn wait(&self) -> Result<()> {
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
    pub(super) fn read(
        &self,
        encoder: wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        staging: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        self.read_parts(encoder, &[(src, bytes)], staging)
    }

    /// As `read`, for the leading bytes of several buffers, laid end to end in `staging`.
    pub(super) fn read_parts(
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

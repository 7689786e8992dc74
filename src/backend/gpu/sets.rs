//! The dispatches of one set of rows (training or validation): per segment the forward
//! kernels of the session's path, the loss and (training) the gradient, then the stats
//! reduction and the update, each with its uniform.

use super::device::GpuContext;
use super::kernels::*;
use super::optimizer::OptBuffers;
use super::plan::{Cut, KernelPath, STAT_WORDS};
use crate::data::Dataset;
use crate::error::Result;
use crate::memory;
use crate::model::{LayerLayout, ModelSpec};

/// One dispatch, recorded every iteration: a pipeline, its bind groups for each of the two
/// weight buffers being current, and its grid.
pub(super) struct Dispatch {
    pub kernel: Kernel,
    pub groups: [wgpu::BindGroup; 2],
    pub grid: (u32, u32),
    /// Its entry in the indirect-dispatch buffer.
    pub arg: usize,
}

/// One set of rows (training or validation) on the device, cut in segments.
pub(super) struct DeviceSet {
    /// Evaluation: the passes over every segment, then the stats reduction into `result`.
    pub forward: Vec<Dispatch>,
    /// Training only: the gradient of every segment (layered kernels), then the update.
    pub backward: Vec<Dispatch>,
    /// Each segment's logits: buffer, byte offset, words (rows × outputs).
    pub logits: Vec<(wgpu::Buffer, u64, usize)>,
    /// Each segment's activations (its rows' features first, [rows, f]) and labels.
    pub segments: Vec<(wgpu::Buffer, wgpu::Buffer)>,
}

/// What every set of rows is built against.
pub(super) struct Shared<'a> {
    pub path: KernelPath,
    pub ctx: &'a GpuContext,
    /// Indexed by `Kernel as usize`.
    pub pipelines: &'a [wgpu::ComputePipeline],
    pub params: &'a [wgpu::Buffer; 2],
    pub partials: &'a wgpu::Buffer,
    pub result: &'a wgpu::Buffer,
    /// Each set's confusion counts [2][K, K], moved into `result` by reduce_stats.
    pub tally: &'a wgpu::Buffer,
    pub spec: &'a ModelSpec,
    pub layout: &'a [LayerLayout],
    /// Words per part in `partials`: the gradient [P], then the stats.
    pub stride: usize,
    /// The optimizer's constants, scalars, flags and state, read by the update.
    pub opt: &'a OptBuffers,
    /// The device stop rule's state: the update reads which entry of the scalars is its own.
    pub stop: &'a wgpu::Buffer,
}

impl Shared<'_> {
    fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.ctx.uniform(label, value)
    }

    /// A dispatch whose bind group is the same for both weight buffers.
    fn fixed(&self, kernel: Kernel, buffers: &[&wgpu::Buffer], grid: (u32, u32)) -> Dispatch {
        let group = self
            .ctx
            .bind_group(&self.pipelines[kernel as usize], buffers);
        Dispatch {
            kernel,
            groups: [group.clone(), group],
            grid,
            arg: 0,
        }
    }

    /// A dispatch whose variant k binds `buffers(k)`.
    fn variants<'b>(
        &self,
        kernel: Kernel,
        buffers: impl Fn(usize) -> Vec<&'b wgpu::Buffer>,
        grid: (u32, u32),
    ) -> Dispatch {
        let pipeline = &self.pipelines[kernel as usize];
        Dispatch {
            kernel,
            groups: [0, 1].map(|k| self.ctx.bind_group(pipeline, &buffers(k))),
            grid,
            arg: 0,
        }
    }

    /// Builds one set: its parts are `part0..part0 + cut.parts(rows)` of `partials`, its
    /// stats land in `result` as set `out_set` (0 training, 1 validation); `train` adds the
    /// gradient and the update.
    pub fn set(
        &self,
        what: &str,
        data: &Dataset,
        cut: Cut,
        part0: usize,
        out_set: u32,
        train: bool,
    ) -> Result<DeviceSet> {
        let (n, f) = (data.rows, data.features);
        let u = |v: usize| v as u32;
        let inv_rows = 1.0f32 / n as f32;
        let params_len = self.stride - STAT_WORDS;
        let k = self.spec.outputs();
        let classes = self.spec.classes();
        let cells = classes * classes;
        let tally_off = u(out_set as usize * cells);
        let mut set = DeviceSet {
            forward: Vec::new(),
            backward: Vec::new(),
            logits: Vec::new(),
            segments: Vec::new(),
        };
        // lr_pass.wgsl and mlp_pass.wgsl keep X and z; the layered kernels every layer's output.
        let one_pass = self.path != KernelPath::Layered;
        let row_words = if one_pass {
            f + k
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
            set.segments.push((acts.clone(), labels.clone()));
            if one_pass {
                let pass = Pass {
                    rows: u(len),
                    features: u(f),
                    z_off: u(len * f),
                    part0: u(part0 + r0 / cut.block),
                    stride: u(self.stride),
                    grad: u32::from(train),
                    inv_rows,
                    block: u(cut.block),
                    tally_off,
                    ..Default::default()
                };
                let (kernel, cfg) = if self.path == KernelPath::OnePassMlp {
                    let (l0, l1) = (self.layout[0], self.layout[1]);
                    let mlp = Mlp {
                        rows: pass.rows,
                        f: pass.features,
                        z_off: pass.z_off,
                        part0: pass.part0,
                        stride: pass.stride,
                        grad: pass.grad,
                        inv_rows: pass.inv_rows,
                        block: pass.block,
                        h: u(l0.outputs),
                        act: self.spec.activation.code(),
                        w0: u(l0.w_off),
                        b0: u(l0.b_off),
                        w1: u(l1.w_off),
                        b1: u(l1.b_off),
                        params: u(params_len),
                        tally_off,
                        ..Default::default()
                    };
                    (Kernel::MlpPass, self.uniform("mlp_pass cfg", &mlp))
                } else {
                    (Kernel::LrPass, self.uniform("lr_pass cfg", &pass))
                };
                let grid = self.ctx.grid(cut.parts(len))?;
                set.forward.push(self.variants(
                    kernel,
                    |v| {
                        vec![
                            &self.params[v],
                            &acts,
                            &labels,
                            self.partials,
                            &cfg,
                            self.tally,
                        ]
                    },
                    grid,
                ));
                set.logits.push((acts, 4 * (len * f) as u64, len * k));
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
            let last = self.layout.len() - 1;
            for (l, lay) in self.layout.iter().enumerate() {
                let act = if l == last {
                    0
                } else {
                    self.spec.activation.code()
                };
                let (dense, groups) = Dense::layer(len, lay, in_off(l), out_off[l], act);
                let cfg = self.uniform("dense_forward cfg", &dense);
                let grid = self.ctx.grid(groups)?;
                set.forward.push(self.variants(
                    Kernel::DenseForward,
                    |k| vec![&self.params[k], &acts, &cfg],
                    grid,
                ));
            }
            // ∂L/∂Z of every layer (training), or only the logits' (never used).
            let deltas = self
                .ctx
                .storage("deltas", &vec![0.0f32; if train { d } else { len * k }]);
            let loss = LossCfg {
                rows: u(len),
                logit_off: u(out_off[last]),
                delta_off: if train { u(d_off[last]) } else { 0 },
                inv_rows,
                result_off: u((part0 + r0 / cut.block) * self.stride + params_len),
                tally_off,
                ..Default::default()
            };
            let cfg = self.uniform("loss_metrics cfg", &loss);
            set.forward.push(self.fixed(
                Kernel::LossMetrics,
                &[&acts, &labels, &deltas, self.partials, &cfg, self.tally],
                (1, 1),
            ));
            set.logits
                .push((acts.clone(), 4 * out_off[last] as u64, len * k));
            if !train {
                continue;
            }
            // Variant k of a backward dispatch reads the weights before the step, params[1 − k].
            for l in (0..self.layout.len()).rev() {
                let lay = self.layout[l];
                let tiles_i = (lay.inputs + 1).div_ceil(GRAD_TILE);
                let tiles = lay.outputs.div_ceil(GRAD_TILE) * tiles_i;
                let grad = GradCfg {
                    rows: u(len),
                    in_dim: u(lay.inputs),
                    out_dim: u(lay.outputs),
                    in_off: u(in_off(l)),
                    d_off: u(d_off[l]),
                    w_off: u(lay.w_off),
                    b_off: u(lay.b_off),
                    part_off: u((part0 + r0 / cut.block) * self.stride),
                    stride: u(self.stride),
                    chunk: u(cut.block),
                    tiles_i: u(tiles_i),
                    tiles: u(tiles),
                };
                let cfg = self.uniform("dense_grad cfg", &grad);
                let grid = self.ctx.grid(tiles * cut.parts(len))?;
                set.backward.push(self.fixed(
                    Kernel::DenseGrad,
                    &[&acts, &deltas, self.partials, &cfg],
                    grid,
                ));
                if l > 0 {
                    let back = BackCfg {
                        rows: u(len),
                        in_dim: u(lay.inputs),
                        out_dim: u(lay.outputs),
                        in_off: u(in_off(l)),
                        d_off: u(d_off[l]),
                        prev_d_off: u(d_off[l - 1]),
                        w_off: u(lay.w_off),
                        act: self.spec.activation.code(),
                    };
                    let cfg = self.uniform("dense_backprop cfg", &back);
                    let grid = self.ctx.grid((len * lay.inputs).div_ceil(WORKGROUP))?;
                    set.backward.push(self.variants(
                        Kernel::DenseBackprop,
                        |k| vec![&self.params[1 - k], &acts, &deltas, &cfg],
                        grid,
                    ));
                }
            }
        }
        let stats = Stats {
            part0: u(part0),
            parts: u(cut.parts(n)),
            stride: u(self.stride),
            col: u(params_len),
            out_set,
            cells: u(cells),
            ..Default::default()
        };
        let cfg = self.uniform("reduce_stats cfg", &stats);
        set.forward.push(self.fixed(
            Kernel::ReduceStats,
            &[self.partials, self.result, &cfg, self.tally],
            (1, 1),
        ));
        if train {
            // Training parts come first in `partials`, so the update sums parts 0..parts.
            let update = Update {
                params: u(params_len),
                parts: u(cut.parts(n)),
                stride: u(self.stride),
                ..Default::default()
            };
            let cfg = self.uniform("reduce_update cfg", &update);
            let grid = self.ctx.grid(params_len.div_ceil(WORKGROUP))?;
            let o = self.opt;
            set.backward.push(self.variants(
                Kernel::ReduceUpdate,
                |k| {
                    vec![
                        &self.params[1 - k],
                        &self.params[k],
                        self.partials,
                        &cfg,
                        &o.consts,
                        &o.steps,
                        &o.flags,
                        &o.state[0],
                        &o.state[1],
                        self.stop,
                    ]
                },
                grid,
            ));
        }
        Ok(set)
    }
}

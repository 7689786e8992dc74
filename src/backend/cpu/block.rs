//! One block of rows on the fast path: its tiles' forward pass, loss, counts and backward
//! pass while the rows are in cache, and its partial sums.

use super::kernels::{
    BceSum, GEMM_K, GEMM_ROWS, LANES, Strided, activate_all, backprop_activation, forward_narrow,
    gemm_acc, loss_and_delta, softmax_loss_and_delta, sum,
};
use super::{BLOCK_ROWS, Simd, TILE_ROWS};
use crate::metrics::Counts;
use crate::model::{Activation, LayerLayout};

/// The weights of one iteration, shared read-only by all blocks.
pub(super) struct Net<'a> {
    pub(super) layout: &'a [LayerLayout],
    pub(super) act: Activation,
    /// Laid out as `ModelSpec::layout`.
    pub(super) params: &'a [f32],
    /// The same layout with each W ([outputs, inputs]) stored transposed ([inputs, outputs]).
    pub(super) wt: &'a [f32],
}

/// Writes each layer's W ([outputs, inputs]) of `params` transposed ([inputs, outputs]) into
/// the same place of `wt`, for the wide layers' matrix products.
pub(super) fn transpose_weights(layout: &[LayerLayout], params: &[f32], wt: &mut [f32]) {
    for lay in layout {
        let w = &params[lay.w_off..lay.b_off]; // [outputs, inputs]
        let wt = &mut wt[lay.w_off..lay.b_off]; // [inputs, outputs]
        for o in 0..lay.outputs {
            for i in 0..lay.inputs {
                wt[i * lay.outputs + o] = w[o * lay.inputs + i];
            }
        }
    }
}

/// Floats of a block's softmax scratch: [K, TILE_ROWS] for K logits, none for one.
pub(super) fn softmax_scratch(layout: &[LayerLayout]) -> usize {
    match layout.last() {
        Some(l) if l.outputs > 1 => TILE_ROWS * l.outputs,
        _ => 0,
    }
}

/// Whether a layer's forward pass uses dot products with W rather than rows of Wᵀ.
fn is_narrow(lay: &LayerLayout) -> bool {
    lay.outputs < LANES
}

/// One block of rows and everything its pass writes: its partial sums and its tiles' scratch.
pub(super) struct Block {
    /// The block's rows are start..start + rows.
    pub(super) start: usize,
    pub(super) rows: usize,
    pub(super) counts: Counts,
    /// The loss sum of a sigmoid head (one logit).
    bce: BceSum,
    /// The loss sum of a softmax head (K logits), each row's loss in f32 added in row order.
    ce: f64,
    /// Σ over the block's rows of ∇ of the mean loss, laid out as the parameters (empty for
    /// validation rows).
    pub(super) grad: Vec<f32>,
    /// outs[l]: [TILE_ROWS, outputs_l], the activation output of layer l for one tile.
    outs: Vec<Vec<f32>>,
    /// ds[l]: [TILE_ROWS, outputs_l], ∂L/∂Z of layer l for one tile (only the last layer's
    /// is used for validation rows).
    ds: Vec<Vec<f32>>,
    /// [GEMM_K · GEMM_ROWS], [`gemm_acc`]'s copy of A.
    pack: Vec<[f32; 4]>,
    /// [K, TILE_ROWS], a softmax tile's transposed logits (empty for one logit).
    soft: Vec<f32>,
}

impl Block {
    /// The blocks covering `n` rows, with partial gradients if `train`; the counts have
    /// `classes` classes.
    pub(super) fn cover(
        n: usize,
        layout: &[LayerLayout],
        params: usize,
        train: bool,
        classes: usize,
    ) -> Vec<Block> {
        let scratch = || -> Vec<Vec<f32>> {
            layout
                .iter()
                .map(|l| vec![0.0; TILE_ROWS * l.outputs])
                .collect()
        };
        (0..n.div_ceil(BLOCK_ROWS))
            .map(|i| Block {
                start: i * BLOCK_ROWS,
                rows: BLOCK_ROWS.min(n - i * BLOCK_ROWS),
                counts: Counts::new(classes),
                bce: BceSum::new(),
                ce: 0.0,
                grad: if train { vec![0.0; params] } else { Vec::new() },
                outs: scratch(),
                ds: scratch(),
                pack: vec![[0.0; 4]; GEMM_K * GEMM_ROWS],
                soft: vec![0.0; softmax_scratch(layout)],
            })
            .collect()
    }

    /// One pass over the block's rows of `x` ([n, f]) and `y` ([n]): counts and, when `train`
    /// is given (1/n and the block's slice of the logits, [rows, outputs]), the partial
    /// gradient; compiled for the instruction set `simd`.
    pub(super) fn run(
        &mut self,
        net: &Net,
        x: &[f32],
        y: &[f32],
        train: Option<(f32, &mut [f32])>,
        simd: Simd,
    ) {
        match simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Simd::Avx2` is only ever chosen where the CPU reports AVX2.
            Simd::Avx2 => unsafe { self.run_avx2(net, x, y, train) },
            _ => self.run_inner::<false>(net, x, y, train),
        }
    }

    /// [`Self::run_inner`] with AVX2 enabled: every helper below it is `inline(always)`, so
    /// the whole pass is compiled for 8-wide vectors.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&mut self, net: &Net, x: &[f32], y: &[f32], train: Option<(f32, &mut [f32])>) {
        self.run_inner::<true>(net, x, y, train)
    }

    #[inline(always)]
    fn run_inner<const AVX2: bool>(
        &mut self,
        net: &Net,
        x: &[f32],
        y: &[f32],
        mut train: Option<(f32, &mut [f32])>,
    ) {
        let f = net.layout[0].inputs;
        let last = net.layout.len() - 1;
        let out = net.layout[last].outputs;
        let inv_n = train.as_ref().map_or(0.0, |t| t.0);
        self.counts.loss_sum = 0.0;
        self.counts.confusion.fill(0);
        self.bce = BceSum::new();
        self.ce = 0.0;
        self.grad.fill(0.0);
        for t0 in (0..self.rows).step_by(TILE_ROWS) {
            let r0 = self.start + t0;
            let rows = TILE_ROWS.min(self.rows - t0);
            // The next tile's rows, prefetched row by row during this tile's forward pass.
            let ahead = &x[((r0 + rows) * f).min(x.len())..((r0 + 2 * rows) * f).min(x.len())];
            let x = &x[r0 * f..(r0 + rows) * f]; // [rows, f]
            let y = &y[r0..r0 + rows]; // [rows]
            self.forward::<AVX2>(net, x, rows, ahead);
            let z = &self.outs[last][..rows * out];
            let d = &mut self.ds[last][..rows * out];
            if out == 1 {
                loss_and_delta(z, y, d, inv_n, &mut self.bce, &mut self.counts);
            } else {
                let (t, confusion) = (&mut self.soft, &mut self.counts.confusion);
                softmax_loss_and_delta(z, y, d, t, out, inv_n, &mut self.ce, confusion);
            }
            if let Some((_, logits)) = train.as_mut() {
                logits[t0 * out..(t0 + rows) * out].copy_from_slice(z);
                self.backward(net, x, rows);
            }
        }
        self.counts.loss_sum = if out == 1 { self.bce.total() } else { self.ce };
    }

    /// The blocks covering `n` rows for forward passes only: tile outputs, no gradient and no
    /// ∂L/∂Z scratch.
    pub(super) fn cover_forward(n: usize, layout: &[LayerLayout]) -> Vec<Block> {
        (0..n.div_ceil(BLOCK_ROWS))
            .map(|i| Block {
                start: i * BLOCK_ROWS,
                rows: BLOCK_ROWS.min(n - i * BLOCK_ROWS),
                counts: Counts::default(),
                bce: BceSum::new(),
                ce: 0.0,
                grad: Vec::new(),
                outs: layout
                    .iter()
                    .map(|l| vec![0.0; TILE_ROWS * l.outputs])
                    .collect(),
                ds: Vec::new(),
                pack: vec![[0.0; 4]; GEMM_K * GEMM_ROWS],
                soft: Vec::new(),
            })
            .collect()
    }

    /// The forward pass alone over the block's rows of `x` ([n, f]): writes the output
    /// layer's logits into `logits` ([rows, outputs], the block's slice), the same tile
    /// passes as [`Self::run`] so the same bits; compiled for `simd`.
    pub(super) fn run_forward(&mut self, net: &Net, x: &[f32], logits: &mut [f32], simd: Simd) {
        match simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Simd::Avx2` is only ever chosen where the CPU reports AVX2.
            Simd::Avx2 => unsafe { self.run_forward_avx2(net, x, logits) },
            _ => self.run_forward_inner::<false>(net, x, logits),
        }
    }

    /// [`Self::run_forward_inner`] with AVX2 enabled.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_forward_avx2(&mut self, net: &Net, x: &[f32], logits: &mut [f32]) {
        self.run_forward_inner::<true>(net, x, logits)
    }

    #[inline(always)]
    fn run_forward_inner<const AVX2: bool>(&mut self, net: &Net, x: &[f32], logits: &mut [f32]) {
        let f = net.layout[0].inputs;
        let last = net.layout.len() - 1;
        let out = net.layout[last].outputs;
        for t0 in (0..self.rows).step_by(TILE_ROWS) {
            let r0 = self.start + t0;
            let rows = TILE_ROWS.min(self.rows - t0);
            let ahead = &x[((r0 + rows) * f).min(x.len())..((r0 + 2 * rows) * f).min(x.len())];
            let x = &x[r0 * f..(r0 + rows) * f]; // [rows, f]
            self.forward::<AVX2>(net, x, rows, ahead);
            logits[t0 * out..(t0 + rows) * out].copy_from_slice(&self.outs[last][..rows * out]);
        }
    }

    /// Forward through every layer: Out_l [rows, outputs] = act(In [rows, inputs]·Wᵀ + b),
    /// the identity for the logit.
    #[inline(always)]
    fn forward<const AVX2: bool>(&mut self, net: &Net, x: &[f32], rows: usize, ahead: &[f32]) {
        let last = net.layout.len() - 1;
        for (l, lay) in net.layout.iter().enumerate() {
            let (done, rest) = self.outs.split_at_mut(l);
            let input: &[f32] = if l == 0 {
                x
            } else {
                &done[l - 1][..rows * lay.inputs]
            };
            let out = &mut rest[0][..rows * lay.outputs];
            let b = &net.params[lay.b_off..lay.b_off + lay.outputs]; // [outputs]
            if is_narrow(lay) {
                let w = &net.params[lay.w_off..lay.b_off]; // [outputs, inputs]
                forward_narrow::<AVX2>(
                    out,
                    input,
                    w,
                    b,
                    lay.inputs,
                    if l == 0 { ahead } else { &[] },
                );
            } else {
                let wt = &net.wt[lay.w_off..lay.b_off]; // [inputs, outputs]
                for o in out.chunks_exact_mut(lay.outputs) {
                    o.copy_from_slice(b);
                }
                let input = Strided {
                    data: input,
                    rs: lay.inputs,
                    cs: 1,
                };
                let shape = (rows, lay.inputs, lay.outputs);
                gemm_acc(out, input, wt, shape, &mut self.pack);
            }
            if l < last {
                activate_all(net.act, out);
            }
        }
    }

    /// Backward, last layer first, adding the tile's gradient to the block's.
    #[inline(always)]
    fn backward(&mut self, net: &Net, x: &[f32], rows: usize) {
        for l in (0..net.layout.len()).rev() {
            let lay = net.layout[l];
            let (i_n, o_n) = (lay.inputs, lay.outputs);
            let input: &[f32] = if l == 0 {
                x
            } else {
                &self.outs[l - 1][..rows * i_n]
            };
            let (before, here) = self.ds.split_at_mut(l);
            let d = &here[0][..rows * o_n]; // [rows, outputs]
            let (gw, gb) =
                self.grad[lay.w_off..lay.b_off + o_n].split_at_mut(lay.b_off - lay.w_off);
            // ∇W[o, i] += Σ_r D[r, o]·In[r, i], i.e. Dᵀ·In with Dᵀ read from D.
            let dt = Strided {
                data: d,
                rs: 1,
                cs: o_n,
            };
            gemm_acc(gw, dt, input, (o_n, rows, i_n), &mut self.pack);
            // ∇b[o] += Σ_r D[r, o].
            if o_n == 1 {
                gb[0] += sum(d);
            } else {
                for dr in d.chunks_exact(o_n) {
                    for (g, dv) in gb.iter_mut().zip(dr) {
                        *g += dv;
                    }
                }
            }
            // Back through the layer: D_prev[r, i] = (Σ_o D[r, o]·W[o, i])·act'(Out_prev[r, i]).
            if l > 0 {
                let w = &net.params[lay.w_off..lay.b_off]; // [outputs, inputs]
                let dprev = &mut before[l - 1][..rows * i_n]; // [rows, inputs]
                dprev.fill(0.0);
                let d = Strided {
                    data: d,
                    rs: o_n,
                    cs: 1,
                };
                gemm_acc(dprev, d, w, (rows, o_n, i_n), &mut self.pack);
                backprop_activation(net.act, dprev, input);
            }
        }
    }
}

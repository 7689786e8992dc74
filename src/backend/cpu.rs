//! The CPU backend, and the reference the GPU kernels are held to.
//!
//! Two implementations of one iteration live here:
//! - [`reference`]: plain f32 loops with shape comments. It is the definition of what an
//!   iteration computes; a unit test holds the fast path to it.
//! - [`CpuSession`], the fast path. The rows are cut into fixed blocks of [`BLOCK_ROWS`];
//!   each block is walked in tiles of [`TILE_ROWS`], and for a tile the forward pass, the
//!   loss, the confusion counts and the backward pass all run while its rows are in cache, so
//!   X is read once per iteration (and evaluate() leaves ∇L for update() to apply). Each block
//!   sums its own partial gradient, loss and counts; blocks run in parallel (rayon) and their
//!   partials are then added in block order. The block size does not depend on the thread
//!   count, so the results are bit-identical for any number of threads and any scheduling.
//!
//! The fast path computes the same quantities as the reference, in other orders of summation
//! (so to within rounding): dot products in eight lanes, four rows at a time ([`dots`]),
//! matrix products in register tiles ([`gemm_acc`]), e^−|z| by a polynomial that vectorises
//! ([`exp_neg`]), and the loss's logarithms one per few hundred rows ([`BceSum`]). Its loops
//! are written so that LLVM vectorises them for the baseline x86-64 target (SSE2) without
//! `unsafe`; the exceptions are the prefetches and the AVX2 build's dot products
//! ([`dots4_avx2`]). All scratch is allocated in [`CpuSession::new`]; an iteration allocates
//! nothing.

use rayon::prelude::*;

use crate::backend::{AdapterDesc, Evaluation, Session, SessionConfig, check_shapes};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::memory;
use crate::metrics::Counts;
use crate::model::{Activation, LayerLayout, ModelSpec};

/// softplus(z) − y·z, the binary cross-entropy of a logit, stable for any finite z.
/// Written as the WGSL kernel writes it so both round alike.
pub fn bce_from_logit(z: f32, y: f32) -> f32 {
    z.max(0.0) + (1.0 + (-z.abs()).exp()).ln() - y * z
}

pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// The hidden activation; tanh's input is clamped to ±15 as in the kernels (tanh(15) is
/// 1 in f32) so that no implementation's overflow leaks in.
pub fn activate(a: Activation, z: f32) -> f32 {
    match a {
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.clamp(-15.0, 15.0).tanh(),
        Activation::Sigmoid => sigmoid(z),
    }
}

/// dA/dZ expressed through the activation's output A.
pub fn activate_grad(act: Activation, a: f32) -> f32 {
    match act {
        Activation::Relu => {
            if a > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Tanh => 1.0 - a * a,
        Activation::Sigmoid => a * (1.0 - a),
    }
}

/// Adds one row's prediction (positive iff z ≥ 0) against its label to the confusion counts.
fn count(c: &mut Counts, z: f32, y: f32) {
    match (z >= 0.0, y == 1.0) {
        (true, true) => c.tp += 1,
        (true, false) => c.fp += 1,
        (false, true) => c.fn_ += 1,
        (false, false) => c.tn += 1,
    }
}

/// The definition of one iteration in plain loops: slow, allocating, obviously right.
pub mod reference {
    use super::*;

    /// The forward pass over `n` rows of `x` ([n, f]) with labels `y` ([n]); returns the
    /// counts, ∇ of the mean BCE laid out as `params`, and the logits ([n]).
    pub fn evaluate(
        x: &[f32],
        y: &[f32],
        params: &[f32],
        layout: &[LayerLayout],
        act: Activation,
    ) -> (Counts, Vec<f32>, Vec<f32>) {
        let n = y.len();
        let last = layout.len() - 1;
        // outs[l]: [n, outputs_l], the activation output of layer l (the logits for the last).
        let mut outs: Vec<Vec<f32>> = Vec::new();
        // Forward: Z[r, o] = b[o] + Σ_i In[r, i]·W[o, i]; Out = act(Z), identity for the logit.
        for (l, lay) in layout.iter().enumerate() {
            let input: &[f32] = if l == 0 { x } else { &outs[l - 1] };
            let w = &params[lay.w_off..lay.b_off]; // [outputs, inputs]
            let b = &params[lay.b_off..lay.b_off + lay.outputs]; // [outputs]
            let mut out = vec![0.0; n * lay.outputs];
            for r in 0..n {
                let row = &input[r * lay.inputs..(r + 1) * lay.inputs];
                for o in 0..lay.outputs {
                    let wo = &w[o * lay.inputs..(o + 1) * lay.inputs];
                    let mut z = b[o];
                    for (a, wv) in row.iter().zip(wo) {
                        z += a * wv;
                    }
                    out[r * lay.outputs + o] = if l == last { z } else { activate(act, z) };
                }
            }
            outs.push(out);
        }
        // The loss, the counts and D = ∂L/∂z = (σ(z) − y)/n of the logits ([n, 1]).
        let inv_n = 1.0 / n as f32;
        let mut c = Counts::default();
        let logits = outs[last].clone();
        let mut d = vec![0.0; n];
        for r in 0..n {
            let (z, y) = (logits[r], y[r]);
            c.loss_sum += bce_from_logit(z, y) as f64;
            d[r] = (sigmoid(z) - y) * inv_n;
            count(&mut c, z, y);
        }
        // Backward, last layer first.
        let mut grad = vec![0.0; params.len()];
        for l in (0..layout.len()).rev() {
            let lay = layout[l];
            let input: &[f32] = if l == 0 { x } else { &outs[l - 1] };
            // ∇W[o, i] = Σ_r D[r, o]·In[r, i]; ∇b[o] = Σ_r D[r, o].
            let (gw, gb) =
                grad[lay.w_off..lay.b_off + lay.outputs].split_at_mut(lay.b_off - lay.w_off);
            for r in 0..n {
                let row = &input[r * lay.inputs..(r + 1) * lay.inputs];
                for o in 0..lay.outputs {
                    let dv = d[r * lay.outputs + o];
                    gb[o] += dv;
                    for (g, a) in gw[o * lay.inputs..(o + 1) * lay.inputs].iter_mut().zip(row) {
                        *g += dv * a;
                    }
                }
            }
            // Back through the layer: D_prev[r, i] = (Σ_o D[r, o]·W[o, i])·act'(Out_prev[r, i]).
            if l > 0 {
                let w = &params[lay.w_off..lay.b_off];
                let prev_out = &outs[l - 1];
                let mut dprev = vec![0.0; n * lay.inputs];
                for r in 0..n {
                    for i in 0..lay.inputs {
                        let mut s = 0.0f32;
                        for o in 0..lay.outputs {
                            s += d[r * lay.outputs + o] * w[o * lay.inputs + i];
                        }
                        let a = prev_out[r * lay.inputs + i];
                        dprev[r * lay.inputs + i] = s * activate_grad(act, a);
                    }
                }
                d = dprev;
            }
        }
        (c, grad, logits)
    }
}

// ---- The fast path ----

/// The instruction set the fast path is compiled for. Both give the same bits: Rust never
/// fuses a multiply and an add or reorders float operations, so wider vectors only change how
/// many lanes work at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// The target's baseline (SSE2 on x86-64).
    Baseline,
    /// x86-64 with AVX2, detected at run time.
    Avx2,
}

impl Simd {
    /// The widest set this CPU supports.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Simd::Avx2;
        }
        Simd::Baseline
    }
}

/// Rows per block: the unit of parallel work and of partial sums. A constant, never derived
/// from the thread count, so that the sums, and so the results, are the same on any machine
/// state.
pub const BLOCK_ROWS: usize = 2048;
/// Rows per tile: one tile's rows and activations stay in L1/L2 from its forward pass to its
/// backward pass.
pub const TILE_ROWS: usize = 64;
/// Independent accumulators per dot product and columns per register tile: wide enough for
/// LLVM to fill whole vector registers and hide the adds' latency.
const LANES: usize = 16;

/// e^−a for a ≥ 0 to about 1 ulp (a NaN stays NaN), in plain arithmetic that LLVM vectorises,
/// unlike a call to `expf`: e^−a = 2^k·e^r with k = round(−a/ln 2) and |r| ≤ ln 2 / 2, e^r by
/// Cephes' degree-7 polynomial, 2^k through the exponent bits. Beyond a = 87 (e^−87 ≈ 1.6e-38,
/// the edge of the normal floats) it returns e^−87, which changes neither 1 + e^−a nor σ in f32.
#[inline(always)]
fn exp_neg(a: f32) -> f32 {
    let x = -(if a > 87.0 { 87.0 } else { a }); // in [−87, 0], or NaN
    // k = round(x / ln 2) in −126..=0: adding 1.5·2^23 rounds to an integer, which then sits
    // in the low bits of the mantissa (no float-to-int conversion, which would not vectorise).
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let kf = t - ROUND;
    let k = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = x - kf * 0.693_359_4 - kf * -2.121_944_4e-4; // x − k·ln 2 in two steps (Cody–Waite)
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let er = p * r * r + r + 1.0;
    er * f32::from_bits(((k + 127) << 23) as u32)
}

/// Σ over rows of [`bce_from_logit`] = max(z, 0) + ln(1 + e^−|z|) − y·z, summed as
/// Σ (max(z, 0) − y·z) + ln Π (1 + e^−|z|): one ln per few hundred rows rather than one per
/// row. Each factor lies in [1, 2], so the product is folded into the sum long before it
/// could overflow.
struct BceSum {
    sum: f64,
    prod: f64,
}

impl BceSum {
    fn new() -> Self {
        BceSum {
            sum: 0.0,
            prod: 1.0,
        }
    }

    /// One row: its logit z, label y and e = e^−|z|.
    #[inline(always)]
    fn add(&mut self, z: f32, y: f32, e: f32) {
        self.sum += (z.max(0.0) - y * z) as f64;
        self.prod *= (1.0 + e) as f64;
        if self.prod > 1e150 {
            self.sum += self.prod.ln();
            self.prod = 1.0;
        }
    }

    fn total(&self) -> f64 {
        self.sum + self.prod.ln()
    }
}

/// The loss and counts of logits z ([rows]) against labels y, added to `bce` and `c`; and
/// d = ∂L/∂z = (σ(z) − y)/n ([rows], also the scratch for e^−|z|). Three simple loops, so that
/// the exponentials and σ vectorise.
#[inline(always)]
fn loss_and_delta(
    z: &[f32],
    y: &[f32],
    d: &mut [f32],
    inv_n: f32,
    bce: &mut BceSum,
    c: &mut Counts,
) {
    for (e, z) in d.iter_mut().zip(z) {
        *e = exp_neg(z.abs());
    }
    // Rows predicted positive, truly positive, and both.
    let (mut pp, mut tt, mut tp) = (0u32, 0u32, 0u32);
    for ((&z, &y), &e) in z.iter().zip(y).zip(d.iter()) {
        bce.add(z, y, e);
        let (p, t) = ((z >= 0.0) as u32, (y == 1.0) as u32);
        pp += p;
        tt += t;
        tp += p & t;
    }
    let (pp, tt, tp) = (pp as u64, tt as u64, tp as u64);
    c.tp += tp;
    c.fp += pp - tp;
    c.fn_ += tt - tp;
    c.tn += z.len() as u64 + tp - pp - tt;
    for ((d, &z), &y) in d.iter_mut().zip(z).zip(y) {
        let e = *d;
        let r = 1.0 / (1.0 + e);
        let s = if z >= 0.0 { r } else { e * r }; // σ(z)
        *d = (s - y) * inv_n;
    }
}

/// The dot products of R rows with one weight vector w, at once: for each row, lane l (of 8)
/// adds the products of the elements k ≡ l (mod 8) of the whole eights in order, the lanes
/// meet in the tree ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), and the elements past
/// the last whole eight are added after it in order. R independent rows keep R chains of
/// adds in flight, and each eight of w is loaded once for all R. The AVX2 build computes four
/// rows with [`dots4_avx2`] instead: the same sums in the same order, so the same bits.
#[inline(always)]
fn dots<const R: usize>(rows: [&[f32]; R], w: &[f32]) -> [f32; R] {
    let whole = w.len() - w.len() % 8;
    let mut s = [[0.0f32; 8]; R];
    for (c, wc) in w[..whole].chunks_exact(8).enumerate() {
        for (sr, row) in s.iter_mut().zip(&rows) {
            let x = &row[8 * c..8 * c + 8];
            for l in 0..8 {
                sr[l] += x[l] * wc[l];
            }
        }
    }
    let mut out = [0.0f32; R];
    for ((o, v), row) in out.iter_mut().zip(&s).zip(&rows) {
        let mut z = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
        for (x, wk) in row[whole..w.len()].iter().zip(&w[whole..]) {
            z += x * wk;
        }
        *o = z;
    }
    out
}

/// [`dots`] of four rows in explicit AVX2 vectors, for the AVX2 build: LLVM vectorises the
/// plain loops across the rows there, with shuffles. The same operations in the same order
/// (a multiply then an add, never fused), so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dots4_avx2(rows: [&[f32]; 4], w: &[f32]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let whole = w.len() - w.len() % 8;
    let mut acc = [_mm256_setzero_ps(); 4];
    for (c, wc) in w[..whole].chunks_exact(8).enumerate() {
        // SAFETY: wc and each row's slice below hold 8 floats.
        let wv = unsafe { _mm256_loadu_ps(wc.as_ptr()) };
        for (a, row) in acc.iter_mut().zip(&rows) {
            let x = &row[8 * c..8 * c + 8];
            let xv = unsafe { _mm256_loadu_ps(x.as_ptr()) };
            *a = _mm256_add_ps(*a, _mm256_mul_ps(xv, wv));
        }
    }
    let mut out = [0.0f32; 4];
    for ((o, a), row) in out.iter_mut().zip(&acc).zip(&rows) {
        // t = (l0 + l4, l1 + l5, l2 + l6, l3 + l7);
        // u = ((l0 + l4) + (l2 + l6), (l1 + l5) + (l3 + l7), ..); z = u0 + u1.
        let t = _mm_add_ps(_mm256_castps256_ps128(*a), _mm256_extractf128_ps::<1>(*a));
        let u = _mm_add_ps(t, _mm_movehl_ps(t, t));
        let mut z = _mm_cvtss_f32(_mm_add_ss(u, _mm_shuffle_ps::<1>(u, u)));
        for (x, wk) in row[whole..w.len()].iter().zip(&w[whole..]) {
            z += x * wk;
        }
        *o = z;
    }
    out
}

/// Asks for the cache lines of `a` ahead of their use (x86-64 `prefetcht0`; nothing
/// elsewhere). Unlike a load, a prefetch retires at once, so prefetches spread between the
/// arithmetic keep memory busy while the arithmetic goes on.
#[inline(always)]
fn prefetch(a: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in a.chunks(16) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
}

/// Σ a, in four lanes.
#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut s = [0.0f32; 4];
    let c = a.chunks_exact(4);
    let tail: f32 = c.remainder().iter().sum();
    for q in c {
        for l in 0..4 {
            s[l] += q[l];
        }
    }
    hsum4(&s) + tail
}

/// The sum of four lanes.
#[inline(always)]
fn hsum4(h: &[f32; 4]) -> f32 {
    (h[0] + h[2]) + (h[1] + h[3])
}

/// Out[r, o] = bias[o] + In[r, :]·W[o, :] for In [rows, k], W [outputs, k], Out [rows,
/// outputs]: dot products ([`dots`], four rows at a time), for layers with few outputs (the
/// logit). Row r of `ahead` ([rows, k] or shorter, the rows to be read next) is prefetched
/// with row r of In: with 1M rows × 64 features (X from memory) this took an iteration from
/// ~29 to ~20 ms on the 2-core CI-like VM.
#[inline(always)]
fn forward_narrow<const AVX2: bool>(
    out: &mut [f32],
    input: &[f32],
    w: &[f32],
    bias: &[f32],
    k: usize,
    ahead: &[f32],
) {
    let outputs = bias.len();
    let rows = out.len() / outputs;
    let row = |r: usize| &input[r * k..(r + 1) * k];
    let mut r = 0;
    while r < rows {
        let n = if r + 4 <= rows { 4 } else { 1 };
        for i in r..r + n {
            if let Some(a) = ahead.get(i * k..(i + 1) * k) {
                prefetch(a);
            }
        }
        for (j, (wj, bj)) in w.chunks_exact(k).zip(bias).enumerate() {
            if n == 4 {
                let rows4 = [row(r), row(r + 1), row(r + 2), row(r + 3)];
                let z = match () {
                    // SAFETY: AVX2 is true only in `Block::run_avx2`, which runs only where
                    // the CPU reports AVX2.
                    #[cfg(target_arch = "x86_64")]
                    () if AVX2 => unsafe { dots4_avx2(rows4, wj) },
                    () => dots(rows4, wj),
                };
                for (q, zq) in z.iter().enumerate() {
                    out[(r + q) * outputs + j] = bj + zq;
                }
            } else {
                out[r * outputs + j] = bj + dots([row(r)], wj)[0];
            }
        }
        r += n;
    }
}

/// A matrix read through strides, A[i, q] = data[i·rs + q·cs]: a row-major [m, k] matrix
/// (rs = k, cs = 1) or the transpose of a row-major [k, m] one (rs = 1, cs = m).
#[derive(Clone, Copy)]
struct Strided<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

/// Rows of C per register tile in [`gemm_acc`].
const GEMM_ROWS: usize = 2;
/// The run of k that [`gemm_acc`] packs from A at a time.
const GEMM_K: usize = 64;

/// C[m, n] += A[m, k]·B[k, n], B and C row-major.
///
/// A register tile of [`GEMM_ROWS`] rows × LANES columns of C stays in registers over a run
/// of k; each element of A scales a LANES-wide piece of a row of B. The tile's elements of A
/// are first copied to `pack` ([GEMM_K · GEMM_ROWS], scratch) four times over each, so that
/// the inner loop loads them whole instead of broadcasting them. Columns past the last whole
/// LANES are summed one by one.
#[inline(always)]
fn gemm_acc(
    c: &mut [f32],
    a: Strided,
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    pack: &mut [[f32; 4]],
) {
    debug_assert!(c.len() >= m * n && b.len() >= k * n);
    let mut i = 0;
    while i + GEMM_ROWS <= m {
        gemm_rows::<GEMM_ROWS>(&mut c[i * n..(i + GEMM_ROWS) * n], a, i, b, (k, n), pack);
        i += GEMM_ROWS;
    }
    while i < m {
        gemm_rows::<1>(&mut c[i * n..(i + 1) * n], a, i, b, (k, n), pack);
        i += 1;
    }
}

/// Rows i..i + R of [`gemm_acc`]: c is [R, n].
#[inline(always)]
fn gemm_rows<const R: usize>(
    c: &mut [f32],
    a: Strided,
    i: usize,
    b: &[f32],
    (k, n): (usize, usize),
    pack: &mut [[f32; 4]],
) {
    let whole = n - n % LANES;
    for k0 in (0..k).step_by(GEMM_K) {
        let kl = GEMM_K.min(k - k0);
        // pack[q·R + r] = A[i + r, k0 + q], four times over.
        let pack = &mut pack[..kl * R];
        for (q, p) in pack.chunks_exact_mut(R).enumerate() {
            for (r, v) in p.iter_mut().enumerate() {
                *v = [a.data[(i + r) * a.rs + (k0 + q) * a.cs]; 4];
            }
        }
        let pack = &*pack;
        let b_rows = b[k0 * n..(k0 + kl) * n].chunks_exact(n); // [kl, n]
        for j in (0..whole).step_by(LANES) {
            let mut acc = [[0.0f32; LANES]; R];
            for (r, row) in acc.iter_mut().enumerate() {
                row.copy_from_slice(&c[r * n + j..r * n + j + LANES]);
            }
            for (p, brow) in pack.chunks_exact(R).zip(b_rows.clone()) {
                let bv: &[f32; LANES] = brow[j..j + LANES].try_into().unwrap();
                for (row, av) in acc.iter_mut().zip(p) {
                    for l in 0..LANES {
                        row[l] += av[l % 4] * bv[l];
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                c[r * n + j..r * n + j + LANES].copy_from_slice(row);
            }
        }
        for j in whole..n {
            for r in 0..R {
                let mut s = c[r * n + j];
                for (p, brow) in pack.chunks_exact(R).zip(b_rows.clone()) {
                    s += p[r][0] * brow[j];
                }
                c[r * n + j] = s;
            }
        }
    }
}

/// Out = act(Z) in place, the activation chosen once for the whole slice.
#[inline(always)]
fn activate_all(act: Activation, z: &mut [f32]) {
    match act {
        Activation::Relu => z.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Tanh => z
            .iter_mut()
            .for_each(|v| *v = activate(Activation::Tanh, *v)),
        Activation::Sigmoid => z.iter_mut().for_each(|v| *v = sigmoid(*v)),
    }
}

/// D[i] *= act'(Out[i]).
#[inline(always)]
fn backprop_activation(act: Activation, d: &mut [f32], out: &[f32]) {
    match act {
        Activation::Relu => {
            for (dv, a) in d.iter_mut().zip(out) {
                *dv = if *a > 0.0 { *dv } else { 0.0 };
            }
        }
        Activation::Tanh | Activation::Sigmoid => {
            for (dv, a) in d.iter_mut().zip(out) {
                *dv *= activate_grad(act, *a);
            }
        }
    }
}

/// The weights of one iteration, shared read-only by all blocks.
struct Net<'a> {
    layout: &'a [LayerLayout],
    act: Activation,
    /// Laid out as `ModelSpec::layout`.
    params: &'a [f32],
    /// The same layout with each W ([outputs, inputs]) stored transposed ([inputs, outputs]).
    wt: &'a [f32],
}

/// Whether a layer's forward pass uses dot products with W rather than rows of Wᵀ.
fn is_narrow(lay: &LayerLayout) -> bool {
    lay.outputs < LANES
}

/// One block of rows and everything its pass writes: its partial sums and its tiles' scratch.
struct Block {
    /// The block's rows are start..start + rows.
    start: usize,
    rows: usize,
    counts: Counts,
    bce: BceSum,
    /// Σ over the block's rows of ∇ of the mean BCE, laid out as the parameters (empty for
    /// validation rows).
    grad: Vec<f32>,
    /// outs[l]: [TILE_ROWS, outputs_l], the activation output of layer l for one tile.
    outs: Vec<Vec<f32>>,
    /// ds[l]: [TILE_ROWS, outputs_l], ∂L/∂Z of layer l for one tile (only the last layer's
    /// is used for validation rows).
    ds: Vec<Vec<f32>>,
    /// [GEMM_K · GEMM_ROWS], [`gemm_acc`]'s copy of A.
    pack: Vec<[f32; 4]>,
}

impl Block {
    /// The blocks covering `n` rows, with partial gradients if `train`.
    fn cover(n: usize, layout: &[LayerLayout], params: usize, train: bool) -> Vec<Block> {
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
                counts: Counts::default(),
                bce: BceSum::new(),
                grad: if train { vec![0.0; params] } else { Vec::new() },
                outs: scratch(),
                ds: scratch(),
                pack: vec![[0.0; 4]; GEMM_K * GEMM_ROWS],
            })
            .collect()
    }

    /// One pass over the block's rows of `x` ([n, f]) and `y` ([n]): counts and, when `train`
    /// is given (1/n and the block's slice of the logits), the partial gradient; compiled for
    /// the instruction set `simd`.
    fn run(
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
        let inv_n = train.as_ref().map_or(0.0, |t| t.0);
        self.counts = Counts::default();
        self.bce = BceSum::new();
        self.grad.fill(0.0);
        for t0 in (0..self.rows).step_by(TILE_ROWS) {
            let r0 = self.start + t0;
            let rows = TILE_ROWS.min(self.rows - t0);
            // The next tile's rows, prefetched row by row during this tile's forward pass.
            let ahead = &x[((r0 + rows) * f).min(x.len())..((r0 + 2 * rows) * f).min(x.len())];
            let x = &x[r0 * f..(r0 + rows) * f]; // [rows, f]
            let y = &y[r0..r0 + rows]; // [rows]
            self.forward::<AVX2>(net, x, rows, ahead);
            let z = &self.outs[last][..rows];
            let d = &mut self.ds[last][..rows];
            loss_and_delta(z, y, d, inv_n, &mut self.bce, &mut self.counts);
            if let Some((_, logits)) = train.as_mut() {
                logits[t0..t0 + rows].copy_from_slice(z);
                self.backward(net, x, rows);
            }
        }
        self.counts.loss_sum = self.bce.total();
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

/// Bytes a session holds with its data, `None` past u64: the caller's rows and the session's
/// copy ([n, f] and [n] each, for the training and the validation rows), the logits [n], the
/// weights five times (params, wt, prev, best, grad), and per block its tiles' scratch and, for
/// the training rows, a partial gradient [p].
fn working_bytes(
    n: usize,
    n_val: usize,
    f: usize,
    layout: &[LayerLayout],
    p: usize,
) -> Option<u64> {
    use memory::mul;
    let rows = |n: usize| mul(n, f.checked_add(1)?);
    let widths = memory::sum(layout.iter().map(|l| Some(l.outputs as u64)))?;
    let scratch = memory::sum([mul(2 * TILE_ROWS, widths), mul(4, GEMM_K * GEMM_ROWS)]);
    let blocks = |n: usize| n.div_ceil(BLOCK_ROWS);
    let floats = memory::sum([
        mul(2, rows(n)?),
        mul(2, rows(n_val)?),
        Some(n as u64),
        mul(5, p),
        mul(blocks(n), scratch?.checked_add(p as u64)?),
        mul(blocks(n_val), scratch?),
    ]);
    floats.and_then(memory::f32_bytes)
}

/// Fails unless this machine's memory holds what a session over these shapes allocates;
/// reads only the shapes, so it runs before the parameters are initialised.
pub fn check_memory(data: &Dataset, val: Option<&Dataset>, spec: &ModelSpec) -> Result<()> {
    let layout = spec.layout();
    let p = spec.parameter_count();
    let n_val = val.map_or(0, |v| v.rows);
    let bytes = working_bytes(data.rows, n_val, data.features, &layout, p);
    memory::check(bytes, |size| {
        format!(
            "the CPU backend needs {size} for {} rows{} × {} features and {} parameters \
             (the rows twice, the weights five times, a partial gradient per {BLOCK_ROWS} \
             rows)",
            memory::fmt_count(data.rows as u64),
            if n_val > 0 {
                format!(" (and {} validation rows)", memory::fmt_count(n_val as u64))
            } else {
                String::new()
            },
            data.features,
            memory::fmt_count(p as u64)
        )
    })
}

pub struct CpuSession {
    /// [n, f]
    x: Vec<f32>,
    /// [n]
    y: Vec<f32>,
    /// Validation rows: ([n_val, f], [n_val]).
    val: Option<(Vec<f32>, Vec<f32>)>,
    blocks: Vec<Block>,
    val_blocks: Vec<Block>,
    act: Activation,
    layout: Vec<LayerLayout>,
    lr: f32,
    params: Vec<f32>,
    /// The params' layout with each W transposed, refreshed by every evaluate().
    wt: Vec<f32>,
    prev: Vec<f32>,
    best: Vec<f32>,
    /// ∇L of the last evaluate(), same layout as params.
    grad: Vec<f32>,
    /// [n], the training logits of the last evaluate().
    logits: Vec<f32>,
    evaluated: bool,
    simd: Simd,
}

impl CpuSession {
    pub fn new(
        data: &Dataset,
        val: Option<&Dataset>,
        spec: &ModelSpec,
        cfg: &SessionConfig,
    ) -> Result<Self> {
        check_shapes(data, val, spec, cfg)?;
        check_memory(data, val, spec)?;
        let layout = spec.layout();
        let p = cfg.params.len();
        Ok(CpuSession {
            x: data.x.clone(),
            y: data.y.clone(),
            val: val.map(|v| (v.x.clone(), v.y.clone())),
            blocks: Block::cover(data.rows, &layout, p, true),
            val_blocks: val.map_or_else(Vec::new, |v| Block::cover(v.rows, &layout, p, false)),
            act: spec.activation,
            lr: cfg.lr,
            params: cfg.params.clone(),
            wt: vec![0.0; p],
            prev: cfg.params.clone(),
            best: cfg.params.clone(),
            grad: vec![0.0; p],
            logits: vec![0.0; data.rows],
            layout,
            evaluated: false,
            simd: Simd::detect(),
        })
    }

    /// The same session with its fast path compiled for `simd` (tests compare the two; a set
    /// the CPU lacks falls back to the baseline).
    pub fn with_simd(mut self, simd: Simd) -> Self {
        self.simd = if simd == Simd::detect() {
            simd
        } else {
            Simd::Baseline
        };
        self
    }
}

impl Session for CpuSession {
    /// One pass over the training rows (counts and ∇L, kept for update()) and one forward
    /// pass over the validation rows.
    fn evaluate(&mut self) -> Result<Evaluation> {
        for lay in &self.layout {
            let w = &self.params[lay.w_off..lay.b_off]; // [outputs, inputs]
            let wt = &mut self.wt[lay.w_off..lay.b_off]; // [inputs, outputs]
            for o in 0..lay.outputs {
                for i in 0..lay.inputs {
                    wt[i * lay.outputs + o] = w[o * lay.inputs + i];
                }
            }
        }
        let net = Net {
            layout: &self.layout,
            act: self.act,
            params: &self.params,
            wt: &self.wt,
        };
        let inv_n = 1.0 / self.y.len() as f32;
        let (x, y, simd) = (&self.x, &self.y, self.simd);
        self.blocks
            .par_iter_mut()
            .zip(self.logits.par_chunks_mut(BLOCK_ROWS))
            .for_each(|(b, logits)| b.run(&net, x, y, Some((inv_n, logits)), simd));
        // The blocks' partials, added in block order.
        self.grad.fill(0.0);
        let mut train = Counts::default();
        for b in &self.blocks {
            add_counts(&mut train, &b.counts);
            for (g, p) in self.grad.iter_mut().zip(&b.grad) {
                *g += p;
            }
        }
        let val = self.val.as_ref().map(|(x, y)| {
            self.val_blocks
                .par_iter_mut()
                .for_each(|b| b.run(&net, x, y, None, simd));
            let mut c = Counts::default();
            for b in &self.val_blocks {
                add_counts(&mut c, &b.counts);
            }
            c
        });
        self.evaluated = true;
        Ok(Evaluation { train, val })
    }

    /// W ← W − lr·∇L with the ∇L the last evaluate() computed.
    fn update(&mut self) -> Result<()> {
        if !self.evaluated {
            return Err(Error::Config("update() needs an evaluate() first".into()));
        }
        self.prev.copy_from_slice(&self.params);
        for (p, g) in self.params.iter_mut().zip(&self.grad) {
            *p -= self.lr * g;
        }
        self.evaluated = false;
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn previous_params(&mut self) -> Result<Vec<f32>> {
        Ok(self.prev.clone())
    }

    fn save_best(&mut self) -> Result<()> {
        self.best.copy_from_slice(&self.params);
        Ok(())
    }

    fn best_params(&mut self) -> Result<Vec<f32>> {
        Ok(self.best.clone())
    }

    fn adapter(&self) -> Option<AdapterDesc> {
        None
    }

    fn logits(&mut self) -> Result<Vec<f32>> {
        if !self.evaluated {
            return Err(Error::Config(
                "logits() needs an evaluate() first (and no update() since)".into(),
            ));
        }
        Ok(self.logits.clone())
    }
}

fn add_counts(total: &mut Counts, c: &Counts) {
    total.loss_sum += c.loss_sum;
    total.tp += c.tp;
    total.fp += c.fp;
    total.fn_ += c.fn_;
    total.tn += c.tn;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Demo, DemoOptions, demo};

    fn data(kind: Demo, rows: usize, features: Option<usize>, seed: u64) -> Dataset {
        demo(
            kind,
            &DemoOptions {
                rows: Some(rows),
                features,
                noise: 0.1,
                seed,
            },
        )
        .unwrap()
    }

    fn session(
        d: &Dataset,
        hidden: &[usize],
        act: Activation,
        seed: u64,
    ) -> (ModelSpec, CpuSession) {
        let spec = ModelSpec::new(d.features, hidden, act).unwrap();
        let cfg = SessionConfig {
            params: spec.init_params(seed),
            lr: 0.5,
        };
        let s = CpuSession::new(d, None, &spec, &cfg).unwrap();
        (spec, s)
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * scale + 1e-4 * y.abs(),
                "{what}[{i}]: fast {x} reference {y} (scale {scale})"
            );
        }
    }

    /// The fast path against the plain reference, iteration by iteration: every block and
    /// tile remainder, narrow and wide layers, every activation.
    #[test]
    fn working_memory_is_counted_with_checked_arithmetic() {
        let spec = ModelSpec::new(2, &[], Activation::Relu).unwrap();
        let layout = spec.layout();
        // Rows 2·10·3 + logits 10 + weights 5·3 + one block's scratch 2·64·1 + 512 and
        // gradient 3, in f32.
        assert_eq!(
            working_bytes(10, 0, 2, &layout, 3),
            Some(4 * (60 + 10 + 15 + 643))
        );
        assert_eq!(
            working_bytes(10, 5, 2, &layout, 3),
            Some(4 * (60 + 30 + 10 + 15 + 643 + 640))
        );
        assert_eq!(working_bytes(usize::MAX / 2, 0, 2, &layout, 3), None);
        assert_eq!(working_bytes(10, 0, usize::MAX, &layout, 3), None);
        assert_eq!(working_bytes(1 << 40, 0, 2, &layout, usize::MAX / 4), None);
    }

    #[test]
    fn fast_path_matches_the_reference() {
        type Case = (Demo, usize, Option<usize>, &'static [usize], Activation);
        let cases: &[Case] = &[
            (Demo::Hyperplane, 1, Some(3), &[], Activation::Relu),
            (
                Demo::Hyperplane,
                2 * BLOCK_ROWS + 37,
                Some(37),
                &[],
                Activation::Relu,
            ),
            (
                Demo::Hyperplane,
                BLOCK_ROWS + TILE_ROWS + 1,
                Some(64),
                &[],
                Activation::Relu,
            ),
            (Demo::Moons, 513, None, &[70, 3], Activation::Relu),
            (Demo::Hyperplane, 300, Some(20), &[33, 17], Activation::Tanh),
            (
                Demo::Hyperplane,
                BLOCK_ROWS + 3,
                Some(5),
                &[4],
                Activation::Sigmoid,
            ),
            (Demo::Blobs, 77, None, &[16, 16], Activation::Sigmoid),
        ];
        for (k, &(kind, rows, features, hidden, act)) in cases.iter().enumerate() {
            let d = data(kind, rows, features, k as u64);
            let (spec, mut s) = session(&d, hidden, act, k as u64);
            let layout = spec.layout();
            for t in 0..4 {
                let what = format!("case {k} iteration {t}");
                let (c, grad, logits) = reference::evaluate(&d.x, &d.y, &s.params, &layout, act);
                let e = s.evaluate().unwrap();
                assert!(e.val.is_none());
                let f = e.train;
                assert_eq!(
                    (f.tp, f.fp, f.fn_, f.tn),
                    (c.tp, c.fp, c.fn_, c.tn),
                    "{what}"
                );
                let rel = (f.loss_sum - c.loss_sum).abs() / c.loss_sum.abs().max(1e-30);
                assert!(rel <= 1e-6, "{what}: loss {} vs {}", f.loss_sum, c.loss_sum);
                close(&s.grad, &grad, &format!("{what} grad"));
                close(&s.logits().unwrap(), &logits, &format!("{what} logits"));
                s.update().unwrap();
            }
        }
    }

    /// Validation rows are evaluated forward only, with the training weights.
    #[test]
    fn validation_rows_match_the_reference() {
        let d = data(Demo::Hyperplane, 700, Some(9), 1);
        let v = data(Demo::Hyperplane, BLOCK_ROWS + 5, Some(9), 2);
        let spec = ModelSpec::new(9, &[24], Activation::Tanh).unwrap();
        let cfg = SessionConfig {
            params: spec.init_params(3),
            lr: 0.5,
        };
        let mut s = CpuSession::new(&d, Some(&v), &spec, &cfg).unwrap();
        s.evaluate().unwrap();
        s.update().unwrap();
        let e = s.evaluate().unwrap().val.unwrap();
        let (c, _, _) = reference::evaluate(&v.x, &v.y, &s.params, &spec.layout(), spec.activation);
        assert_eq!((e.tp, e.fp, e.fn_, e.tn), (c.tp, c.fp, c.fn_, c.tn));
        assert!((e.loss_sum - c.loss_sum).abs() <= 1e-6 * c.loss_sum);
    }

    /// Bit-identical results with 1 and 3 threads: the blocks are fixed and summed in order.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let d = data(Demo::Hyperplane, 5 * BLOCK_ROWS + 123, Some(12), 4);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (_, mut s) = session(&d, &[20], Activation::Relu, 4);
                let mut losses = Vec::new();
                for _ in 0..5 {
                    let e = s.evaluate().unwrap().train;
                    losses.push((e.loss_sum.to_bits(), e.tp, e.fp, e.fn_, e.tn));
                    s.update().unwrap();
                }
                let bits: Vec<u32> = s.params.iter().map(|p| p.to_bits()).collect();
                (losses, bits)
            })
        };
        assert_eq!(run(1), run(3));
    }

    /// The AVX2 build of the fast path gives the baseline's bits (on a CPU without AVX2 there
    /// is nothing to compare, and it says so).
    #[test]
    fn instruction_sets_give_the_same_bits() {
        if Simd::detect() == Simd::Baseline {
            eprintln!("this CPU has no AVX2: only the baseline fast path exists here");
            return;
        }
        let moons = data(Demo::Moons, 2 * BLOCK_ROWS + 77, None, 5);
        // 21 features: two whole eights of a dot product and a tail.
        let wide = data(Demo::Hyperplane, 2 * BLOCK_ROWS + 77, Some(21), 5);
        for (d, hidden, act) in [
            (&moons, &[][..], Activation::Relu),
            (&wide, &[][..], Activation::Relu),
            (&moons, &[24, 5][..], Activation::Tanh),
        ] {
            let run = |simd: Simd| {
                let (_, s) = session(d, hidden, act, 6);
                let mut s = s.with_simd(simd);
                assert_eq!(s.simd, simd);
                let mut seen = Vec::new();
                for _ in 0..4 {
                    let e = s.evaluate().unwrap().train;
                    seen.push((e.loss_sum.to_bits(), e.tp, e.fp, e.fn_, e.tn));
                    s.update().unwrap();
                }
                (
                    seen,
                    s.params.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
                )
            };
            assert_eq!(run(Simd::Baseline), run(Simd::Avx2), "{hidden:?}");
        }
    }

    #[test]
    fn update_needs_an_evaluate() {
        let d = data(Demo::Blobs, 10, None, 0);
        let (_, mut s) = session(&d, &[], Activation::Relu, 0);
        assert!(s.update().is_err());
        assert!(s.logits().is_err());
        s.evaluate().unwrap();
        assert_eq!(s.logits().unwrap().len(), 10);
        s.update().unwrap();
        assert!(s.update().is_err());
        assert_eq!(s.previous_params().unwrap().len(), 3);
    }

    #[test]
    fn exp_neg_is_exp_to_two_ulp() {
        let mut a = 0.0f32;
        while a < 87.0 {
            let (got, want) = (exp_neg(a), (-(a as f64)).exp());
            let rel = (got as f64 - want).abs() / want;
            assert!(rel <= 2.5e-7, "e^-{a}: {got} vs {want} (rel {rel:e})");
            a += 0.001 + a * 1e-3;
        }
        assert_eq!(exp_neg(0.0), 1.0);
        assert!(exp_neg(f32::NAN).is_nan());
        assert_eq!(exp_neg(f32::INFINITY), exp_neg(87.0));
        assert!(exp_neg(1000.0) < 1e-37);
    }

    /// Non-finite logits give the reference's non-finite loss and gradient.
    #[test]
    fn non_finite_logits_stay_non_finite() {
        for z in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for y in [0.0, 1.0] {
                let (mut bce, mut c, mut d) = (BceSum::new(), Counts::default(), [0.0]);
                loss_and_delta(&[z], &[y], &mut d, 0.5, &mut bce, &mut c);
                let want = bce_from_logit(z, y) as f64;
                let got = bce.total();
                assert!(
                    got == want || got.is_nan() && want.is_nan(),
                    "{z} {y}: {got} {want}"
                );
                let dw = (sigmoid(z) - y) * 0.5;
                // e^−|z| stops at e^−87: σ(−∞) comes out as 1.6e-38 rather than 0.
                let near = (d[0] - dw).abs() <= 1e-37;
                assert!(
                    near || d[0].is_nan() && dw.is_nan(),
                    "{z} {y}: {} {dw}",
                    d[0]
                );
            }
        }
    }

    #[test]
    fn kernels_match_plain_loops() {
        // C[m, n] += A[m, k]·B[k, n] with A as a matrix and as a transposed view.
        let shapes = [
            (1, 1, 1),
            (3, 5, 17),
            (4, 7, 32),
            (5, 3, 40),
            (2, 16, 15),
            (3, 130, 20),
        ];
        for &(m, k, n) in &shapes {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let c0: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.01).collect();
            let mut want = c0.clone();
            for i in 0..m {
                for j in 0..n {
                    for q in 0..k {
                        want[i * n + j] += a[i * k + q] * b[q * n + j];
                    }
                }
            }
            let mut pack = vec![[0.0; 4]; GEMM_K * GEMM_ROWS];
            let mut c = c0.clone();
            let a_rows = Strided {
                data: &a,
                rs: k,
                cs: 1,
            };
            gemm_acc(&mut c, a_rows, &b, (m, k, n), &mut pack);
            close(&c, &want, "gemm");
            let mut at = vec![0.0; k * m]; // [k, m]
            for i in 0..m {
                for q in 0..k {
                    at[q * m + i] = a[i * k + q];
                }
            }
            let mut c = c0.clone();
            let a_cols = Strided {
                data: &at,
                rs: 1,
                cs: m,
            };
            gemm_acc(&mut c, a_cols, &b, (m, k, n), &mut pack);
            close(&c, &want, "gemm transposed");
        }
        for len in [0, 1, 15, 16, 17, 64, 100] {
            let a: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..len).map(|i| 1.0 - i as f32 * 0.25).collect();
            let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let got = dots([&a[..]], &b)[0];
            assert!(
                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{got} {want}"
            );
        }
    }
}

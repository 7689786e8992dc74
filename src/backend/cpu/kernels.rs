//! The fast path's kernels: e^−|z|, the loss and ∂L/∂z of a tile (sigmoid or softmax), dot
//! products (baseline and AVX2), register-tiled matrix products, activations and their
//! derivatives.
//!
//! Loops are written so that LLVM vectorises them for the baseline x86-64 target (SSE2)
//! without `unsafe`; the exceptions are the prefetches and the AVX2 dot products.

use crate::backend::reference::{activate, activate_grad, sigmoid};
use crate::metrics::Counts;
use crate::model::Activation;

pub(super) const LANES: usize = 16;

/// e^−a for a ≥ 0 to about 1 ulp (a NaN stays NaN), in plain arithmetic that LLVM vectorises,
/// unlike a call to `expf`: e^−a = 2^k·e^r with k = round(−a/ln 2) and |r| ≤ ln 2 / 2, e^r by
/// Cephes' degree-7 polynomial, 2^k through the exponent bits. Beyond a = 87 (e^−87 ≈ 1.6e-38,
/// the edge of the normal floats) it returns e^−87, which changes neither 1 + e^−a nor σ in f32.
#[inline(always)]
pub(super) fn exp_neg(a: f32) -> f32 {
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

/// Σ over rows of `reference::bce_from_logit` = max(z, 0) + ln(1 + e^−|z|) − y·z, summed as
/// Σ (max(z, 0) − y·z) + ln Π (1 + e^−|z|): one ln per few hundred rows rather than one per
/// row. Each factor lies in [1, 2], so the product is folded into the sum long before it
/// could overflow.
pub(super) struct BceSum {
    sum: f64,
    prod: f64,
}

impl BceSum {
    pub(super) fn new() -> Self {
        BceSum {
            sum: 0.0,
            prod: 1.0,
        }
    }

    /// One row: its logit z, label y and e = e^−|z|.
    #[inline(always)]
    pub(super) fn add(&mut self, z: f32, y: f32, e: f32) {
        self.sum += (z.max(0.0) - y * z) as f64;
        self.prod *= (1.0 + e) as f64;
        if self.prod > 1e150 {
            self.sum += self.prod.ln();
            self.prod = 1.0;
        }
    }

    pub(super) fn total(&self) -> f64 {
        self.sum + self.prod.ln()
    }
}

/// The loss and counts of logits z ([rows]) against labels y, added to `bce` and `c`; and
/// d = ∂L/∂z = (σ(z) − y)/n ([rows], also the scratch for e^−|z|). Three simple loops, so that
/// the exponentials and σ vectorise.
#[inline(always)]
pub(super) fn loss_and_delta(
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
    c.add_binary(tp, pp - tp, tt - tp, z.len() as u64 + tp - pp - tt);
    for ((d, &z), &y) in d.iter_mut().zip(z).zip(y) {
        let e = *d;
        let r = 1.0 / (1.0 + e);
        let s = if z >= 0.0 { r } else { e * r }; // σ(z)
        *d = (s - y) * inv_n;
    }
}

/// Rows per step of [`softmax_loss_and_delta`] (its per-row values live on the stack): a
/// tile's, so that its scratch is [TILE_ROWS, K].
pub(super) const SOFTMAX_ROWS: usize = super::TILE_ROWS;

/// The softmax cross-entropy of logits z ([rows, k], k ≥ 2) against class indices y
/// ([rows], checked below k by the session): adds each row's loss, in f32 as
/// `reference::softmax_ce` writes it (m + ln Σ_j e^(z_j − m) − z_y, m = max z), to `loss`
/// and its (class, argmax) to `confusion` ([k, k], a tie going to the lowest class); and
/// writes d = ∂L/∂z = (softmax(z) − one-hot(y))·inv_n ([rows, k]).
///
/// The logits are first transposed into `t` ([k, rows], at least [k, SOFTMAX_ROWS] of
/// scratch), so that every step but the logarithm runs across rows in vectors: a row's own
/// chain (its max, its sum in class order) would serialise on the adder's latency. e^(z_j −
/// m) is [`exp_neg`] of m − z_j, which is −(z_j − m) exactly. m is the row's first largest
/// logit, which the reference's fold of `f32::max` equals unless the row holds a NaN, and a
/// NaN makes the row's sum, and so its loss and deltas, NaN either way.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn softmax_loss_and_delta(
    z: &[f32],
    y: &[f32],
    d: &mut [f32],
    t: &mut [f32],
    k: usize,
    inv_n: f32,
    loss: &mut f64,
    confusion: &mut [u64],
) {
    let step = SOFTMAX_ROWS * k;
    for ((z, d), y) in z
        .chunks(step)
        .zip(d.chunks_mut(step))
        .zip(y.chunks(SOFTMAX_ROWS))
    {
        let rows = y.len();
        let t = &mut t[..rows * k]; // [k, rows]
        for (r, zr) in z.chunks_exact(k).enumerate() {
            for (j, &v) in zr.iter().enumerate() {
                t[j * rows + r] = v;
            }
        }
        // The argmax as `reference::predicted` walks it (nothing beats an earlier equal or
        // a NaN first logit), one class at a time for all rows.
        let (mut top, mut best) = ([0.0f32; SOFTMAX_ROWS], [0u32; SOFTMAX_ROWS]);
        let (top, best) = (&mut top[..rows], &mut best[..rows]);
        top.copy_from_slice(&t[..rows]);
        for (j, col) in t.chunks_exact(rows).enumerate().skip(1) {
            for ((m, b), &v) in top.iter_mut().zip(best.iter_mut()).zip(col) {
                let gt = v > *m;
                *b = if gt { j as u32 } else { *b };
                *m = if gt { v } else { *m };
            }
        }
        for col in t.chunks_exact_mut(rows) {
            for (a, &m) in col.iter_mut().zip(top.iter()) {
                *a = exp_neg(m - *a);
            }
        }
        // Σ_j e^(z_j − m) in class order, as the reference sums it.
        let mut sum = [0.0f32; SOFTMAX_ROWS];
        let sum = &mut sum[..rows];
        for col in t.chunks_exact(rows) {
            for (s, &e) in sum.iter_mut().zip(col) {
                *s += e;
            }
        }
        for (((zr, &y), (&m, &s)), &b) in z
            .chunks_exact(k)
            .zip(y)
            .zip(top.iter().zip(sum.iter()))
            .zip(best.iter())
        {
            let y = y as usize;
            *loss += (m + s.ln() - zr[y]) as f64;
            confusion[y * k + b as usize] += 1;
        }
        for (j, col) in t.chunks_exact_mut(rows).enumerate() {
            for ((a, &s), &y) in col.iter_mut().zip(sum.iter()).zip(y) {
                let hot = if y == j as f32 { 1.0 } else { 0.0 };
                *a = (*a / s - hot) * inv_n;
            }
        }
        for (r, dr) in d.chunks_exact_mut(k).enumerate() {
            for (j, dv) in dr.iter_mut().enumerate() {
                *dv = t[j * rows + r];
            }
        }
    }
}

/// The dot products of R rows with one weight vector w, at once: for each row, lane l (of 8)
/// adds the products of the elements k ≡ l (mod 8) of the whole eights in order, the lanes
/// meet in the tree ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), and the elements past
/// the last whole eight are added after it in order. R independent rows keep R chains of
/// adds in flight, and each eight of w is loaded once for all R. The AVX2 build computes four
/// rows with [`dots4_avx2`] instead: the same sums in the same order, so the same bits.
#[inline(always)]
pub(super) fn dots<const R: usize>(rows: [&[f32]; R], w: &[f32]) -> [f32; R] {
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
pub(super) fn dots4_avx2(rows: [&[f32]; 4], w: &[f32]) -> [f32; 4] {
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
pub(super) fn prefetch(a: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in a.chunks(16) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
}

/// Σ a, in four lanes.
#[inline(always)]
pub(super) fn sum(a: &[f32]) -> f32 {
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
pub(super) fn hsum4(h: &[f32; 4]) -> f32 {
    (h[0] + h[2]) + (h[1] + h[3])
}

/// Out[r, o] = bias[o] + In[r, :]·W[o, :] for In [rows, k], W [outputs, k], Out [rows,
/// outputs]: dot products ([`dots`], four rows at a time), for layers with few outputs (the
/// logit). Row r of `ahead` ([rows, k] or shorter, the rows to be read next) is prefetched
/// with row r of In: with 1M rows × 64 features (X from memory) this took an iteration from
/// ~29 to ~20 ms on the 2-core CI-like VM.
#[inline(always)]
pub(super) fn forward_narrow<const AVX2: bool>(
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
                    // SAFETY: AVX2 is true only in `Block::run_avx2` and
                    // `Block::run_forward_avx2`, which run only where the CPU reports AVX2.
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
pub(super) struct Strided<'a> {
    pub(super) data: &'a [f32],
    pub(super) rs: usize,
    pub(super) cs: usize,
}

/// Rows of C per register tile in [`gemm_acc`].
pub(super) const GEMM_ROWS: usize = 2;
/// The run of k that [`gemm_acc`] packs from A at a time.
pub(super) const GEMM_K: usize = 64;

/// C[m, n] += A[m, k]·B[k, n], B and C row-major.
///
/// A register tile of [`GEMM_ROWS`] rows × LANES columns of C stays in registers over a run
/// of k; each element of A scales a LANES-wide piece of a row of B. The tile's elements of A
/// are first copied to `pack` ([GEMM_K · GEMM_ROWS], scratch) four times over each, so that
/// the inner loop loads them whole instead of broadcasting them. Columns past the last whole
/// LANES are summed one by one.
#[inline(always)]
pub(super) fn gemm_acc(
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
pub(super) fn gemm_rows<const R: usize>(
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
pub(super) fn activate_all(act: Activation, z: &mut [f32]) {
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
pub(super) fn backprop_activation(act: Activation, d: &mut [f32], out: &[f32]) {
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

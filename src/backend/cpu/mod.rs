//! The CPU backend: the fast path, its training session and forward-only inference.
//!
//! The plain reference the fast path is held to lives in [`crate::backend::reference`].
//! The fast path cuts the rows into fixed blocks of [`BLOCK_ROWS`]; each block is walked in
//! tiles of [`TILE_ROWS`], and for a tile the forward pass, the loss, the confusion counts
//! and the backward pass all run while its rows are in cache, so X is read once per
//! iteration (and evaluate() leaves ∇L for update() to apply). Each block sums its own
//! partial gradient, loss and counts; blocks run in parallel (rayon) and their partials are
//! then added in block order. The block size does not depend on the thread count, so the
//! results are bit-identical for any number of threads and any scheduling.
//!
//! The fast path computes the same quantities as the reference, in other orders of
//! summation (so to within rounding): dot products in eight lanes, four rows at a time,
//! matrix products in register tiles, e^−|z| by a polynomial that vectorises, and the
//! sigmoid loss's logarithms one per few hundred rows (all in `kernels`). A softmax head's
//! K logits take the same tile pass: the forward pass writes [rows, K] logits, one kernel
//! gives each row's loss (one logarithm per row), argmax and (softmax − one-hot)/n on the
//! tile's logits transposed, so that each step runs across rows in vectors, and the
//! backward pass is the MLP's, K wide. All of a session's scratch is
//! allocated in [`CpuSession::new`]; an iteration allocates nothing.
//!
//! - `kernels`: the SIMD kernels (dots, gemm, exp, loss and ∂L/∂z of a tile).
//! - `block`: one block's forward and backward pass over its tiles.
//! - `session`: [`CpuSession`] and [`check_memory`].
//! - `forward`: [`forward_logits`], inference without gradient work.

mod block;
mod forward;
mod kernels;
mod session;
#[cfg(test)]
mod tests;

pub use crate::backend::reference::{activate, activate_grad, bce_from_logit, sigmoid};
pub use forward::forward_logits;
pub use session::{CpuSession, check_memory};

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

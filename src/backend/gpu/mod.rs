//! The GPU backend: wgpu compute pipelines over the kernels in `shaders/`.
//!
//! Device setup ([`GpuContext`], `device.rs`) is kept apart from the work ([`GpuSession`],
//! `session.rs`) so tests and tools can open a device once and reuse the pieces. `plan.rs`
//! decides the [`KernelPath`] and the cuts from the shapes alone, and `limits.rs` checks the
//! model's buffers against the adapter; `kernels.rs` holds the kernel table, the limits it
//! hands to WGSL and the host↔WGSL layouts; `sets.rs` records a set of rows' dispatches;
//! `chunk.rs` runs chunks under the device stop rule; `minibatch.rs` gathers and runs
//! mini-batches; `optimizer.rs` holds the optimizer's buffers; `forward.rs` computes logits
//! without training. All buffers, pipelines and bind groups are made when the
//! session opens; an iteration only records dispatches.

mod chunk;
mod device;
mod forward;
mod kernels;
mod limits;
mod minibatch;
mod optimizer;
mod plan;
mod session;
mod sets;

pub use chunk::device_rule_trace;
pub use device::{GpuContext, NO_ADAPTER_HELP, instance, list_adapters};
pub use forward::forward_logits;
pub use kernels::LOOP_MAX_WORKGROUP;
pub use plan::{KernelPath, LOOP_MAX_ELEMENTS, LR_PASS_MAX_K, check_limits, kernel_path};
pub use session::GpuSession;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel compiles on the adapter: its source, the prelude and the shared files it
    /// is assembled from are valid WGSL together (lr_loop.wgsl at its most features and at its
    /// most logits; the loss kernels with one logit and with ten).
    #[test]
    fn every_kernel_compiles() {
        use super::kernels::{Kernel, LOOP_MAX_FEATURES, LOOP_MAX_K};
        let ctx = match GpuContext::open(None) {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but no GPU adapter is available: {e}"
                );
                eprintln!("SKIPPED: no GPU adapter to compile the kernels: {e}");
                return;
            }
        };
        let wg = f64::from(LOOP_MAX_WORKGROUP);
        let widest = [("F", LOOP_MAX_FEATURES as f64), ("WG", wg), ("K", 1.0)];
        // The most logits, over the features its registers then hold.
        let most = [("F", 4.0), ("WG", wg), ("K", LOOP_MAX_K as f64)];
        // The loss kernels with ten logits.
        let ten = [("K", 10.0)];
        for (k, constants) in Kernel::ALL
            .iter()
            .map(|&k| (k, &[][..]))
            .chain([(Kernel::LrLoop, &most[..])])
            .chain([Kernel::LossMetrics, Kernel::LrPass, Kernel::MlpPass].map(|k| (k, &ten[..])))
        {
            let constants = if k == Kernel::LrLoop && constants.is_empty() {
                &widest[..]
            } else {
                constants
            };
            let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
            ctx.pipeline_with(k, constants);
            let err = pollster::block_on(scope.pop());
            assert!(err.is_none(), "{} {constants:?}: {err:?}", k.name());
        }
    }
}

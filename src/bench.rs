//! `wgtrain bench`: training speed per configuration (backend × GPU sync mode) on generated
//! data, with a fixed number of iterations.
//!
//! What is timed is the library's own training loop, [`train::train`](crate::train::train),
//! from the first forward pass to the returned weights: `iters` updates and `iters + 1` forward
//! passes whose metrics are read back to the host, so on a GPU the clock only stops once the
//! device has finished the work. Data generation, upload, pipeline creation and device opening
//! are set-up and are not timed. Each configuration gets one discarded warm-up run; the timed
//! runs are then interleaved (repeat 1 of every configuration, then repeat 2, ...) so that
//! drifts of the machine hit every configuration alike, and speedups are paired by repeat.
//!
//! The flags and the spec they ask for live in `spec`, the measuring in `measure`, the report
//! and its human, Markdown and JSON forms in `report`; all of it is re-exported here.

mod measure;
mod report;
mod spec;

pub use measure::{bench_data, run};
pub use report::{BenchReport, ConfigResult, Speedup, Stats, fmt_bytes, fmt_time};
pub use spec::{BenchArgs, BenchBackend, BenchConfig, BenchSpec, GpuKernels, configs, parse_count};

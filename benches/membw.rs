//! Memory read bandwidth of this machine: the yardstick for the "effective GB/s" that
//! `wgtrain bench` reports (bytes of X per iteration / time per iteration).
//!
//! `cargo bench --bench membw [-- MiB]`: sums a buffer of f32 (default 1024 MiB, far beyond
//! any L3) with 1 thread and with one thread per core, each thread its own contiguous part,
//! 16 independent accumulators so the adds vectorize and the loads, not the adds, limit it.
//! Prints the median and best of 9 passes in GB/s (10⁹ bytes/s). It also reads buffers the
//! size of X at 1,000,000 × 64 (256 MB) and at 100,000 × 64 (25.6 MB, which a 32 MB L3 keeps
//! resident), the two sizes docs/benchmarks.md reports.

use std::hint::black_box;
use std::time::Instant;

fn sum(part: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = part.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += *x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn read_pass(buf: &[f32], threads: usize) -> f64 {
    let per = buf.len().div_ceil(threads);
    let start = Instant::now();
    let total: f32 = std::thread::scope(|s| {
        let hs: Vec<_> = buf
            .chunks(per)
            .map(|part| s.spawn(move || sum(black_box(part))))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("reader thread"))
            .sum()
    });
    black_box(total);
    start.elapsed().as_secs_f64()
}

fn measure(label: &str, bytes: usize, threads: usize) {
    let buf: Vec<f32> = (0..bytes / 4).map(|i| (i % 7) as f32).collect();
    let passes = if bytes > 100_000_000 { 9 } else { 99 };
    read_pass(&buf, threads); // warm-up: pages touched, threads started once
    let mut gbs: Vec<f64> = (0..passes)
        .map(|_| bytes as f64 / read_pass(&buf, threads) / 1e9)
        .collect();
    gbs.sort_by(f64::total_cmp);
    println!(
        "{label:<28} {threads} thread(s): median {:6.2} GB/s, best {:6.2} GB/s ({passes} passes)",
        gbs[passes / 2],
        gbs[passes - 1]
    );
}

fn main() {
    let mib: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let big = mib << 20;
    let small = 100_000 * 64 * 4;
    for threads in [1, cores] {
        measure(&format!("read {mib} MiB (DRAM)"), big, threads);
    }
    for threads in [1, cores] {
        measure("read 256 MB (X of 1M×64)", 10 * small, threads);
    }
    for threads in [1, cores] {
        measure("read 25.6 MB (X of 100k×64)", small, threads);
    }
}

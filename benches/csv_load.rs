//! CSV loading: `load_csv` of one file with the rayon pool at 1 thread and at one per core
//! (the parallel row parser of `src/data/chunks.rs`), the part of `wgtrain train`'s setup that
//! docs/benchmarks.md compares with `pandas.read_csv` (`benches/peers/csv_load.py`).
//!
//! `cargo bench --bench csv_load [-- FILE.csv]`: without a file, writes 100,000 rows of 64
//! features (`%.7g`-like, about half negative, magnitudes 1e-3 to 1e3) and a 0/1 label to a
//! temporary file first. Prints the median and best of 7 loads per thread count, in seconds.

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use wgtrain::data::{CsvOptions, load_csv};

fn generate(path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let f = 64;
    let head: Vec<String> = (0..f)
        .map(|j| format!("f{j}"))
        .chain(["y".into()])
        .collect();
    writeln!(out, "{}", head.join(",")).expect("write");
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..100_000 {
        let mut line = String::new();
        let mut sum = 0.0;
        for j in 0..f {
            let v = (next() - 0.5) * 10f64.powf(next() * 6.0 - 3.0);
            if j < 2 {
                sum += v;
            }
            line += &format!("{:.6e},", v);
        }
        writeln!(out, "{line}{}", u8::from(sum > 0.0)).expect("write");
    }
}

fn main() {
    let arg = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = match arg {
        Some(p) => PathBuf::from(p),
        None => {
            let p = dir.path().join("bench.csv");
            generate(&p);
            p
        }
    };
    let bytes = std::fs::metadata(&path).expect("metadata").len();
    println!("{} ({:.1} MB)", path.display(), bytes as f64 / 1e6);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, cores] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        let mut times: Vec<f64> = (0..7)
            .map(|_| {
                let t = Instant::now();
                let d = pool.install(|| load_csv(&path, &CsvOptions::default()).expect("load"));
                black_box(d.x.len());
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{threads} thread(s): median {:.4} s, best {:.4} s",
            times[3], times[0]
        );
    }
}

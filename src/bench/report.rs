//! The results of `wgtrain bench`: the statistics of a sample and the report, written for
//! people (hyperfine-style), as a Markdown table or as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::spec::BenchConfig;
use crate::backend::AdapterDesc;
use crate::model::Activation;

/// Order statistics of a sample (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub median: f64,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one value.
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// Panics on an empty sample.
    pub fn of(xs: &[f64]) -> Stats {
        assert!(!xs.is_empty(), "statistics of an empty sample");
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let mean = v.iter().sum::<f64>() / n as f64;
        let stddev = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Stats {
            median,
            mean,
            stddev,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// A configuration's speed relative to the first: t_first / t_this per repeat (above 1: this
/// one is faster).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Speedup {
    pub against: BenchConfig,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The measurements of one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigResult {
    pub label: String,
    pub config: BenchConfig,
    pub adapter: Option<AdapterDesc>,
    /// The discarded warm-up run's training time.
    pub warmup_train_s: f64,
    /// Training time of each timed run, in run order.
    pub train_s: Vec<f64>,
    /// `train_s / iters` of each timed run.
    pub per_iteration_s: Vec<f64>,
    /// Of `per_iteration_s`.
    pub per_iteration: Stats,
    /// 1 / median time per iteration.
    pub iterations_per_s: f64,
    /// Bytes of X per iteration / median time per iteration, in 10⁹ bytes/s.
    pub gb_per_s: f64,
    /// FLOPs per iteration / median time per iteration, in 10⁹/s.
    pub gflop_per_s: f64,
    pub speedup: Speedup,
    /// Loss and accuracy of the last timed run's final weights (a sanity check that it trained).
    pub final_loss: f64,
    pub final_accuracy: f64,
}

/// A whole benchmark: its parameters and one result per configuration.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub wgtrain_version: String,
    pub data: String,
    pub rows: usize,
    pub features: usize,
    pub layers: Vec<usize>,
    /// `None` for logistic regression.
    pub activation: Option<Activation>,
    pub lr: f32,
    pub iters: u64,
    pub repeats: usize,
    pub seed: u64,
    pub chunk: Option<u32>,
    pub bytes_per_iteration: u64,
    pub flops_per_iteration: f64,
    pub flop_formula: String,
    pub timing_method: String,
    pub results: Vec<ConfigResult>,
}

/// A duration in the unit that suits it, hyperfine-style.
pub fn fmt_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn model_name(r: &BenchReport) -> String {
    let layers: Vec<String> = r.layers.iter().map(|l| l.to_string()).collect();
    match r.activation {
        None => format!("logistic regression {}", layers.join("→")),
        Some(a) => format!("MLP {} ({})", layers.join("→"), a.name()),
    }
}

fn adapter_name(c: &ConfigResult) -> String {
    match &c.adapter {
        Some(a) => format!(" [{}, {}]", a.name, a.api),
        None => String::new(),
    }
}

impl BenchReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a bench report always serializes")
    }

    fn headline(&self) -> String {
        format!(
            "{}, {} rows × {} features, lr {}, {} iterations × {} runs (+1 warm-up) per configuration{}",
            model_name(self),
            self.rows,
            self.features,
            self.lr,
            self.iters,
            self.repeats,
            match self.chunk {
                Some(k) => format!(", chunk {k}"),
                None => String::new(),
            }
        )
    }

    /// The report for people, hyperfine-style.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}\n", self.headline());
        for (i, c) in self.results.iter().enumerate() {
            let p = &c.per_iteration;
            let _ = writeln!(s, "Benchmark {}: {}{}", i + 1, c.label, adapter_name(c));
            let _ = writeln!(
                s,
                "  Time per iteration (median):    {:>10}   [min … max: {} … {}]",
                fmt_time(p.median),
                fmt_time(p.min),
                fmt_time(p.max)
            );
            let _ = writeln!(
                s,
                "  Time per iteration (mean ± σ):  {:>10} ± {}",
                fmt_time(p.mean),
                fmt_time(p.stddev)
            );
            let _ = writeln!(
                s,
                "  Throughput: {:.1} iterations/s, {:.2} GB/s¹, {:.2} GFLOP/s²   (final loss {:.4}, accuracy {:.4})\n",
                c.iterations_per_s, c.gb_per_s, c.gflop_per_s, c.final_loss, c.final_accuracy
            );
        }
        if self.results.len() > 1 {
            let base = &self.results[0].label;
            let _ = writeln!(s, "Summary (speed relative to {base}, paired by run)");
            for c in &self.results[1..] {
                let sp = &c.speedup;
                let verdict = if sp.median >= 1.0 {
                    format!("{:.2}× faster", sp.median)
                } else {
                    format!("{:.2}× slower", 1.0 / sp.median)
                };
                let _ = writeln!(
                    s,
                    "  {} ran {:.3} ({:.3} … {:.3}) times the speed of {base}: {verdict}",
                    c.label, sp.median, sp.min, sp.max
                );
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "¹ bytes of X per iteration = rows·features·4 = {} (read at least once per iteration); GB = 10⁹ bytes",
            fmt_bytes(self.bytes_per_iteration)
        );
        let _ = writeln!(s, "² {}", self.flop_formula);
        let _ = write!(s, "Timing: {}.", self.timing_method);
        s
    }

    /// A Markdown table, with the formulas as footnotes.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "**{}**\n", self.headline());
        let base = self
            .results
            .first()
            .map(|c| c.label.clone())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| Configuration | Median / iteration | Min … max | Mean ± σ | Iterations/s | GB/s¹ | GFLOP/s² | Speed vs {base} (min … max) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for c in &self.results {
            let p = &c.per_iteration;
            let _ = writeln!(
                s,
                "| {}{} | {} | {} … {} | {} ± {} | {:.1} | {:.2} | {:.2} | {:.3} ({:.3} … {:.3}) |",
                c.label,
                adapter_name(c),
                fmt_time(p.median),
                fmt_time(p.min),
                fmt_time(p.max),
                fmt_time(p.mean),
                fmt_time(p.stddev),
                c.iterations_per_s,
                c.gb_per_s,
                c.gflop_per_s,
                c.speedup.median,
                c.speedup.min,
                c.speedup.max
            );
        }
        let _ = writeln!(
            s,
            "\n¹ bytes of X per iteration = rows·features·4 = {} (read at least once per iteration); GB = 10⁹ bytes.  ",
            fmt_bytes(self.bytes_per_iteration)
        );
        let _ = writeln!(s, "² {}.  ", self.flop_formula);
        let _ = write!(s, "Timing: {}.", self.timing_method);
        s
    }
}

/// A byte count in decimal units (10⁶ = MB).
pub fn fmt_bytes(b: u64) -> String {
    let f = b as f64;
    if f >= 1e9 {
        format!("{:.2} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.2} kB", f / 1e3)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_odd_and_even_samples() {
        let s = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.mean), (2.0, 1.0, 3.0, 2.0));
        assert!((s.stddev - 1.0).abs() < 1e-12);
        let s = Stats::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!(s.median, 2.5);
        assert_eq!(Stats::of(&[5.0]).stddev, 0.0);
    }
}

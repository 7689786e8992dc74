//! The progress bar of `wgtrain train` on an interactive terminal (iteration, the monitored
//! metric, the best so far, iterations per second and the most time left), and a log writer
//! that prints env_logger lines above the bar instead of through it.
//!
//! The bar is driven by the checks the training loop reports (`job::run`'s `observe`); with
//! `--sync chunk` on a GPU they arrive in bursts, once per chunk, and so do the bar's updates.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::Metric;
use crate::stop::StopRule;
use crate::train::{CheckRecord, Monitor};

/// The bar on screen, if any, so that other output can step around it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// The bar redraws at most this often (a check can take microseconds).
const REDRAW: Duration = Duration::from_millis(100);

/// Whether a bar belongs on stderr: it is a terminal and `--quiet` was not given.
pub fn wanted(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// Prints a line on stderr, above the progress bar if one is showing.
pub fn eprintln_above(line: &str) {
    let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let print = || {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    };
    match active {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// A `Write` for env_logger's `Target::Pipe`: each record goes to stderr, above the progress
/// bar if one is showing (env_logger writes a record in one `write_all`).
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let write = || std::io::stderr().lock().write_all(buf);
        match active {
            Some(bar) => bar.suspend(write)?,
            None => write()?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// What the bar shows, kept up to date from every check.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub metric: Metric,
    /// `None`: the validation rows when a check has them, else the training rows (the
    /// default of `--monitor`).
    pub monitor: Option<Monitor>,
    pub max_iter: u64,
    pub max_time: Option<f64>,
    /// Checks below this iteration do not set the best (`--warmup`).
    pub warmup: u64,
    pub iteration: u64,
    pub elapsed_s: f64,
    pub value: Option<f64>,
    /// The value is the validation rows'.
    pub on_val: bool,
    /// (iteration, value) of the best check so far.
    pub best: Option<(u64, f64)>,
}

impl Status {
    pub fn new(rule: &StopRule, monitor: Option<Monitor>) -> Self {
        Status {
            metric: rule.metric,
            monitor,
            max_iter: rule.max_iter,
            max_time: rule.max_time,
            warmup: rule.warmup,
            iteration: 0,
            elapsed_s: 0.0,
            value: None,
            on_val: false,
            best: None,
        }
    }

    /// Takes in one check.
    pub fn observe(&mut self, c: &CheckRecord) {
        let (m, on_val) = match (self.monitor, c.val) {
            (Some(Monitor::Train), _) | (_, None) => (c.train, false),
            (_, Some(v)) => (v, true),
        };
        self.on_val = on_val;
        let v = m.get(self.metric);
        self.iteration = c.iteration;
        self.elapsed_s = c.elapsed_s;
        self.value = Some(v);
        if c.iteration >= self.warmup && v.is_finite() {
            let better = match self.best {
                None => true,
                Some((_, b)) if self.metric.higher_is_better() => v > b,
                Some((_, b)) => v < b,
            };
            if better {
                self.best = Some((c.iteration, v));
            }
        }
    }

    /// Iterations (updates) per second so far.
    pub fn rate(&self) -> Option<f64> {
        (self.elapsed_s > 0.0 && self.iteration > 0).then(|| self.iteration as f64 / self.elapsed_s)
    }

    /// The most seconds the run can still take: until `--max-iter` at the current rate, or
    /// until `--max-time`, whichever comes first. `None` while the rate is unknown and there
    /// is no time limit.
    pub fn most_left_s(&self) -> Option<f64> {
        let by_iter = self
            .rate()
            .map(|r| self.max_iter.saturating_sub(self.iteration) as f64 / r);
        let by_time = self.max_time.map(|m| (m - self.elapsed_s).max(0.0));
        match (by_iter, by_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The bar's text after the iteration counter, e.g.
    /// `val accuracy 0.9712  1523 it/s  ≤ 12s left  best 0.9750 @ 120`: the best comes last
    /// because a narrow terminal cuts the end (a typical line fits 80 columns).
    pub fn message(&self) -> String {
        let watched = if self.on_val {
            format!("val {}", self.metric.name())
        } else {
            self.metric.name().to_string()
        };
        let mut s = match self.value {
            Some(v) => format!("{watched} {}", fmt_value(v)),
            None => format!("{watched} -"),
        };
        if let Some(r) = self.rate() {
            s.push_str(&format!("  {} it/s", fmt_rate(r)));
        }
        if let Some(left) = self.most_left_s() {
            s.push_str(&format!("  ≤ {} left", fmt_duration(left)));
        }
        if let Some((at, b)) = self.best {
            s.push_str(&format!("  best {} @ {at}", fmt_value(b)));
        }
        s
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_finite() && v.abs() < 1e4 {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    }
}

/// `42s`, `3m 07s`, `2h 05m`, `3d 04h`.
pub fn fmt_duration(s: f64) -> String {
    if !s.is_finite() || s >= 1e9 {
        return "∞".into();
    }
    let s = s.ceil() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// The progress bar of one training run; does nothing when hidden.
pub struct Progress {
    status: Status,
    shown: bool,
    bar: Option<ProgressBar>,
    drawn: Option<Instant>,
}

impl Progress {
    /// A bar on stderr when `show` (see [`wanted`]); it appears with the first check.
    pub fn new(rule: &StopRule, monitor: Option<Monitor>, show: bool) -> Self {
        Progress {
            status: Status::new(rule, monitor),
            shown: show,
            bar: None,
            drawn: None,
        }
    }

    /// The most iterations as settled once the data is read (`--max-epochs`); call it before
    /// the first check.
    pub fn set_max_iter(&mut self, max_iter: u64) {
        self.status.max_iter = max_iter;
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Takes in one check and redraws if the last redraw is old enough.
    pub fn observe(&mut self, c: &CheckRecord) {
        self.status.observe(c);
        if !self.shown || self.drawn.is_some_and(|d| d.elapsed() < REDRAW) {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(
                Some(self.status.max_iter),
                ProgressDrawTarget::stderr(),
            );
            let style = ProgressStyle::with_template("{bar:10.cyan/blue} {pos}/{len}  {wide_msg}")
                .expect("a valid template")
                .progress_chars("█▉▊▋▌▍▎▏ ");
            bar.set_style(style);
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
            bar
        });
        // The message's draw shows the new position too.
        bar.set_position(self.status.iteration);
        bar.set_message(self.status.message());
        self.drawn = Some(Instant::now());
    }

    /// Takes the bar off the screen (the report follows).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::test_metrics as metrics;

    fn check(iteration: u64, elapsed_s: f64, train: f64, val: Option<f64>) -> CheckRecord {
        CheckRecord {
            iteration,
            elapsed_s,
            train: metrics(train, 1.0 - train),
            val: val.map(|v| metrics(v, 1.0 - v)),
        }
    }

    fn rule(metric: Metric, max_iter: u64, max_time: Option<f64>, warmup: u64) -> StopRule {
        StopRule {
            metric,
            max_iter,
            max_time,
            warmup,
            ..StopRule::default()
        }
    }

    #[test]
    fn watches_val_by_default_and_keeps_the_best() {
        let mut s = Status::new(&rule(Metric::Accuracy, 1000, None, 0), None);
        s.observe(&check(0, 0.0, 0.5, Some(0.4)));
        assert_eq!(s.best, Some((0, 0.4)));
        s.observe(&check(100, 1.0, 0.9, Some(0.8)));
        s.observe(&check(200, 2.0, 0.95, Some(0.7)));
        assert_eq!(s.value, Some(0.7));
        assert_eq!(s.best, Some((100, 0.8)));
        assert_eq!(s.rate(), Some(100.0));
        // 800 iterations left at 100 it/s.
        assert_eq!(s.most_left_s(), Some(8.0));
        let m = s.message();
        assert_eq!(
            m,
            "val accuracy 0.7000  100 it/s  ≤ 8s left  best 0.8000 @ 100"
        );
    }

    #[test]
    fn loss_improves_downwards_and_warmup_sets_no_best() {
        let mut s = Status::new(
            &rule(Metric::Loss, 1000, Some(5.0), 10),
            Some(Monitor::Train),
        );
        s.observe(&check(0, 0.0, 0.9, Some(0.1)));
        assert_eq!(s.best, None);
        assert_eq!(s.rate(), None);
        assert_eq!(s.most_left_s(), Some(5.0));
        s.observe(&check(10, 0.5, 0.8, Some(0.1)));
        s.observe(&check(20, 1.0, 0.7, Some(0.1)));
        // The loss (1 − accuracy here) was lowest at 10.
        assert_eq!(s.best.map(|b| b.0), Some(10));
        // max_time (4 s left) comes before max_iter (980 / 20 = 49 s).
        assert_eq!(s.most_left_s(), Some(4.0));
        assert_eq!(
            s.message(),
            "loss 0.3000  20.0 it/s  ≤ 4s left  best 0.2000 @ 10"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(0.2), "1s");
        assert_eq!(fmt_duration(59.0), "59s");
        assert_eq!(fmt_duration(187.0), "3m 07s");
        assert_eq!(fmt_duration(7500.0), "2h 05m");
        assert_eq!(fmt_duration(3.0 * 86400.0 + 4.0 * 3600.0), "3d 04h");
        assert_eq!(fmt_duration(f64::INFINITY), "∞");
    }

    #[test]
    fn a_hidden_bar_draws_nothing() {
        let mut p = Progress::new(&rule(Metric::Accuracy, 10, None, 0), None, false);
        p.observe(&check(0, 0.0, 0.5, None));
        assert!(p.bar.is_none());
        assert_eq!(p.status().iteration, 0);
    }
}

//! `train --plot curve.svg`: the monitored metric and the loss (training and validation rows)
//! against iteration, with the threshold as a dashed line and the stop iteration marked.
//!
//! The points come from the checks the training loop reports. A long run is thinned as it
//! goes (every other point is dropped whenever [`MAX_POINTS`] are held), so memory and the
//! file stay small; the last check is always drawn.

use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::atomic;
use crate::error::{Error, Result};
use crate::metrics::Metric;
use crate::stop::StopRule;
use crate::train::{CheckRecord, Monitor, StopInfo};

/// At most this many checks are kept; then every other one is dropped.
pub const MAX_POINTS: usize = 2000;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 640;
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(230, 120, 20);
const THRESHOLD: RGBColor = RGBColor(200, 30, 30);
const STOP: RGBColor = RGBColor(60, 60, 60);
const BEST: RGBColor = RGBColor(40, 150, 60);
const LEGEND_FONT: u32 = 13;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Point {
    iteration: u64,
    train_metric: f64,
    train_loss: f64,
    val_metric: Option<f64>,
    val_loss: Option<f64>,
}

/// One curve of a panel.
struct Series {
    name: String,
    color: RGBColor,
    /// The curve the stop rules watch (drawn thicker).
    monitored: bool,
    line: Vec<(f64, f64)>,
}

/// The checks of one run, thinned, ready to draw.
#[derive(Clone, Debug)]
pub struct Curve {
    metric: Metric,
    threshold: Option<f64>,
    /// `None`: validation rows when the checks have them (the default of `--monitor`).
    monitor: Option<Monitor>,
    points: Vec<Point>,
    /// Keep a check only if it lies this many iterations past the last one kept.
    stride: u64,
    /// The latest check, kept or not.
    last: Option<Point>,
}

impl Curve {
    pub fn new(rule: &StopRule, monitor: Option<Monitor>) -> Self {
        Curve {
            metric: rule.metric,
            threshold: rule.threshold,
            monitor,
            points: Vec::new(),
            stride: 1,
            last: None,
        }
    }

    /// Takes in one check.
    pub fn push(&mut self, c: &CheckRecord) {
        let p = Point {
            iteration: c.iteration,
            train_metric: c.train.get(self.metric),
            train_loss: c.train.loss,
            val_metric: c.val.map(|v| v.get(self.metric)),
            val_loss: c.val.map(|v| v.loss),
        };
        self.last = Some(p);
        let due = self
            .points
            .last()
            .is_none_or(|q| p.iteration >= q.iteration.saturating_add(self.stride));
        if !due {
            return;
        }
        self.points.push(p);
        if self.points.len() >= MAX_POINTS {
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride = self.stride.saturating_mul(2);
        }
    }

    /// The points drawn: those kept and the latest check.
    fn drawn(&self) -> Vec<Point> {
        let mut v = self.points.clone();
        if let Some(l) = self.last {
            if v.last() != Some(&l) {
                v.push(l);
            }
        }
        v
    }

    /// Number of points that would be drawn.
    pub fn len(&self) -> usize {
        self.drawn().len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// The chart as SVG text; `stop` marks where and why the run ended.
    pub fn svg(&self, stop: &StopInfo) -> std::result::Result<String, String> {
        let mut out = String::new();
        self.draw(&mut out, stop).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Renders the chart and writes it to `path` (atomically for a regular file; see
    /// [`atomic::write_atomic`]).
    pub fn write(&self, path: &Path, stop: &StopInfo) -> Result<()> {
        let svg = self.svg(stop).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            err: std::io::Error::other(format!("drawing the chart: {e}")),
        })?;
        atomic::write_atomic(path, svg.as_bytes())
    }

    fn draw(
        &self,
        out: &mut String,
        stop: &StopInfo,
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let pts = self.drawn();
        let has_val = pts.iter().any(|p| p.val_metric.is_some());
        let on_val = match self.monitor {
            Some(Monitor::Val) => true,
            Some(Monitor::Train) => false,
            None => has_val,
        };
        let last = pts.iter().map(|p| p.iteration).max().unwrap_or(0).max(1) as f64;
        // Room right of the last check, so that a stop there does not hide in the frame.
        let x_max = (last * 1.03).max(last + 1.0);
        let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let watched = if on_val {
            format!("val {}", self.metric.name())
        } else {
            self.metric.name().to_string()
        };
        let title = format!(
            "{watched}: stopped at iteration {} ({})",
            stop.stopped_at,
            stop.reason.name()
        );
        let (title_area, body) = root.split_vertically(36);
        title_area.titled(&title, ("sans-serif", 20))?;
        let panels: Vec<(Metric, DrawingArea<_, _>)> = if self.metric == Metric::Loss {
            vec![(Metric::Loss, body)]
        } else {
            let (upper, lower) = body.split_vertically((HEIGHT - 36) * 11 / 20);
            vec![(self.metric, upper), (Metric::Loss, lower)]
        };
        let last_panel = panels.len() - 1;
        for (i, (metric, area)) in panels.into_iter().enumerate() {
            let is_loss = metric == Metric::Loss;
            let series: Vec<Series> = {
                let mut s = Vec::new();
                let get = |p: &Point, val: bool| match (is_loss, val) {
                    (true, false) => Some(p.train_loss),
                    (true, true) => p.val_loss,
                    (false, false) => Some(p.train_metric),
                    (false, true) => p.val_metric,
                };
                for val in [false, true] {
                    let line: Vec<(f64, f64)> = pts
                        .iter()
                        .filter_map(|p| get(p, val).map(|v| (p.iteration as f64, v)))
                        .filter(|(_, v)| v.is_finite())
                        .collect();
                    if line.is_empty() {
                        continue;
                    }
                    let monitored = metric == self.metric && val == on_val;
                    let name = format!(
                        "{} {}{}",
                        if val { "val" } else { "train" },
                        metric.name(),
                        if monitored { " (monitored)" } else { "" }
                    );
                    s.push(Series {
                        name,
                        color: if val { VAL } else { TRAIN },
                        monitored,
                        line,
                    });
                }
                s
            };
            let threshold = if metric == self.metric {
                self.threshold
            } else {
                None
            };
            let (y_lo, y_hi) = y_range(
                series.iter().flat_map(|s| s.line.iter().map(|p| p.1)),
                threshold,
                is_loss,
            );
            let mut chart = ChartBuilder::on(&area)
                .margin_left(10)
                .margin_right(24)
                .margin_top(8)
                .margin_bottom(4)
                .x_label_area_size(if i == last_panel { 40 } else { 22 })
                .y_label_area_size(64)
                .build_cartesian_2d(0f64..x_max, y_lo..y_hi)?;
            let mut mesh = chart.configure_mesh();
            mesh.light_line_style(RGBColor(244, 244, 244))
                .bold_line_style(RGBColor(220, 220, 220))
                .y_desc(metric.name())
                .x_label_formatter(&|x| {
                    // Iterations are whole: fractional ticks of a short run stay unlabelled.
                    if x.fract() == 0.0 {
                        format!("{x:.0}")
                    } else {
                        String::new()
                    }
                })
                .label_style(("sans-serif", 13))
                .axis_desc_style(("sans-serif", 15));
            if i == last_panel {
                mesh.x_desc("iteration");
            }
            mesh.draw()?;
            // What the legend should not cover, and its lines (to size it).
            let mut lines: Vec<Vec<(f64, f64)>> = Vec::new();
            let mut labels: Vec<String> = Vec::new();
            for Series {
                name,
                color,
                monitored,
                line,
            } in series
            {
                let style = color.stroke_width(if monitored { 3 } else { 2 });
                lines.push(line.clone());
                let name = legend_text(name);
                labels.push(name.clone());
                chart
                    .draw_series(LineSeries::new(line, style))?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
            }
            if let Some(t) = threshold {
                let style = THRESHOLD.stroke_width(2);
                lines.push(vec![(0.0, t), (x_max, t)]);
                let text = legend_text(format!("threshold {t}"));
                labels.push(text.clone());
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(0.0, t), (x_max, t)],
                        8,
                        5,
                        style,
                    ))?
                    .label(text)
                    .legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x, y), (x + 22, y)], 6, 4, style)
                    });
            }
            if let (Some(b), Some(v)) = (stop.best_iteration, stop.best_value) {
                if metric == self.metric && v.is_finite() {
                    lines.push(vec![(b as f64, v)]);
                    let text = legend_text(format!("best {} @ {b}", short(v)));
                    labels.push(text.clone());
                    chart
                        .draw_series(std::iter::once(Circle::new(
                            (b as f64, v),
                            5,
                            BEST.filled(),
                        )))?
                        .label(text)
                        .legend(move |(x, y)| Circle::new((x + 11, y), 4, BEST.filled()));
                }
            }
            let x = stop.stopped_at as f64;
            let style = STOP.stroke_width(2);
            let text = legend_text(format!(
                "stop @ {}: {}",
                stop.stopped_at,
                stop.reason.name()
            ));
            labels.push(text.clone());
            chart
                .draw_series(LineSeries::new(vec![(x, y_lo), (x, y_hi)], style))?
                .label(text)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x + 11, y - 7), (x + 11, y + 7)], style)
                });
            if stop.restored_best && stop.iteration != stop.stopped_at {
                let x = stop.iteration as f64;
                let style = BEST.stroke_width(2);
                let text = legend_text(format!("returned weights @ {}", stop.iteration));
                labels.push(text.clone());
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(x, y_lo), (x, y_hi)],
                        6,
                        4,
                        style,
                    ))?
                    .label(text)
                    .legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x + 11, y - 7), (x + 11, y + 7)], 4, 3, style)
                    });
            }
            let spot = legend_spot(
                &lines,
                (x_max, y_lo, y_hi),
                chart.plotting_area().dim_in_pixel(),
                &labels,
            );
            chart
                .configure_series_labels()
                .position(spot)
                .label_font(("sans-serif", LEGEND_FONT))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(160, 160, 160))
                .draw()?;
        }
        root.present()?;
        Ok(())
    }
}

/// A legend line padded with trailing spaces. Without font files plotters guesses text
/// widths at 0.7 em a character, short of common sans-serif fonts; the box it sizes from the
/// guess would cut the text. SVG viewers drop trailing spaces, the guess counts them.
fn legend_text(text: String) -> String {
    let pad = text.chars().count().div_ceil(4);
    text + &" ".repeat(pad)
}

/// Where the legend covers the fewest curve points: the right-hand corners first, then the
/// middle of the right side, then the left. `lines` are polylines in data coordinates over
/// x in [0, x_max], y in [y_lo, y_hi]; `area` is the plotting area in pixels.
fn legend_spot(
    lines: &[Vec<(f64, f64)>],
    (x_max, y_lo, y_hi): (f64, f64, f64),
    area: (u32, u32),
    labels: &[String],
) -> SeriesLabelPosition {
    use SeriesLabelPosition::*;
    let (w, h) = (f64::from(area.0), f64::from(area.1));
    // The legend's size as plotters estimates it: text, 30 px of symbol, 10 px margins.
    let em = f64::from(LEGEND_FONT) / 1.24 / 1.24;
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let (bw, bh) = (
        em * 0.7 * chars + 50.0 + 8.0,
        labels.len() as f64 * f64::from(LEGEND_FONT) * 1.25 + 20.0 + 8.0,
    );
    let to_px = |(x, y): (f64, f64)| (x / x_max * w, (y_hi - y) / (y_hi - y_lo) * h);
    // Points along every segment, a few pixels apart.
    let mut samples = Vec::new();
    for line in lines {
        if let [only] = line.as_slice() {
            samples.push(to_px(*only));
        }
        for seg in line.windows(2) {
            let (a, b) = (to_px(seg[0]), to_px(seg[1]));
            let n = ((b.0 - a.0).hypot(b.1 - a.1) / 3.0)
                .ceil()
                .clamp(1.0, 200.0) as usize;
            samples.extend((0..=n).map(|k| {
                let f = k as f64 / n as f64;
                (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f)
            }));
        }
    }
    let (left, centre, right) = (0.0, (w - bw) / 2.0, w - bw);
    let (top, middle, bottom) = (0.0, (h - bh) / 2.0, h - bh);
    let candidates = [
        (UpperRight, right, top),
        (LowerRight, right, bottom),
        (MiddleRight, right, middle),
        (UpperLeft, left, top),
        (LowerLeft, left, bottom),
        (UpperMiddle, centre, top),
        (LowerMiddle, centre, bottom),
    ];
    let covered = |x0: f64, y0: f64| {
        samples
            .iter()
            .filter(|(x, y)| *x >= x0 && *x <= x0 + bw && *y >= y0 && *y <= y0 + bh)
            .count()
    };
    let mut best = (UpperRight, usize::MAX);
    for (pos, x0, y0) in candidates {
        let n = covered(x0, y0);
        if n < best.1 {
            best = (pos, n);
        }
    }
    best.0
}

/// A y range holding every value and the threshold, padded; scores stay within [0, 1] and
/// the loss above 0.
fn y_range(values: impl Iterator<Item = f64>, threshold: Option<f64>, loss: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.chain(threshold) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.06).max(1e-3);
    let (mut a, mut b) = (lo - pad, hi + pad);
    if loss {
        a = a.max(0.0);
    } else {
        a = a.max(0.0);
        b = b.min(1.0);
    }
    if b <= a {
        b = a + 1e-3;
    }
    (a, b)
}

fn short(v: f64) -> String {
    if v.abs() >= 1e4 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::test_metrics as metrics;
    use crate::stop::StopReason;

    fn stop(at: u64) -> StopInfo {
        StopInfo {
            reason: StopReason::Threshold,
            iteration: at,
            stopped_at: at,
            epoch: at as f64,
            metric: Metric::Accuracy,
            monitor: Monitor::Val,
            value: 0.95,
            value_at_stop: 0.95,
            threshold: Some(0.95),
            best_iteration: Some(at),
            best_value: Some(0.95),
            restored_best: false,
            non_finite_at: None,
            early_bird: None,
        }
    }

    #[test]
    fn thins_long_runs_and_keeps_the_last_check() {
        let rule = StopRule::default();
        let mut c = Curve::new(&rule, None);
        let n = 10 * MAX_POINTS as u64 + 7;
        for t in 0..=n {
            c.push(&CheckRecord {
                iteration: t,
                elapsed_s: 0.0,
                train: metrics(0.5, 0.7),
                val: None,
            });
        }
        assert!(c.len() <= MAX_POINTS + 1, "{}", c.len());
        assert!(c.len() >= MAX_POINTS / 2, "{}", c.len());
        let d = c.drawn();
        assert_eq!(d.first().unwrap().iteration, 0);
        assert_eq!(d.last().unwrap().iteration, n);
        assert!(d.windows(2).all(|w| w[0].iteration < w[1].iteration));
    }

    #[test]
    fn draws_both_panels_the_threshold_and_the_stop() {
        let rule = StopRule {
            threshold: Some(0.95),
            ..StopRule::default()
        };
        let mut c = Curve::new(&rule, None);
        for t in 0..=40u64 {
            let a = 0.5 + 0.45 * t as f64 / 40.0;
            c.push(&CheckRecord {
                iteration: t,
                elapsed_s: 0.0,
                train: metrics(a, 0.7 - a / 2.0),
                val: Some(metrics(a - 0.01, 0.72 - a / 2.0)),
            });
        }
        let svg = c.svg(&stop(40)).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for text in [
            "val accuracy: stopped at iteration 40 (threshold)",
            "train accuracy",
            "val accuracy (monitored)",
            "train loss",
            "val loss",
            "threshold 0.95",
            "stop @ 40: threshold",
            "iteration",
        ] {
            assert!(svg.contains(text), "no \"{text}\" in the SVG");
        }
    }

    #[test]
    fn ranges_hold_the_threshold() {
        assert_eq!(y_range([0.6, 0.8].into_iter(), Some(0.99), false).1, 1.0);
        let (a, b) = y_range([0.6, 0.8].into_iter(), Some(0.9), false);
        assert!(a < 0.6 && b > 0.9 && b < 1.0);
        assert_eq!(y_range([0.01, 0.7].into_iter(), None, true).0, 0.0);
        assert!(y_range([0.3, 0.7].into_iter(), None, true).0 > 0.2);
        assert_eq!(y_range(std::iter::empty(), None, false), (0.0, 1.0));
    }
}

//! A pruning run's outputs besides the model: the human report, the `--log` CSV of the rounds
//! and the `--plot` chart of the metric against sparsity.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::{Method, PruneReport, RoundReport};
use crate::train::Monitor;

/// The watched metric as the report names it ("val accuracy").
fn watched(r: &PruneReport) -> String {
    match r.monitor {
        Monitor::Val => format!("val {}", r.metric.name()),
        Monitor::Train => r.metric.name().to_string(),
    }
}

/// What sparsity counts.
fn of_what(m: Method) -> &'static str {
    match m {
        Method::Magnitude => "weights",
        Method::Neurons => "hidden units",
    }
}

/// The report as text: the target, one line per round, the result and the compute saved.
pub fn human(r: &PruneReport) -> String {
    let mut s = String::new();
    let w = watched(r);
    let cmp = if r.metric == crate::metrics::Metric::Loss {
        "≤"
    } else {
        "≥"
    };
    let target = match r.target_from {
        "threshold" => format!("{w} {cmp} {:.4} (--threshold)", r.target),
        _ => format!(
            "{w} {cmp} {:.4} (the dense model's {:.4} {} tolerance {})",
            r.target,
            r.dense_value,
            if cmp == "≤" { "+" } else { "−" },
            r.tolerance
        ),
    };
    let on = match &r.adapter {
        Some(a) => format!("{}: {}", r.backend, a.name),
        None => r.backend.clone(),
    };
    let _ = writeln!(
        s,
        "pruning: {} ({}), {} of what is left per round, at most {} updates per round, on {on}",
        r.method.name(),
        of_what(r.method),
        r.step,
        r.round_max_iter,
    );
    let _ = writeln!(s, "target: {target}");
    let _ = writeln!(
        s,
        "{:>5}  {:>8}  {:>12}  {:>13}  {:>15}  {:>7}  met",
        "round", "sparsity", "weights kept", "after pruning", "after fine-tune", "updates"
    );
    for x in &r.rounds {
        let _ = writeln!(
            s,
            "{:>5}  {:>8.4}  {:>12}  {:>13.4}  {:>15.4}  {:>7}  {}",
            x.round,
            x.sparsity,
            x.weights_kept,
            x.metric_after_pruning,
            x.metric_after_finetune,
            x.updates,
            if x.met { "yes" } else { "no" }
        );
    }
    let res = &r.result;
    let units = match (res.units_kept, r.units_total) {
        (Some(k), Some(t)) => format!(", {k} of {t} hidden units"),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "result: round {}, sparsity {:.4} ({} of {} weights kept{units}), {w} {:.4}, layers {}",
        res.round,
        res.sparsity,
        res.weights_kept,
        r.weights_total,
        res.value,
        crate::model::layers_text(&res.layers)
    );
    let t = &r.totals;
    let _ = writeln!(
        s,
        "updates: {} against a fixed budget of {} ({} rounds × {}): {:.1}% saved",
        t.updates,
        t.fixed_budget_updates,
        r.rounds.len(),
        r.round_max_iter,
        100.0 * t.saved_fraction
    );
    let ended = match r.ended {
        "target_sparsity" => "the target sparsity was reached".to_string(),
        "round_missed" => format!(
            "round {} could not get back to the target within {} updates",
            r.rounds.len(),
            r.round_max_iter
        ),
        "nothing_left" => "nothing is left to prune".to_string(),
        "interrupted" => "interrupted".to_string(),
        _ => format!("--max-rounds {} reached", r.rounds.len()),
    };
    let _ = writeln!(s, "ended: {ended}");
    let _ = write!(
        s,
        "time: {:.3} s (setup {:.3} s, rounds {:.3} s)",
        r.timing.wall_s, r.timing.setup_s, r.timing.prune_s
    );
    s
}

/// The `--log` CSV: a header, then one line per round.
pub fn log_csv(rounds: &[RoundReport]) -> String {
    let mut s = String::from(
        "round,sparsity,weights_kept,units_kept,metric_after_pruning,metric_after_finetune,updates,met,stop_reason\n",
    );
    for r in rounds {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{}",
            r.round,
            r.sparsity,
            r.weights_kept,
            r.units_kept.map_or(String::new(), |u| u.to_string()),
            r.metric_after_pruning,
            r.metric_after_finetune,
            r.updates,
            r.met,
            r.stop_reason.name()
        );
    }
    s
}

const WIDTH: u32 = 800;
const HEIGHT: u32 = 480;

/// The `--plot` chart: the watched metric after pruning and after fine-tuning against the
/// sparsity, round by round, with the target as a line.
pub fn svg(r: &PruneReport) -> Result<String, String> {
    let mut out = String::new();
    draw(&mut out, r).map_err(|e| e.to_string())?;
    Ok(out)
}

fn draw<'a>(out: &'a mut String, r: &PruneReport) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let after: Vec<(f64, f64)> = std::iter::once((0.0, r.dense_value))
        .chain(
            r.rounds
                .iter()
                .map(|x| (x.sparsity, x.metric_after_finetune)),
        )
        .filter(|p| p.1.is_finite())
        .collect();
    let pruned: Vec<(f64, f64)> = r
        .rounds
        .iter()
        .map(|x| (x.sparsity, x.metric_after_pruning))
        .filter(|p| p.1.is_finite())
        .collect();
    let ys = after.iter().chain(&pruned).map(|p| p.1).chain([r.target]);
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "wgtrain prune ({}): {} against sparsity",
                r.method.name(),
                watched(r)
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc(format!("sparsity ({} removed)", of_what(r.method)))
        .y_desc(watched(r))
        .draw()?;
    chart
        .draw_series(LineSeries::new(after.clone(), BLUE.stroke_width(2)))?
        .label("after fine-tuning")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart.draw_series(after.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))?;
    chart
        .draw_series(pruned.iter().map(|&p| Cross::new(p, 4, RED)))?
        .label("right after pruning")
        .legend(|(x, y)| Cross::new((x + 10, y), 4, RED));
    chart
        .draw_series(LineSeries::new(
            [(0.0, r.target), (1.0, r.target)],
            BLACK.mix(0.5),
        ))?
        .label("target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

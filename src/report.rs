//! The training report: plain serializable data, a human summary and a JSON exporter.

use std::fmt::Write as _;

use serde::Serialize;

use crate::backend::AdapterDesc;
use crate::data::LabelMapping;
use crate::metrics::Metrics;
use crate::model::Activation;
use crate::stop::{StopReason, StopRule};
use crate::train::{Monitor, StopInfo};

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// "cpu" or "gpu".
    pub backend: String,
    pub adapter: Option<AdapterDesc>,
    pub data: DataInfo,
    pub model: ModelInfo,
    pub stop: StopReport,
    /// Metrics of the returned weights on the training rows.
    pub metrics: Metrics,
    /// ... and on the validation rows (null without validation data).
    pub val_metrics: Option<Metrics>,
    pub max_iter: u64,
    pub eval_every: u64,
    pub restore_best: bool,
    pub lr: f32,
    pub seed: u64,
    pub timing: Timing,
}

#[derive(Clone, Debug, Serialize)]
pub struct DataInfo {
    pub source: String,
    pub rows: usize,
    pub features: usize,
    pub positives: usize,
    pub label_mapping: LabelMapping,
    pub standardized: bool,
    /// The validation rows, if any.
    pub val: Option<ValInfo>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValInfo {
    pub source: String,
    pub rows: usize,
    pub positives: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    /// [inputs, hidden..., 1]
    pub layers: Vec<usize>,
    /// The hidden layers' activation; null for logistic regression.
    pub activation: Option<Activation>,
    pub parameters: usize,
    /// SHA-256 of the parameters' f32 little-endian bytes.
    pub checksum: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StopReport {
    #[serde(flatten)]
    pub info: StopInfo,
    /// One human sentence.
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Data loading, device and session setup.
    pub setup_s: f64,
    /// The training loop.
    pub train_s: f64,
    /// Iterations (forward, metrics and, unless stopping, backward and update) per second.
    pub iterations_per_s: f64,
}

/// The one-sentence account of a stop, e.g.
/// `stopped at iteration 137: accuracy 0.9912 >= 0.99 (threshold); 863 of 1000 iterations not needed`.
pub fn stop_message(s: &StopInfo, rule: &StopRule) -> String {
    let watched = match s.monitor {
        Monitor::Val => format!("val {}", s.metric.name()),
        Monitor::Train => s.metric.name().to_string(),
    };
    let (better, worse) = if s.metric.higher_is_better() {
        (">=", "<")
    } else {
        ("<=", ">")
    };
    let at = s.stopped_at;
    let max_iter = rule.max_iter;
    let v = short(s.value_at_stop);
    let mut msg = match s.reason {
        StopReason::Threshold => format!(
            "stopped at iteration {at}: {watched} {v} {better} {} (threshold); {} of {max_iter} iterations not needed",
            short(rule.threshold.unwrap_or(f64::NAN)),
            max_iter.saturating_sub(at)
        ),
        StopReason::Patience => format!(
            "stopped at iteration {at}: {watched} did not improve for {} checks in a row (patience); best {} at iteration {}",
            rule.patience.unwrap_or(0).max(1),
            short(s.best_value.unwrap_or(f64::NAN)),
            s.best_iteration.map_or("-".into(), |b| b.to_string())
        ),
        StopReason::Divergence => format!(
            "stopped at iteration {at}: {watched} {v} {worse} {} (divergence)",
            short(rule.divergence.unwrap_or(f64::NAN))
        ),
        StopReason::MaxTime => format!(
            "stopped at iteration {at}: the time limit of {} s was reached (max_time); {watched} {v}",
            rule.max_time.unwrap_or(f64::NAN)
        ),
        StopReason::Interrupted => format!("interrupted at iteration {at}: {watched} {v}"),
        StopReason::MaxIter => match rule.threshold {
            Some(t) => format!(
                "reached max_iter {max_iter} without meeting the threshold: {watched} {v} (threshold {})",
                short(t)
            ),
            None => format!("ran all {max_iter} iterations: {watched} {v}"),
        },
        StopReason::NonFinite if at > 0 => {
            format!("the loss became non-finite at iteration {at} (non_finite); try a smaller --lr")
        }
        StopReason::NonFinite => {
            "the loss of the initial weights is not finite (non_finite); check the data's scale"
                .into()
        }
    };
    if s.restored_best {
        msg.push_str(&format!(
            "; returned the best weights, of iteration {} ({watched} {})",
            s.iteration,
            short(s.value)
        ));
    } else if s.iteration != at {
        msg.push_str(&format!(
            "; returned the last finite weights, of iteration {} ({watched} {})",
            s.iteration,
            short(s.value)
        ));
    }
    msg
}

/// Four decimals for people; the JSON keeps every digit.
fn short(v: f64) -> String {
    format!("{v:.4}")
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// The summary printed for people.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let d = &self.data;
        let _ = writeln!(
            s,
            "data:    {}: {} rows × {} features, {} positive (label \"{}\": {} = positive, {} = negative){}",
            d.source,
            d.rows,
            d.features,
            d.positives,
            d.label_mapping.column,
            d.label_mapping.positive,
            d.label_mapping.negative,
            if d.standardized { ", standardized" } else { "" }
        );
        let layers: Vec<String> = self.model.layers.iter().map(|l| l.to_string()).collect();
        let act = match self.model.activation {
            Some(a) => format!(" ({})", a.name()),
            None => " (logistic regression)".into(),
        };
        let on = match &self.adapter {
            Some(a) => format!("gpu: {} ({}, {})", a.name, a.api, a.device_type),
            None => "cpu".into(),
        };
        let _ = writeln!(
            s,
            "model:   {}{act}, {} parameters, lr {}, on {on}",
            layers.join(" → "),
            self.model.parameters,
            self.lr
        );
        let _ = writeln!(s, "result:  {}", self.stop.message);
        let m = &self.metrics;
        let _ = writeln!(
            s,
            "{}loss {:.6}  accuracy {:.4}  precision {:.4}  recall {:.4}  f1 {:.4}  iou {:.4}",
            if self.val_metrics.is_some() {
                "train:   "
            } else {
                "metrics: "
            },
            m.loss,
            m.accuracy,
            m.precision,
            m.recall,
            m.f1,
            m.iou
        );
        let _ = writeln!(
            s,
            "counts:  TP {}  FP {}  FN {}  TN {}",
            m.tp, m.fp, m.fn_, m.tn
        );
        if let (Some(v), Some(vi)) = (&self.val_metrics, &self.data.val) {
            let _ = writeln!(
                s,
                "val:     {} rows ({}): loss {:.6}  accuracy {:.4}  precision {:.4}  recall {:.4}  f1 {:.4}  iou {:.4}",
                vi.rows, vi.source, v.loss, v.accuracy, v.precision, v.recall, v.f1, v.iou
            );
            let _ = writeln!(
                s,
                "         TP {}  FP {}  FN {}  TN {}",
                v.tp, v.fp, v.fn_, v.tn
            );
        }
        let t = &self.timing;
        let _ = writeln!(
            s,
            "time:    setup {:.3} s, training {:.3} s ({:.0} iterations/s)",
            t.setup_s, t.train_s, t.iterations_per_s
        );
        let _ = write!(s, "weights: sha256 {}", self.model.checksum);
        s
    }
}

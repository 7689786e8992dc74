//! The training report: plain serializable data, a human summary and a JSON exporter.

use std::fmt::Write as _;

use serde::Serialize;

use crate::backend::{AdapterDesc, SessionConfig};
use crate::data::LabelJson;
use crate::metrics::{ClassMetrics, Counts, Metrics};
use crate::model::{Activation, Head};
use crate::optim::{OptimizerKind, Schedule};
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
    pub metrics: FullMetrics,
    /// ... and on the validation rows (null without validation data).
    pub val_metrics: Option<FullMetrics>,
    pub max_iter: u64,
    pub eval_every: u64,
    /// The optimizer, the rate's schedule and the batches.
    pub training: TrainingInfo,
    pub restore_best: bool,
    pub lr: f32,
    pub seed: u64,
    pub timing: Timing,
}

/// How the updates were made: the optimizer with the hyperparameters it uses, the schedule
/// and the batches.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainingInfo {
    pub optimizer: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nesterov: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    pub weight_decay: f64,
    pub lr_schedule: Schedule,
    /// Rows per update (all training rows at full batch).
    pub batch_size: usize,
    pub shuffle: bool,
    pub updates_per_epoch: u64,
    /// The optimizer's step count at the start (a resumed state's).
    pub start_step: u64,
}

impl TrainingInfo {
    /// One line for people, `None` for plain full-batch gradient descent at a constant rate
    /// from step 0 (the report then reads as it always did).
    pub fn text(&self) -> Option<String> {
        let mut parts = Vec::new();
        let mut o = self.optimizer.to_string();
        match (self.momentum, self.beta1, self.beta2, self.eps) {
            (Some(m), ..) if m != 0.0 => {
                let kind = if self.nesterov {
                    "Nesterov momentum"
                } else {
                    "momentum"
                };
                o = format!("{o} ({kind} {m})");
            }
            (_, Some(b1), Some(b2), Some(e)) => o = format!("{o} (β₁ {b1}, β₂ {b2}, ε {e:e})"),
            _ => {}
        }
        if self.weight_decay != 0.0 {
            o = format!("{o}, weight decay {} on weights", self.weight_decay);
        }
        parts.push(o);
        match self.lr_schedule {
            Schedule::Constant => {}
            Schedule::Step { step, gamma } => {
                parts.push(format!("lr ×{gamma} every {step} updates"))
            }
            Schedule::Cosine { t_max } => parts.push(format!("lr cosine over {t_max} updates")),
        }
        let mini = self.updates_per_epoch > 1;
        if mini {
            parts.push(format!(
                "batches of {} rows{} ({} per epoch)",
                self.batch_size,
                if self.shuffle {
                    ", shuffled"
                } else {
                    " in file order"
                },
                self.updates_per_epoch
            ));
        }
        if self.start_step > 0 {
            parts.push(format!("resumed at step {}", self.start_step));
        }
        let plain = self.optimizer == "sgd"
            && self.momentum.unwrap_or(0.0) == 0.0
            && self.weight_decay == 0.0
            && self.lr_schedule == Schedule::Constant
            && !mini
            && self.start_step == 0;
        (!plain).then(|| parts.join(", "))
    }

    pub fn new(cfg: &SessionConfig, rows: usize, per_epoch: u64) -> Self {
        let o = &cfg.optimizer;
        let adam = o.kind != OptimizerKind::Sgd;
        let mini = cfg.mini_batches(rows);
        TrainingInfo {
            optimizer: o.kind.name(),
            momentum: (!adam).then_some(o.momentum),
            nesterov: o.nesterov,
            beta1: adam.then_some(o.beta1),
            beta2: adam.then_some(o.beta2),
            eps: adam.then_some(o.eps),
            weight_decay: o.weight_decay,
            lr_schedule: cfg.schedule,
            batch_size: mini.map_or(rows, |b| b.size),
            shuffle: mini.is_some_and(|b| b.shuffle),
            updates_per_epoch: per_epoch,
            start_step: cfg.resume.as_ref().map_or(0, |s| s.step),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DataInfo {
    pub source: String,
    pub rows: usize,
    pub features: usize,
    /// Rows of class 1 (two classes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positives: Option<usize>,
    /// The class values in index order.
    pub classes: Vec<String>,
    pub label_mapping: LabelJson,
    pub standardized: bool,
    /// The validation rows, if any.
    pub val: Option<ValInfo>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValInfo {
    pub source: String,
    pub rows: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positives: Option<usize>,
}

/// The scalar metrics with the confusion matrix (rows: true class, columns: predicted) and
/// each class's scores, keyed by the class value in index order.
#[derive(Clone, Debug, Serialize)]
pub struct FullMetrics {
    #[serde(flatten)]
    pub metrics: Metrics,
    pub confusion: Vec<Vec<u64>>,
    pub per_class: PerClass,
}

/// Class value → its scores, serialized as a JSON object in class order.
#[derive(Clone, Debug)]
pub struct PerClass(pub Vec<(String, ClassMetrics)>);

impl Serialize for PerClass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl FullMetrics {
    pub fn new(counts: &Counts, classes: &[String]) -> Self {
        FullMetrics {
            metrics: Metrics::from_counts(counts),
            confusion: counts.matrix(),
            per_class: PerClass(
                classes
                    .iter()
                    .cloned()
                    .zip(ClassMetrics::of(counts))
                    .collect(),
            ),
        }
    }
}

/// The most classes whose confusion matrix the human report prints.
const MAX_SHOWN_CLASSES: usize = 16;

/// The confusion matrix as a table with class names, rows true and columns predicted.
pub fn confusion_text(counts: &[Vec<u64>], classes: &[String]) -> String {
    let name_w = classes
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(1)
        .max(4);
    let cell_w = counts
        .iter()
        .flatten()
        .map(|n| n.to_string().len())
        .chain(classes.iter().map(|c| c.chars().count()))
        .max()
        .unwrap_or(1);
    let mut s = format!("{:>name_w$}  predicted →\n", "true");
    let _ = write!(s, "{:>name_w$}", "");
    for c in classes {
        let _ = write!(s, "  {c:>cell_w$}");
    }
    for (c, row) in classes.iter().zip(counts) {
        let _ = write!(s, "\n{c:>name_w$}");
        for n in row {
            let _ = write!(s, "  {n:>cell_w$}");
        }
    }
    s
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    /// [inputs, hidden..., outputs]
    pub layers: Vec<usize>,
    pub head: Head,
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
        StopReason::MaskStable => match s.early_bird {
            Some(eb) => format!(
                "stopped at iteration {at}: the magnitude mask at sparsity {} changed less than {} for {} checks in a row (mask_stable); {watched} {v}",
                eb.settings.sparsity, eb.settings.eps, eb.settings.window
            ),
            None => format!(
                "stopped at iteration {at}: the magnitude mask settled (mask_stable); {watched} {v}"
            ),
        },
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
            "data:    {}: {} rows × {} features, {}{}",
            d.source,
            d.rows,
            d.features,
            label_text(&d.label_mapping, d.positives),
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
        if let Some(t) = self.training.text() {
            let _ = writeln!(s, "updates: {t}");
        }
        let _ = writeln!(s, "result:  {}", self.stop.message);
        let m = &self.metrics;
        let _ = writeln!(
            s,
            "{}{}",
            if self.val_metrics.is_some() {
                "train:   "
            } else {
                "metrics: "
            },
            scores_text(&m.metrics)
        );
        let _ = writeln!(s, "{}", counts_text(m, "counts:  "));
        if let (Some(v), Some(vi)) = (&self.val_metrics, &self.data.val) {
            let _ = writeln!(
                s,
                "val:     {} rows ({}): {}",
                vi.rows,
                vi.source,
                scores_text(&v.metrics)
            );
            let _ = writeln!(s, "{}", counts_text(v, "         "));
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

/// `label "y": 1 = positive, 0 = negative` for a sigmoid head, `label "y": 3 classes (a, b,
/// c)` for softmax; `positives` in front for two classes.
pub fn label_text(l: &LabelJson, positives: Option<usize>) -> String {
    match l {
        LabelJson::Binary {
            column,
            positive,
            negative,
        } => format!(
            "{} positive (label \"{column}\": {positive} = positive, {negative} = negative)",
            positives.unwrap_or(0)
        ),
        LabelJson::Classes { column, classes } => {
            let shown: Vec<&str> = classes.iter().take(12).map(String::as_str).collect();
            let etc = if classes.len() > 12 { ", ..." } else { "" };
            format!(
                "label \"{column}\": {} classes ({}{etc})",
                classes.len(),
                shown.join(", ")
            )
        }
    }
}

/// `loss 0.123456  accuracy 0.9000  precision ...` (macro averages for K ≥ 3).
pub fn scores_text(m: &Metrics) -> String {
    let avg = if m.classes == 2 { "" } else { "macro " };
    format!(
        "loss {:.6}  accuracy {:.4}  {avg}precision {:.4}  {avg}recall {:.4}  {avg}f1 {:.4}  {avg}iou {:.4}",
        m.loss, m.accuracy, m.precision, m.recall, m.f1, m.iou
    )
}

/// `TP 3  FP 1  FN 2  TN 4` for two classes, the confusion matrix for more; each line
/// after the first indented as the first's `lead`.
pub fn counts_text(m: &FullMetrics, lead: &str) -> String {
    if m.metrics.classes == 2 {
        let b = &m.metrics;
        return format!("{lead}TP {}  FP {}  FN {}  TN {}", b.tp, b.fp, b.fn_, b.tn);
    }
    let names: Vec<String> = m.per_class.0.iter().map(|c| c.0.clone()).collect();
    if names.len() > MAX_SHOWN_CLASSES {
        return format!(
            "{lead}confusion matrix: {k} × {k} (too wide to show; see --json)",
            k = names.len()
        );
    }
    let pad = " ".repeat(lead.chars().count());
    let table = confusion_text(&m.confusion, &names);
    let mut out = String::new();
    for (i, line) in table.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(if i == 0 { lead } else { &pad });
        out.push_str(line);
    }
    out
}

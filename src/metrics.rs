//! Metrics derived on the host from what every backend returns: the loss sum and the
//! confusion counts. Nothing metric-specific lives in a backend.

use serde::Serialize;

/// What a backend's reduction yields for one set of weights over the rows.
/// A row is predicted positive iff its logit z ≥ 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// Σ over rows of softplus(z) − y·z.
    pub loss_sum: f64,
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tn: u64,
}

/// The metrics the stop rules may watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Accuracy,
    Precision,
    Recall,
    F1,
    Iou,
    Loss,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::Iou => "iou",
            Metric::Loss => "loss",
        }
    }

    /// Scores improve upwards, the loss downwards.
    pub fn higher_is_better(self) -> bool {
        self != Metric::Loss
    }
}

/// Metrics of one set of weights. Ratios with a zero denominator are 0.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Mean binary cross-entropy.
    pub loss: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub iou: f64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
}

/// Metrics with only the accuracy and the loss set, for tests.
#[cfg(test)]
pub(crate) fn test_metrics(accuracy: f64, loss: f64) -> Metrics {
    Metrics {
        loss,
        accuracy,
        precision: 0.0,
        recall: 0.0,
        f1: 0.0,
        iou: 0.0,
        tp: 0,
        fp: 0,
        fn_: 0,
        tn: 0,
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Metrics {
    pub fn from_counts(c: &Counts) -> Self {
        let rows = c.tp + c.fp + c.fn_ + c.tn;
        Metrics {
            loss: if rows == 0 {
                0.0
            } else {
                c.loss_sum / rows as f64
            },
            accuracy: ratio(c.tp + c.tn, rows),
            precision: ratio(c.tp, c.tp + c.fp),
            recall: ratio(c.tp, c.tp + c.fn_),
            f1: ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn_),
            iou: ratio(c.tp, c.tp + c.fp + c.fn_),
            tp: c.tp,
            fp: c.fp,
            fn_: c.fn_,
            tn: c.tn,
        }
    }

    pub fn get(&self, m: Metric) -> f64 {
        match m {
            Metric::Accuracy => self.accuracy,
            Metric::Precision => self.precision,
            Metric::Recall => self.recall,
            Metric::F1 => self.f1,
            Metric::Iou => self.iou,
            Metric::Loss => self.loss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_from_counts() {
        let m = Metrics::from_counts(&Counts {
            loss_sum: 2.0,
            tp: 3,
            fp: 1,
            fn_: 2,
            tn: 4,
        });
        assert_eq!(m.loss, 0.2);
        assert_eq!(m.accuracy, 0.7);
        assert_eq!(m.precision, 0.75);
        assert_eq!(m.recall, 0.6);
        assert_eq!(m.f1, 6.0 / 9.0);
        assert_eq!(m.iou, 0.5);
        assert!((m.iou - m.f1 / (2.0 - m.f1)).abs() < 1e-15);
    }

    #[test]
    fn zero_denominators_give_zero() {
        let m = Metrics::from_counts(&Counts {
            loss_sum: 1.0,
            tp: 0,
            fp: 0,
            fn_: 0,
            tn: 5,
        });
        assert_eq!((m.precision, m.recall, m.f1, m.iou), (0.0, 0.0, 0.0, 0.0));
        assert_eq!(m.accuracy, 1.0);
    }
}

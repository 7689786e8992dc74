//! Metrics derived on the host from what every backend returns: the loss sum and the
//! confusion counts. Nothing metric-specific lives in a backend.

use serde::Serialize;

/// What a backend's reduction yields for one set of weights over the rows: the loss sum and
/// the K × K confusion matrix (K = 2 for a sigmoid head, whose class 1 is predicted iff the
/// logit z ≥ 0; softmax predicts the argmax, a tie going to the lowest class).
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    /// Σ over rows of softplus(z) − y·z (sigmoid) or logsumexp(z) − z_y (softmax).
    pub loss_sum: f64,
    /// [K, K] row-major: `confusion[t * K + p]` rows of true class t predicted as p.
    pub confusion: Vec<u64>,
}

/// Two classes, no rows.
impl Default for Counts {
    fn default() -> Self {
        Counts::new(2)
    }
}

impl Counts {
    /// Adds two-class counts of class 1 (the positive).
    pub fn add_binary(&mut self, tp: u64, fp: u64, fn_: u64, tn: u64) {
        debug_assert_eq!(self.k(), 2);
        self.confusion[0] += tn;
        self.confusion[1] += fp;
        self.confusion[2] += fn_;
        self.confusion[3] += tp;
    }

    /// No rows yet, K classes.
    pub fn new(k: usize) -> Self {
        Counts {
            loss_sum: 0.0,
            confusion: vec![0; k * k],
        }
    }

    /// Two classes from the positive-class counts.
    pub fn binary(loss_sum: f64, tp: u64, fp: u64, fn_: u64, tn: u64) -> Self {
        Counts {
            loss_sum,
            confusion: vec![tn, fp, fn_, tp],
        }
    }

    /// K.
    pub fn k(&self) -> usize {
        self.confusion.len().isqrt()
    }

    pub fn rows(&self) -> u64 {
        self.confusion.iter().sum()
    }

    /// Counts a row of true class `t` predicted as `p`.
    pub fn record(&mut self, t: usize, p: usize) {
        let k = self.k();
        self.confusion[t * k + p] += 1;
    }

    /// Adds another part's counts (same K).
    pub fn add(&mut self, o: &Counts) {
        self.loss_sum += o.loss_sum;
        for (a, b) in self.confusion.iter_mut().zip(&o.confusion) {
            *a += b;
        }
    }

    /// Rows of true class t predicted as p.
    pub fn cell(&self, t: usize, p: usize) -> u64 {
        self.confusion[t * self.k() + p]
    }

    /// Class 1's true positives, and so on, for two classes (0 otherwise).
    pub fn tp(&self) -> u64 {
        self.binary_cell(1, 1)
    }
    pub fn fp(&self) -> u64 {
        self.binary_cell(0, 1)
    }
    pub fn fn_(&self) -> u64 {
        self.binary_cell(1, 0)
    }
    pub fn tn(&self) -> u64 {
        self.binary_cell(0, 0)
    }

    fn binary_cell(&self, t: usize, p: usize) -> u64 {
        if self.k() == 2 { self.cell(t, p) } else { 0 }
    }

    /// The matrix as K rows.
    pub fn matrix(&self) -> Vec<Vec<u64>> {
        let k = self.k().max(1);
        self.confusion.chunks(k).map(<[u64]>::to_vec).collect()
    }

    /// Per class c: (tp, predicted as c, support = truly c).
    fn per_class(&self) -> Vec<(u64, u64, u64)> {
        let k = self.k();
        (0..k)
            .map(|c| {
                let tp = self.cell(c, c);
                let predicted = (0..k).map(|t| self.cell(t, c)).sum();
                let support = (0..k).map(|p| self.cell(c, p)).sum();
                (tp, predicted, support)
            })
            .collect()
    }
}

/// One class's scores against the rest, from the confusion matrix.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub iou: f64,
    /// Rows of this class.
    pub support: u64,
}

impl ClassMetrics {
    /// Per class, in index order. Zero denominators give 0.
    pub fn of(c: &Counts) -> Vec<ClassMetrics> {
        c.per_class()
            .into_iter()
            .map(|(tp, predicted, support)| {
                let fp = predicted - tp;
                let fn_ = support - tp;
                ClassMetrics {
                    precision: ratio(tp, predicted),
                    recall: ratio(tp, support),
                    f1: ratio(2 * tp, 2 * tp + fp + fn_),
                    iou: ratio(tp, tp + fp + fn_),
                    support,
                }
            })
            .collect()
    }
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

/// Metrics of one set of weights. Ratios with a zero denominator are 0. Two classes: the
/// scores of class 1 (the positive), with its TP/FP/FN/TN. K ≥ 3: precision, recall, F1 and
/// IoU are macro averages (the unweighted mean over the K classes of each class's score
/// against the rest), as scikit-learn's `average="macro", zero_division=0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metrics {
    /// Mean cross-entropy (binary for a sigmoid head).
    pub loss: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub iou: f64,
    /// Two classes only (else 0).
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tn: u64,
    /// K.
    pub classes: usize,
}

impl Serialize for Metrics {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let binary = self.classes == 2;
        let mut st = s.serialize_struct("Metrics", if binary { 10 } else { 6 })?;
        st.serialize_field("loss", &self.loss)?;
        st.serialize_field("accuracy", &self.accuracy)?;
        st.serialize_field("precision", &self.precision)?;
        st.serialize_field("recall", &self.recall)?;
        st.serialize_field("f1", &self.f1)?;
        st.serialize_field("iou", &self.iou)?;
        if binary {
            st.serialize_field("tp", &self.tp)?;
            st.serialize_field("fp", &self.fp)?;
            st.serialize_field("fn", &self.fn_)?;
            st.serialize_field("tn", &self.tn)?;
        }
        st.end()
    }
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
        classes: 2,
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
        let rows = c.rows();
        let k = c.k();
        let correct: u64 = (0..k).map(|i| c.cell(i, i)).sum();
        let (precision, recall, f1, iou) = if k == 2 {
            let (tp, fp, fn_) = (c.tp(), c.fp(), c.fn_());
            (
                ratio(tp, tp + fp),
                ratio(tp, tp + fn_),
                ratio(2 * tp, 2 * tp + fp + fn_),
                ratio(tp, tp + fp + fn_),
            )
        } else {
            let per = ClassMetrics::of(c);
            let mean = |f: fn(&ClassMetrics) -> f64| {
                per.iter().map(f).sum::<f64>() / per.len().max(1) as f64
            };
            (
                mean(|m| m.precision),
                mean(|m| m.recall),
                mean(|m| m.f1),
                mean(|m| m.iou),
            )
        };
        Metrics {
            loss: if rows == 0 {
                0.0
            } else {
                c.loss_sum / rows as f64
            },
            accuracy: ratio(correct, rows),
            precision,
            recall,
            f1,
            iou,
            tp: c.tp(),
            fp: c.fp(),
            fn_: c.fn_(),
            tn: c.tn(),
            classes: k,
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
        let m = Metrics::from_counts(&Counts::binary(2.0, 3, 1, 2, 4));
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
        let m = Metrics::from_counts(&Counts::binary(1.0, 0, 0, 0, 5));
        assert_eq!((m.precision, m.recall, m.f1, m.iou), (0.0, 0.0, 0.0, 0.0));
        assert_eq!(m.accuracy, 1.0);
    }

    /// Rows of `m` are true classes, columns predictions.
    fn counts(m: &[&[u64]]) -> Counts {
        Counts {
            loss_sum: 0.0,
            confusion: m.iter().flat_map(|r| r.iter().copied()).collect(),
        }
    }

    #[test]
    fn macro_metrics_by_hand_with_a_class_never_predicted() {
        // Class 1 is never predicted.
        let c = counts(&[&[3, 1, 0], &[0, 0, 2], &[1, 0, 2]]);
        assert_eq!(c.k(), 3);
        let per = ClassMetrics::of(&c);
        assert_eq!(
            per[0],
            ClassMetrics {
                precision: 0.75,
                recall: 0.75,
                f1: 0.75,
                iou: 0.6,
                support: 4
            }
        );
        assert_eq!(
            per[1],
            ClassMetrics {
                precision: 0.0,
                recall: 0.0,
                f1: 0.0,
                iou: 0.0,
                support: 2
            }
        );
        assert_eq!(
            per[2],
            ClassMetrics {
                precision: 0.5,
                recall: 2.0 / 3.0,
                f1: 4.0 / 7.0,
                iou: 0.4,
                support: 3
            }
        );
        let m = Metrics::from_counts(&c);
        assert_eq!(m.accuracy, 5.0 / 9.0);
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        close(m.precision, 1.25 / 3.0);
        close(m.recall, (0.75 + 2.0 / 3.0) / 3.0);
        close(m.f1, (0.75 + 4.0 / 7.0) / 3.0);
        close(m.iou, 1.0 / 3.0);
        assert_eq!((m.tp, m.fp, m.fn_, m.tn, m.classes), (0, 0, 0, 0, 3));
        let json = serde_json::to_value(m).unwrap();
        assert!(
            json.get("tp").is_none() && json.get("f1").is_some(),
            "{json}"
        );
    }

    #[test]
    fn macro_metrics_count_an_absent_class_as_zero() {
        // Class 2 has no rows and is predicted once; class 3 is absent and never predicted.
        let c = counts(&[&[2, 0, 1, 0], &[0, 3, 0, 0], &[0, 0, 0, 0], &[0, 0, 0, 0]]);
        let per = ClassMetrics::of(&c);
        assert_eq!(per[2].support, 0);
        assert_eq!(
            (per[2].precision, per[2].recall, per[2].f1),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(
            per[3],
            ClassMetrics {
                precision: 0.0,
                recall: 0.0,
                f1: 0.0,
                iou: 0.0,
                support: 0
            }
        );
        let m = Metrics::from_counts(&c);
        assert_eq!(m.accuracy, 5.0 / 6.0);
        // Class 0: P 1, R 2/3, F1 0.8, IoU 2/3; class 1: all 1; classes 2 and 3: 0.
        assert_eq!(m.precision, 0.5);
        assert_eq!(m.recall, (2.0 / 3.0 + 1.0) / 4.0);
        assert_eq!(m.f1, 1.8 / 4.0);
        assert_eq!(m.iou, (2.0 / 3.0 + 1.0) / 4.0);
    }

    #[test]
    fn two_classes_keep_the_positive_class_definitions() {
        let c = Counts::binary(2.0, 3, 1, 2, 4);
        assert_eq!(c.matrix(), vec![vec![4, 1], vec![2, 3]]);
        assert_eq!((c.tp(), c.fp(), c.fn_(), c.tn()), (3, 1, 2, 4));
        let m = Metrics::from_counts(&c);
        assert_eq!((m.precision, m.recall), (0.75, 0.6));
        let json = serde_json::to_value(m).unwrap();
        assert_eq!(json["fn"], 2);
    }
}

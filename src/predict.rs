//! Applying a saved model to rows: what `wgtrain predict` and `wgtrain eval` run.

use std::path::Path;

use crate::backend::{self, AdapterDesc, BackendChoice, SessionConfig};
use crate::data::{self, Dataset, LabelMapping};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::modelfile::Model;

/// Rows read for a model: its features (standardized as the model says) and, when the file
/// has the label column, the labels.
pub struct Rows {
    pub data: Dataset,
    pub labelled: bool,
}

/// Reads a CSV file's rows for `model`: the features by column name (any order; other columns
/// ignored; a missing feature is an error naming it), the label column if present, then the
/// stored standardization.
pub fn load_rows(path: &Path, model: &Model) -> Result<Rows> {
    let (mut data, labelled) = data::load_csv_named(path, &model.features, &model.label)?;
    model.standardize(&mut data);
    Ok(Rows { data, labelled })
}

/// The forward pass of a model over rows.
pub struct Prediction {
    /// The output logit z of each row, in row order.
    pub logits: Vec<f32>,
    /// The metrics, when the rows are labelled.
    pub metrics: Option<Metrics>,
    /// The GPU adapter it ran on; `None` for the CPU.
    pub adapter: Option<AdapterDesc>,
    /// A one-line notice for the user (e.g. the CPU fallback), if any.
    pub notice: Option<String>,
}

/// Runs the model's forward pass over `rows` on the chosen backend.
pub fn predict(
    model: &Model,
    rows: &Rows,
    choice: BackendChoice,
    adapter: Option<&str>,
) -> Result<Prediction> {
    let cfg = SessionConfig {
        params: model.params.clone(),
        lr: 0.0,
    };
    let opened = backend::open(choice, adapter, &rows.data, None, &model.spec, &cfg)?;
    let mut session = opened.session;
    let counts = session.evaluate()?.train;
    let logits = session.logits()?;
    if logits.len() != rows.data.rows {
        return Err(Error::Config(format!(
            "the backend returned {} logits for {} rows",
            logits.len(),
            rows.data.rows
        )));
    }
    Ok(Prediction {
        logits,
        metrics: rows.labelled.then(|| Metrics::from_counts(&counts)),
        adapter: session.adapter(),
        notice: opened
            .notice
            .map(|n| n.replacen("training on the CPU", "running on the CPU", 1)),
    })
}

/// The probability of the positive class for logit z: 1 / (1 + exp(−z)), in f64.
pub fn probability(z: f32) -> f64 {
    1.0 / (1.0 + (-(z as f64)).exp())
}

/// The shortest text that reads back as exactly `p`; very small values in exponent form.
pub fn format_probability(p: f64) -> String {
    if p == 0.0 || p >= 1e-4 {
        p.to_string()
    } else {
        format!("{p:e}")
    }
}

/// The CSV `predict` writes: a header `probability,predicted`, then one row per logit with the
/// probability of the positive class and the predicted label in its original form (positive
/// iff z ≥ 0).
pub fn to_csv(logits: &[f32], label: &LabelMapping) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let write = |w: &mut csv::Writer<Vec<u8>>, a: &str, b: &str| {
        w.write_record([a, b]).expect("writing CSV to memory");
    };
    write(&mut w, "probability", "predicted");
    for &z in logits {
        let class = if z >= 0.0 {
            &label.positive
        } else {
            &label.negative
        };
        write(&mut w, &format_probability(probability(z)), class);
    }
    String::from_utf8(w.into_inner().expect("writing CSV to memory")).expect("UTF-8 CSV")
}

/// The metrics for people: one line of scores, one of confusion counts.
pub fn metrics_text(m: &Metrics) -> String {
    format!(
        "metrics: loss {:.6}  accuracy {:.4}  precision {:.4}  recall {:.4}  f1 {:.4}  iou {:.4}\n\
         counts:  TP {}  FP {}  FN {}  TN {}",
        m.loss, m.accuracy, m.precision, m.recall, m.f1, m.iou, m.tp, m.fp, m.fn_, m.tn
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_by_feature_name_with_or_without_the_label() {
        let features = vec!["a".to_string(), "b".to_string()];
        let label = LabelMapping {
            column: "y".into(),
            positive: "M".into(),
            negative: "B".into(),
        };
        let (d, labelled) =
            data::parse_csv_named("p.csv", b"b,x,a\n2,q,1\n4,r,3\n", &features, &label).unwrap();
        assert!(!labelled);
        assert_eq!(d.x, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!((d.rows, d.y.clone()), (2, vec![0.0, 0.0]));
        assert_eq!(d.feature_names, features);
        let (d, labelled) =
            data::parse_csv_named("p.csv", b"y,a,b\nM,1,2\nB,3,4\n", &features, &label).unwrap();
        assert!(labelled);
        assert_eq!(d.y, vec![1.0, 0.0]);
        let e = data::parse_csv_named("p.csv", b"a,y\n1,M\n", &features, &label).unwrap_err();
        assert!(e.to_string().contains("no column \"b\""), "{e}");
        let e = data::parse_csv_named("p.csv", b"a,b\n", &features, &label).unwrap_err();
        assert!(e.to_string().contains("no data rows"), "{e}");
    }

    #[test]
    fn probabilities_round_trip_and_classes_follow_the_logit() {
        for z in [0.0f32, 1.5, -1.5, -30.0, -200.0, 40.0] {
            let p = probability(z);
            assert_eq!(format_probability(p).parse::<f64>().unwrap(), p);
        }
        assert_eq!(format_probability(0.5), "0.5");
        assert!(format_probability(probability(-30.0)).contains('e'));
        let label = LabelMapping {
            column: "y".into(),
            positive: "yes, sure".into(),
            negative: "no".into(),
        };
        assert_eq!(
            to_csv(&[0.0, -0.0, -1.0], &label),
            "probability,predicted\n0.5,\"yes, sure\"\n0.5,\"yes, sure\"\n0.2689414213699951,no\n"
        );
    }
}

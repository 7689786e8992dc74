//! Applying a saved model to rows: what `wgtrain predict` and `wgtrain eval` run.

use std::path::Path;

use crate::backend::{self, AdapterDesc, BackendChoice, reference};
use crate::data::{self, Dataset, LabelMapping};
use crate::error::{Error, Result};
use crate::metrics::Counts;
use crate::model::Head;
use crate::modelfile::Model;
use crate::report::{self, FullMetrics};

/// Rows read for a model: its features (standardized as the model says) and, when the file
/// has the label column, the labels.
pub struct Rows {
    pub data: Dataset,
    pub labelled: bool,
}

/// Reads a CSV file's rows for `model`: the features by column name (any order; other columns
/// ignored; a missing feature is an error naming it), the label column if present, then the
/// stored standardization.
/// `delimiter` separates the fields (`--delimiter`; `b','` by default).
pub fn load_rows(path: &Path, model: &Model, delimiter: u8) -> Result<Rows> {
    let (mut data, labelled) =
        data::load_csv_named(path, &model.features, &model.label, delimiter)?;
    model.standardize(&mut data);
    Ok(Rows { data, labelled })
}

/// The forward pass of a model over rows.
pub struct Prediction {
    /// The output logits, [rows, outputs] row-major (outputs: 1 for a sigmoid head, K for
    /// softmax).
    pub logits: Vec<f32>,
    /// The metrics, confusion matrix and per-class scores, when the rows are labelled.
    pub metrics: Option<FullMetrics>,
    /// The GPU adapter it ran on; `None` for the CPU.
    pub adapter: Option<AdapterDesc>,
    /// A one-line notice for the user (e.g. the CPU fallback), if any.
    pub notice: Option<String>,
}

/// Runs the model's forward pass over `rows` on the chosen backend; the metrics come from
/// the logits on the host.
pub fn predict(
    model: &Model,
    rows: &Rows,
    choice: BackendChoice,
    adapter: Option<&str>,
) -> Result<Prediction> {
    check_inputs(model, &rows.data)?;
    let (logits, adapter, notice) =
        backend::forward_logits(choice, adapter, &model.spec, &model.params, &rows.data)?;
    let outputs = model.spec.outputs();
    if Some(logits.len()) != rows.data.rows.checked_mul(outputs) {
        return Err(Error::Config(format!(
            "the backend returned {} logits for {} rows of {outputs} outputs",
            logits.len(),
            rows.data.rows
        )));
    }
    if let Some(i) = logits.iter().position(|z| !z.is_finite()) {
        return Err(Error::data(
            &rows.data.source,
            format!(
                "row {}: the model's output (logit) is {}, not a finite number: the row's \
                 values are too large for the model's f32 arithmetic",
                i / outputs + 1,
                logits[i]
            ),
        ));
    }
    let metrics = rows.labelled.then(|| {
        let counts = counts_of(&logits, &rows.data.y, model.spec.head, model.label.k());
        FullMetrics::new(&counts, &model.label.classes)
    });
    if let Some(m) = metrics.as_ref().filter(|m| !m.metrics.loss.is_finite()) {
        return Err(Error::data(
            &rows.data.source,
            format!(
                "the loss over the rows is {}, not a finite number",
                m.metrics.loss
            ),
        ));
    }
    Ok(Prediction {
        logits,
        metrics,
        adapter,
        notice,
    })
}

/// The softmax of one row's logits, in f64: exp(z_i − max z) / Σ_j exp(z_j − max z).
pub fn softmax(z: &[f32]) -> Vec<f64> {
    let m = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let e: Vec<f64> = z.iter().map(|&v| (v as f64 - m).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// The loss sum (in f64) and confusion matrix of logits [rows, outputs] against class labels.
pub fn counts_of(logits: &[f32], y: &[f32], head: Head, k: usize) -> Counts {
    let outputs = head.outputs(k);
    let mut c = Counts::new(k);
    for (z, &t) in logits.chunks(outputs).zip(y) {
        let t = t as usize;
        c.loss_sum += match head {
            // softplus(z) − y·z
            Head::Sigmoid => {
                let z = z[0] as f64;
                z.max(0.0) + (-z.abs()).exp().ln_1p() - t as f64 * z
            }
            // logsumexp(z) − z_t
            Head::Softmax => {
                let m = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let s: f64 = z.iter().map(|&v| (v as f64 - m).exp()).sum();
                m + s.ln() - z[t] as f64
            }
        };
        c.record(t, reference::predicted(z));
    }
    c
}

/// Fails on the first standardized value that is not finite (an input beyond what f32 holds
/// once standardized), naming the file, the row and the column.
pub fn check_inputs(model: &Model, data: &Dataset) -> Result<()> {
    let f = data.features.max(1);
    let Some(k) = data.x.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let (r, j) = (k / f, k % f);
    let name = data.feature_names.get(j).map_or("?", String::as_str);
    let how = match &model.standardization {
        Some(s) => format!(
            "standardized with the model's mean {:?} and std {:?} it is {}",
            s.mean.get(j).copied().unwrap_or(f64::NAN),
            s.std.get(j).copied().unwrap_or(f64::NAN),
            data.x[k]
        ),
        None => format!("it is {}", data.x[k]),
    };
    Err(Error::data(
        &data.source,
        format!(
            "row {}, column \"{name}\": {how}, beyond the range of f32; is the column in the \
             units the model was trained on?",
            r + 1
        ),
    ))
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

/// The CSV `predict` writes, one row per input row. Sigmoid head: `probability,predicted`,
/// the probability of the positive class and the predicted label in its original form
/// (positive iff z ≥ 0). Softmax: `predicted` then `p_<class>` per class.
pub fn to_csv(logits: &[f32], label: &LabelMapping, head: Head) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut write = |fields: &[&str]| {
        w.write_record(fields).expect("writing CSV to memory");
    };
    match head {
        Head::Sigmoid => {
            write(&["probability", "predicted"]);
            for z in logits.chunks(1) {
                let class = &label.classes[reference::predicted(z)];
                write(&[&format_probability(probability(z[0])), class]);
            }
        }
        Head::Softmax => {
            let mut header = vec!["predicted".to_string()];
            header.extend(label.classes.iter().map(|c| format!("p_{c}")));
            write(&header.iter().map(String::as_str).collect::<Vec<_>>());
            for z in logits.chunks(label.k()) {
                let mut row = vec![label.classes[reference::predicted(z)].clone()];
                row.extend(softmax(z).into_iter().map(format_probability));
                write(&row.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
    }
    String::from_utf8(w.into_inner().expect("writing CSV to memory")).expect("UTF-8 CSV")
}

/// The metrics for people: one line of scores, then the TP/FP/FN/TN counts (two classes) or
/// the confusion matrix with class names.
pub fn metrics_text(m: &FullMetrics) -> String {
    format!(
        "metrics: {}\n{}",
        report::scores_text(&m.metrics),
        report::counts_text(m, "counts:  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_by_feature_name_with_or_without_the_label() {
        let features = vec!["a".to_string(), "b".to_string()];
        let label = LabelMapping::binary("y", "B", "M");
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

    fn model(std_b: f64, standardize: bool) -> Model {
        Model {
            spec: crate::model::ModelSpec::new(2, &[], crate::model::Activation::Relu).unwrap(),
            features: vec!["a".into(), "b".into()],
            standardization: standardize.then(|| crate::data::Standardizer {
                mean: vec![0.0, 0.0],
                std: vec![1.0, std_b],
            }),
            label: LabelMapping::binary("y", "B", "M"),
            params: vec![1.0, 1.0, 0.0],
        }
    }

    fn rows(model: &Model, csv: &str) -> Rows {
        let (mut data, labelled) =
            data::parse_csv_named("p.csv", csv.as_bytes(), &model.features, &model.label).unwrap();
        model.standardize(&mut data);
        Rows { data, labelled }
    }

    #[test]
    fn non_finite_inputs_and_logits_are_errors_naming_the_row() {
        let m = model(1e-30, true);
        let r = rows(&m, "a,b,y\n1,2,M\n3,1e10,B\n");
        let e = predict(&m, &r, BackendChoice::Cpu, None)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "p.csv: row 2, column \"b\": standardized with the model's mean 0.0 and std 1e-30 \
             it is inf, beyond the range of f32; is the column in the units the model was \
             trained on?"
        );
        let m = model(1.0, false);
        let r = rows(&m, "a,b\n1,2\n3e38,3e38\n");
        let e = predict(&m, &r, BackendChoice::Cpu, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("p.csv: row 2: the model's output (logit) is inf, not a finite number"),
            "{e}"
        );
        let r = rows(&m, "a,b,y\n1,2,M\n-3,1,B\n");
        let p = predict(&m, &r, BackendChoice::Cpu, None).ok().unwrap();
        assert!(p.metrics.unwrap().metrics.loss.is_finite());
    }

    #[test]
    fn probabilities_round_trip_and_classes_follow_the_logit() {
        for z in [0.0f32, 1.5, -1.5, -30.0, -200.0, 40.0] {
            let p = probability(z);
            assert_eq!(format_probability(p).parse::<f64>().unwrap(), p);
        }
        assert_eq!(format_probability(0.5), "0.5");
        assert!(format_probability(probability(-30.0)).contains('e'));
        let label = LabelMapping::binary("y", "no", "yes, sure");
        assert_eq!(
            to_csv(&[0.0, -0.0, -1.0], &label, Head::Sigmoid),
            "probability,predicted\n0.5,\"yes, sure\"\n0.5,\"yes, sure\"\n0.2689414213699951,no\n"
        );
    }

    #[test]
    fn softmax_rows_predict_the_argmax_and_write_every_class() {
        let label = LabelMapping {
            column: "y".into(),
            classes: vec!["a".into(), "b, c".into(), "d".into()],
        };
        // A tie goes to the lowest class.
        let z = [0.0f32, 2.0, 2.0, -1.0, -1.0, -1.0];
        assert_eq!(reference::predicted(&z[..3]), 1);
        assert_eq!(reference::predicted(&z[3..]), 0);
        let text = to_csv(&z, &label, Head::Softmax);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "predicted,p_a,\"p_b, c\",p_d");
        assert!(lines[1].starts_with("\"b, c\",0.06"), "{}", lines[1]);
        let third = 1.0f64 / 3.0;
        assert_eq!(lines[2], format!("a,{third},{third},{third}"));
        let p = softmax(&[1000.0, 0.0]);
        assert_eq!(p, vec![1.0, 0.0]);
        // Loss: logsumexp(z) − z_y, stable for large logits.
        let c = counts_of(&[1000.0, 0.0, 0.0, 0.0], &[1.0, 0.0], Head::Softmax, 2);
        assert_eq!(c.loss_sum, 1000.0 + 2f64.ln());
        assert_eq!(c.matrix(), vec![vec![1, 0], vec![1, 0]]);
    }
}

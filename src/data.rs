//! Training data: the [`Dataset`] rows and their [`LabelMapping`]. What makes or prepares
//! them lives in the submodules and is re-exported here: CSV loading (`csv`: streamed, with
//! precise errors and exact label values, the classes learned in `classes`), z-score
//! standardization and the validation split (`prep`) and the built-in demo sets (`demo`).

mod chunks;
mod classes;
mod csv;
mod demo;
mod label;
mod prep;
mod records;

use serde::Serialize;

pub use self::csv::{
    CsvOptions, check_streams, load_csv, load_csv_like, load_csv_named, parse_csv, parse_csv_like,
    parse_csv_named, parse_delimiter, read_csv, same_label,
};
pub use demo::{Demo, DemoOptions, check_demo_size, demo};
pub use prep::{Standardizer, split_stratified};
pub use records::{MAX_FIELDS, MAX_RECORD_BYTES};

/// Class-labelled rows of numeric features.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Features, row-major: [rows, features].
    pub x: Vec<f32>,
    /// Labels: [rows], each a class index 0..K as f32 (exact for K ≤ 2^24).
    pub y: Vec<f32>,
    pub rows: usize,
    pub features: usize,
    pub feature_names: Vec<String>,
    pub label: LabelMapping,
    /// Where the rows came from: a file path or `demo:NAME`.
    pub source: String,
}

/// The label column's classes: class i is `classes[i]`, the value as first written in the
/// training file. Two classes under a sigmoid head are [negative, positive].
#[derive(Clone, Debug, PartialEq)]
pub struct LabelMapping {
    pub column: String,
    pub classes: Vec<String>,
}

/// A label mapping as the report and the model file write it: `positive`/`negative` for a
/// sigmoid head, the class list for softmax.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum LabelJson {
    Classes {
        column: String,
        classes: Vec<String>,
    },
    Binary {
        column: String,
        positive: String,
        negative: String,
    },
}

impl LabelMapping {
    /// Two classes: `negative` is class 0, `positive` class 1.
    pub fn binary(column: &str, negative: &str, positive: &str) -> Self {
        LabelMapping {
            column: column.into(),
            classes: vec![negative.into(), positive.into()],
        }
    }

    /// The number of classes K.
    pub fn k(&self) -> usize {
        self.classes.len()
    }

    /// Class 1 of two (the sigmoid head's positive class).
    pub fn positive(&self) -> &str {
        self.classes.get(1).map_or("", String::as_str)
    }

    /// Class 0 of two.
    pub fn negative(&self) -> &str {
        self.classes.first().map_or("", String::as_str)
    }

    /// The written form: binary for a sigmoid head, the class list for softmax.
    pub fn json(&self, softmax: bool) -> LabelJson {
        if softmax || self.k() != 2 {
            LabelJson::Classes {
                column: self.column.clone(),
                classes: self.classes.clone(),
            }
        } else {
            LabelJson::Binary {
                column: self.column.clone(),
                positive: self.positive().into(),
                negative: self.negative().into(),
            }
        }
    }
}

impl Dataset {
    pub fn positives(&self) -> usize {
        self.y.iter().filter(|&&v| v == 1.0).count()
    }

    /// The rows of class 1 where there are two classes (the positives), else `None`.
    pub fn binary_positives(&self) -> Option<usize> {
        (self.label.k() == 2).then(|| self.positives())
    }

    /// Rows per class: [K].
    pub fn class_counts(&self) -> Vec<usize> {
        let mut n = vec![0usize; self.label.k()];
        for &v in &self.y {
            if let Some(c) = n.get_mut(v as usize) {
                *c += 1;
            }
        }
        n
    }

    /// Row `r` of X: [features].
    pub fn row(&self, r: usize) -> &[f32] {
        &self.x[r * self.features..(r + 1) * self.features]
    }

    /// The rows at `idx`, in that order.
    pub fn subset(&self, idx: &[usize], source: String) -> Dataset {
        Dataset {
            x: idx
                .iter()
                .flat_map(|&r| self.row(r).iter().copied())
                .collect(),
            y: idx.iter().map(|&r| self.y[r]).collect(),
            rows: idx.len(),
            features: self.features,
            feature_names: self.feature_names.clone(),
            label: self.label.clone(),
            source,
        }
    }
}

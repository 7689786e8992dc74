//! Training data: the [`Dataset`] rows and their [`LabelMapping`]. What makes or prepares
//! them lives in the submodules and is re-exported here: CSV loading (`csv`: streamed, with
//! precise errors and exact label values, the classes learned in `classes`), z-score
//! standardization and the validation split (`prep`) and the built-in demo sets (`demo`).

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

/// Binary-labelled rows of numeric features.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Features, row-major: [rows, features].
    pub x: Vec<f32>,
    /// Labels: [rows], each 0.0 or 1.0.
    pub y: Vec<f32>,
    pub rows: usize,
    pub features: usize,
    pub feature_names: Vec<String>,
    pub label: LabelMapping,
    /// Where the rows came from: a file path or `demo:NAME`.
    pub source: String,
}

/// How the label column's two values map to the classes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelMapping {
    pub column: String,
    /// The original value that means class 1.
    pub positive: String,
    /// The original value that means class 0.
    pub negative: String,
}

impl Dataset {
    pub fn positives(&self) -> usize {
        self.y.iter().filter(|&&v| v == 1.0).count()
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

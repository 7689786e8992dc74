//! Training data: CSV loading with precise errors, label mapping, z-score standardization and
//! the built-in demo sets.

use std::collections::HashMap;
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::{Error, Result};

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
}

/// Z-score statistics of the training rows: mean and population standard deviation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    /// Population standard deviation; 0 marks a constant column, which maps to all zeros.
    pub std: Vec<f64>,
}

impl Standardizer {
    pub fn fit(data: &Dataset) -> Self {
        let (n, f) = (data.rows, data.features);
        let mut mean = vec![0.0f64; f];
        for r in 0..n {
            for (m, &v) in mean.iter_mut().zip(data.row(r)) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0f64; f];
        let mut constant = vec![true; f];
        for r in 0..n {
            for (j, &v) in data.row(r).iter().enumerate() {
                let d = v as f64 - mean[j];
                var[j] += d * d;
                if v != data.x[j] {
                    constant[j] = false;
                }
            }
        }
        let std = var
            .iter()
            .zip(&constant)
            .map(|(&v, &c)| if c { 0.0 } else { (v / n as f64).sqrt() })
            .collect();
        Standardizer { mean, std }
    }

    /// x ← (x − mean) / std, computed in f64; constant columns become 0.
    pub fn apply(&self, data: &mut Dataset) {
        let f = data.features;
        for (k, v) in data.x.iter_mut().enumerate() {
            let j = k % f;
            *v = if self.std[j] == 0.0 {
                0.0
            } else {
                ((*v as f64 - self.mean[j]) / self.std[j]) as f32
            };
        }
    }
}

impl Dataset {
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

/// Holds out a stratified, seeded fraction of the rows for validation: round(fraction · n_c)
/// rows of each class c, picked by a seeded shuffle. Both parts keep the original row order.
/// Returns (training, validation).
pub fn split_stratified(data: &Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::Config(format!(
            "--val-split {fraction}: must be a fraction between 0 and 1 (exclusive)"
        )));
    }
    // A stream of its own, so the split does not shift with other uses of the seed.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_5B11_7000_0001);
    let mut held = vec![false; data.rows];
    for class in [0.0f32, 1.0] {
        let mut idx: Vec<usize> = (0..data.rows).filter(|&r| data.y[r] == class).collect();
        let take = (fraction * idx.len() as f64).round() as usize;
        for k in 0..take {
            let pick = k + (rng.next_u64() % (idx.len() - k) as u64) as usize;
            idx.swap(k, pick);
            held[idx[k]] = true;
        }
    }
    let (val_idx, train_idx): (Vec<usize>, Vec<usize>) = (0..data.rows).partition(|&r| held[r]);
    if val_idx.is_empty() || train_idx.is_empty() {
        return Err(Error::Config(format!(
            "--val-split {fraction}: {} rows split into {} for training and {} for validation; both need at least one",
            data.rows,
            train_idx.len(),
            val_idx.len()
        )));
    }
    Ok((
        data.subset(&train_idx, data.source.clone()),
        data.subset(
            &val_idx,
            format!("{} (held out: --val-split {fraction})", data.source),
        ),
    ))
}

/// How to read a CSV file.
#[derive(Clone, Debug, Default)]
pub struct CsvOptions {
    /// Label column name; `None` takes the last column.
    pub label: Option<String>,
    /// Columns to ignore.
    pub drop: Vec<String>,
    /// The label value that is the positive class.
    pub positive: Option<String>,
}

/// Reads a CSV file with a header row. Every column other than the label and the dropped ones
/// must hold finite numbers.
pub fn load_csv(path: &Path, opts: &CsvOptions) -> Result<Dataset> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|err| Error::Io {
        path: path.to_path_buf(),
        err,
    })?;
    parse_csv(&shown, &bytes, opts)
}

/// Reads a validation file: the training data's feature columns (by name, in any order; other
/// columns are ignored) and label column, with the training data's label mapping.
pub fn load_csv_like(path: &Path, like: &Dataset) -> Result<Dataset> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|err| Error::Io {
        path: path.to_path_buf(),
        err,
    })?;
    parse_with(&shown, &bytes, Columns::Like(like))
}

/// Parses CSV bytes; `name` is used in error messages.
pub fn parse_csv(name: &str, bytes: &[u8], opts: &CsvOptions) -> Result<Dataset> {
    parse_with(name, bytes, Columns::Select(opts))
}

/// Parses CSV bytes with the columns and label mapping of `like`.
pub fn parse_csv_like(name: &str, bytes: &[u8], like: &Dataset) -> Result<Dataset> {
    parse_with(name, bytes, Columns::Like(like))
}

/// Reads rows for a saved model: the `features` columns by name (in any order; other columns
/// are ignored) and, if the file has it, the label column mapped by `label`. Returns the rows
/// and whether they are labelled; unlabelled rows all read as class 0.
pub fn load_csv_named(
    path: &Path,
    features: &[String],
    label: &LabelMapping,
) -> Result<(Dataset, bool)> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|err| Error::Io {
        path: path.to_path_buf(),
        err,
    })?;
    parse_csv_named(&shown, &bytes, features, label)
}

/// Parses CSV bytes as `load_csv_named` reads a file; `name` is used in error messages.
pub fn parse_csv_named(
    name: &str,
    bytes: &[u8],
    features: &[String],
    label: &LabelMapping,
) -> Result<(Dataset, bool)> {
    let data = parse_with(name, bytes, Columns::Named { features, label })?;
    let labelled = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes)
        .headers()
        .is_ok_and(|h| h.iter().any(|c| c == label.column));
    Ok((data, labelled))
}

/// How a file's columns are chosen.
enum Columns<'a> {
    /// By the options, for training data.
    Select(&'a CsvOptions),
    /// As in an already loaded data set, for validation data.
    Like(&'a Dataset),
    /// Named features and, if present, the label column with a known mapping: a saved model's.
    Named {
        features: &'a [String],
        label: &'a LabelMapping,
    },
}

fn parse_with(name: &str, bytes: &[u8], columns: Columns) -> Result<Dataset> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::data(
            name,
            "the file is empty (expected a header row and data rows)",
        ));
    }
    // Line numbers from byte offsets, so CRLF endings and blank lines count as a reader sees them.
    let line_starts: Vec<u64> = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i as u64 + 1),
        )
        .collect();
    // A record's position can sit on the line break before it; skip to its first byte.
    let line_of = |p: Option<&csv::Position>| {
        p.map(|p| {
            let mut b = p.byte() as usize;
            while b < bytes.len() && (bytes[b] == b'\r' || bytes[b] == b'\n') {
                b += 1;
            }
            line_starts.partition_point(|&s| s <= b as u64) as u64
        })
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(name, &e, line_of(e.position())))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut seen = HashMap::new();
    for (j, h) in headers.iter().enumerate() {
        if h.is_empty() {
            return Err(Error::Data {
                path: name.into(),
                line: Some(1),
                column: Some((j + 1).to_string()),
                msg: "the header has an empty column name".into(),
            });
        }
        if let Some(first) = seen.insert(h.as_str(), j) {
            return Err(Error::Data {
                path: name.into(),
                line: Some(1),
                column: Some(format!("{} \"{h}\"", j + 1)),
                msg: format!("column name \"{h}\" already names column {}", first + 1),
            });
        }
    }
    let find = |col: &str, flag: &str| -> Result<usize> {
        headers.iter().position(|h| h == col).ok_or_else(|| {
            Error::Config(format!(
                "{flag} {col}: {name} has no column \"{col}\" (columns: {})",
                headers.join(", ")
            ))
        })
    };
    let (label_idx, feature_cols) = match columns {
        Columns::Select(opts) => {
            let (label, features) = select_columns(&headers, opts, &find)?;
            (Some(label), features)
        }
        Columns::Like(like) => {
            let need = |col: &str, what: &str| {
                headers.iter().position(|h| h == col).ok_or_else(|| Error::Data {
                    path: name.into(),
                    line: Some(1),
                    column: None,
                    msg: format!(
                        "the header has no column \"{col}\" ({what} of the training data); its columns: {}",
                        headers.join(", ")
                    ),
                })
            };
            let label = need(&like.label.column, "the label column")?;
            let features = like
                .feature_names
                .iter()
                .map(|f| need(f, "a feature"))
                .collect::<Result<Vec<_>>>()?;
            (Some(label), features)
        }
        Columns::Named { features, label } => {
            let features = features
                .iter()
                .map(|f| {
                    headers.iter().position(|h| h == f).ok_or_else(|| Error::Data {
                        path: name.into(),
                        line: Some(1),
                        column: None,
                        msg: format!(
                            "the header has no column \"{f}\" (a feature of the model); its columns: {}",
                            headers.join(", ")
                        ),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            (headers.iter().position(|h| *h == label.column), features)
        }
    };

    let mut x = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut label_lines: Vec<u64> = Vec::new();
    let mut rows = 0;
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(name, &e, line_of(e.position())))?;
        let line = line_of(record.position()).unwrap_or(0);
        if record.len() != headers.len() {
            return Err(Error::Data {
                path: name.into(),
                line: Some(line),
                column: None,
                msg: format!(
                    "expected {} fields (as in the header), found {}",
                    headers.len(),
                    record.len()
                ),
            });
        }
        for &j in &feature_cols {
            x.push(parse_feature(name, line, j, &headers[j], &record[j])?);
        }
        rows += 1;
        let Some(label_idx) = label_idx else {
            continue;
        };
        let lab = &record[label_idx];
        if lab.is_empty() {
            return Err(Error::Data {
                path: name.into(),
                line: Some(line),
                column: Some(column_name(label_idx, &headers[label_idx])),
                msg: "the label is empty".into(),
            });
        }
        labels.push(lab.to_string());
        label_lines.push(line);
    }
    if rows == 0 {
        return Err(Error::data(name, "no data rows after the header"));
    }
    // Rows without a label column (a saved model's input) all read as class 0.
    let fixed = |mapping: &LabelMapping| -> Result<(Vec<f32>, LabelMapping)> {
        let y = match label_idx {
            Some(l) => map_fixed(
                name,
                &column_name(l, &headers[l]),
                &labels,
                &label_lines,
                mapping,
            )?,
            None => vec![0.0; rows],
        };
        Ok((y, mapping.clone()))
    };
    let (y, label) = match columns {
        Columns::Select(opts) => map_labels(
            name,
            &headers[label_idx.expect("training data has a label column")],
            &labels,
            &label_lines,
            opts.positive.as_deref(),
        )?,
        Columns::Like(like) => fixed(&like.label)?,
        Columns::Named { label, .. } => fixed(label)?,
    };
    Ok(Dataset {
        rows,
        features: feature_cols.len(),
        feature_names: feature_cols.iter().map(|&j| headers[j].clone()).collect(),
        x,
        y,
        label,
        source: name.to_string(),
    })
}

/// The label column and the feature columns chosen by the options.
fn select_columns(
    headers: &[String],
    opts: &CsvOptions,
    find: &dyn Fn(&str, &str) -> Result<usize>,
) -> Result<(usize, Vec<usize>)> {
    let label_idx = match &opts.label {
        Some(l) => find(l, "--label")?,
        None => headers.len() - 1,
    };
    let mut dropped = vec![false; headers.len()];
    for d in &opts.drop {
        let j = find(d, "--drop")?;
        if j == label_idx {
            return Err(Error::Config(format!(
                "--drop {d}: \"{d}\" is the label column; pick another label with --label"
            )));
        }
        dropped[j] = true;
    }
    let feature_cols: Vec<usize> = (0..headers.len())
        .filter(|&j| j != label_idx && !dropped[j])
        .collect();
    if feature_cols.is_empty() {
        return Err(Error::Config(format!(
            "no feature columns left besides the label \"{}\"",
            headers[label_idx]
        )));
    }
    Ok((label_idx, feature_cols))
}

/// Maps labels with a known mapping (numbers compare by value).
fn map_fixed(
    name: &str,
    column: &str,
    labels: &[String],
    lines: &[u64],
    mapping: &LabelMapping,
) -> Result<Vec<f32>> {
    let num = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
    let same =
        |a: &str, b: &str| a == b || matches!((num(a), num(b)), (Some(x), Some(y)) if x == y);
    labels
        .iter()
        .zip(lines)
        .map(|(l, &line)| {
            if same(l, &mapping.positive) {
                Ok(1.0)
            } else if same(l, &mapping.negative) {
                Ok(0.0)
            } else {
                Err(Error::Data {
                    path: name.into(),
                    line: Some(line),
                    column: Some(column.to_string()),
                    msg: format!(
                        "label \"{l}\" is neither \"{}\" (positive) nor \"{}\" (negative) as in the training data",
                        mapping.positive, mapping.negative
                    ),
                })
            }
        })
        .collect()
}

fn column_name(j: usize, name: &str) -> String {
    format!("{} \"{name}\"", j + 1)
}

fn csv_error(name: &str, e: &csv::Error, line: Option<u64>) -> Error {
    let msg = match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    };
    Error::Data {
        path: name.into(),
        line,
        column: None,
        msg,
    }
}

fn parse_feature(name: &str, line: u64, j: usize, header: &str, cell: &str) -> Result<f32> {
    let bad = |msg: String| Error::Data {
        path: name.into(),
        line: Some(line),
        column: Some(column_name(j, header)),
        msg,
    };
    if cell.is_empty() {
        return Err(bad(
            "the cell is empty; features must be finite numbers".into()
        ));
    }
    let v: f64 = cell
        .parse()
        .map_err(|_| bad(format!("\"{cell}\" is not a number")))?;
    if !v.is_finite() {
        return Err(bad(format!("\"{cell}\" is not a finite number")));
    }
    let v32 = v as f32;
    if !v32.is_finite() {
        return Err(bad(format!("\"{cell}\" is outside the range of f32")));
    }
    Ok(v32)
}

/// Maps the label texts to 0/1. Numeric labels: the larger value is positive. Text labels: the
/// value that sorts last, unless `positive` names one.
fn map_labels(
    name: &str,
    column: &str,
    labels: &[String],
    lines: &[u64],
    positive: Option<&str>,
) -> Result<(Vec<f32>, LabelMapping)> {
    let numeric: Option<Vec<f64>> = labels
        .iter()
        .map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite()))
        .collect();
    // Distinct classes as (first text seen, numeric value), sorted below.
    let mut classes: Vec<(String, Option<f64>)> = Vec::new();
    let key_of =
        |i: usize| -> (String, Option<f64>) { (labels[i].clone(), numeric.as_ref().map(|v| v[i])) };
    // The line of the first row holding a third distinct value.
    let mut third_line = None;
    for (i, &line) in lines.iter().enumerate() {
        let (t, v) = key_of(i);
        let same = |c: &(String, Option<f64>)| match v {
            Some(v) => c.1 == Some(v),
            None => c.0 == t,
        };
        if !classes.iter().any(same) {
            if classes.len() == 2 {
                third_line.get_or_insert(line);
            }
            classes.push((t, v));
            if classes.len() > 6 {
                break;
            }
        }
    }
    if classes.len() == 1 {
        return Err(Error::data(
            name,
            format!(
                "the label column \"{column}\" has only one distinct value (\"{}\"); a binary classifier needs exactly two",
                classes[0].0
            ),
        ));
    }
    if classes.len() > 2 {
        let shown: Vec<String> = classes
            .iter()
            .take(6)
            .map(|c| format!("\"{}\"", c.0))
            .collect();
        let more = if classes.len() > 6 { ", ..." } else { "" };
        return Err(Error::Data {
            path: name.into(),
            line: third_line,
            column: None,
            msg: format!(
                "the label column \"{column}\" has more than two distinct values ({}{more}); a binary classifier needs exactly two (pick the label with --label)",
                shown.join(", ")
            ),
        });
    }
    classes.sort_by(|a, b| match (a.1, b.1) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a.0.cmp(&b.0),
    });
    let pos_idx = match positive {
        None => 1,
        Some(p) => {
            let pv = p.parse::<f64>().ok();
            classes
                .iter()
                .position(|c| c.0 == p || (c.1.is_some() && c.1 == pv))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "--positive {p}: the label column \"{column}\" holds \"{}\" and \"{}\", not \"{p}\"",
                        classes[0].0, classes[1].0
                    ))
                })?
        }
    };
    let pos = &classes[pos_idx];
    let y = labels
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let is_pos = match (&numeric, pos.1) {
                (Some(v), Some(pv)) => v[i] == pv,
                _ => *t == pos.0,
            };
            if is_pos { 1.0 } else { 0.0 }
        })
        .collect();
    Ok((
        y,
        LabelMapping {
            column: column.to_string(),
            positive: pos.0.clone(),
            negative: classes[1 - pos_idx].0.clone(),
        },
    ))
}

/// The built-in data sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Demo {
    /// The four points (±1, ±1) labelled 1 where the signs agree: not linearly separable.
    Xnor,
    /// Two Gaussian blobs (σ = 1) centred at (2, 2) and (−2, −2); 2 features.
    Blobs,
    /// Two interleaving half circles with jitter σ = 0.1; 2 features.
    Moons,
    /// Points uniform in [−1, 1]^F labelled by the side of a random hyperplane through 0.
    Hyperplane,
}

impl Demo {
    pub fn name(self) -> &'static str {
        match self {
            Demo::Xnor => "xnor",
            Demo::Blobs => "blobs",
            Demo::Moons => "moons",
            Demo::Hyperplane => "hyperplane",
        }
    }
}

/// Sizes and randomness of a demo set.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Rows (default 1000; xnor has 4).
    pub rows: Option<usize>,
    /// Features (hyperplane only; default 8).
    pub features: Option<usize>,
    /// Fraction of labels flipped, in [0, 1]; exactly round(noise · rows) rows are flipped.
    pub noise: f64,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            rows: None,
            features: None,
            noise: 0.0,
            seed: 0,
        }
    }
}

/// Uniform in [0, 1) with 53 random bits.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal by Box–Muller.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - uniform(rng); // (0, 1]
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Builds a demo set, deterministic for the seed.
pub fn demo(kind: Demo, opts: &DemoOptions) -> Result<Dataset> {
    if !(0.0..=1.0).contains(&opts.noise) || opts.noise.is_nan() {
        return Err(Error::Config(format!(
            "--noise {}: must be a fraction between 0 and 1",
            opts.noise
        )));
    }
    if opts.features.is_some() && kind != Demo::Hyperplane {
        return Err(Error::Config(format!(
            "--features applies to --demo hyperplane only ({} has 2 features)",
            kind.name()
        )));
    }
    if kind == Demo::Xnor && (opts.rows.is_some() || opts.noise > 0.0) {
        return Err(Error::Config(
            "--rows and --noise do not apply to --demo xnor (always its four points)".into(),
        ));
    }
    let rows = opts.rows.unwrap_or(1000);
    let features = opts.features.unwrap_or(8);
    if rows == 0 {
        return Err(Error::Config("--rows must be at least 1".into()));
    }
    if features == 0 {
        return Err(Error::Config("--features must be at least 1".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let (x, mut y, f): (Vec<f32>, Vec<f32>, usize) = match kind {
        Demo::Xnor => (
            vec![1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0, -1.0],
            vec![1.0, 0.0, 0.0, 1.0],
            2,
        ),
        Demo::Blobs => {
            let mut x = Vec::with_capacity(rows * 2);
            let mut y = Vec::with_capacity(rows);
            for r in 0..rows {
                let label = (r % 2) as f32;
                let c = if label == 1.0 { 2.0 } else { -2.0 };
                x.push((c + normal(&mut rng)) as f32);
                x.push((c + normal(&mut rng)) as f32);
                y.push(label);
            }
            (x, y, 2)
        }
        Demo::Moons => {
            let mut x = Vec::with_capacity(rows * 2);
            let mut y = Vec::with_capacity(rows);
            for r in 0..rows {
                let label = (r % 2) as f32;
                let t = std::f64::consts::PI * uniform(&mut rng);
                let (px, py) = if label == 0.0 {
                    (t.cos(), t.sin())
                } else {
                    (1.0 - t.cos(), 0.5 - t.sin())
                };
                x.push((px + 0.1 * normal(&mut rng)) as f32);
                x.push((py + 0.1 * normal(&mut rng)) as f32);
                y.push(label);
            }
            (x, y, 2)
        }
        Demo::Hyperplane => {
            let w: Vec<f64> = (0..features).map(|_| normal(&mut rng)).collect();
            let mut x = Vec::with_capacity(rows * features);
            let mut y = Vec::with_capacity(rows);
            for _ in 0..rows {
                let mut dot = 0.0;
                for wj in &w {
                    let v = (2.0 * uniform(&mut rng) - 1.0) as f32;
                    dot += wj * v as f64;
                    x.push(v);
                }
                y.push(if dot > 0.0 { 1.0 } else { 0.0 });
            }
            (x, y, features)
        }
    };
    let n = y.len();
    // Flip exactly round(noise · n) distinct rows, chosen by a partial Fisher–Yates shuffle.
    let flips = (opts.noise * n as f64).round() as usize;
    let mut idx: Vec<usize> = (0..n).collect();
    for k in 0..flips {
        let pick = k + (rng.next_u64() % (n - k) as u64) as usize;
        idx.swap(k, pick);
        y[idx[k]] = 1.0 - y[idx[k]];
    }
    Ok(Dataset {
        rows: n,
        features: f,
        feature_names: (1..=f).map(|j| format!("x{j}")).collect(),
        x,
        y,
        label: LabelMapping {
            column: "label".into(),
            positive: "1".into(),
            negative: "0".into(),
        },
        source: format!("demo:{}", kind.name()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, opts: &CsvOptions) -> Result<Dataset> {
        parse_csv("t.csv", text.as_bytes(), opts)
    }

    #[test]
    fn numeric_labels_larger_is_positive() {
        let d = parse("a,b,y\n1,2,-1\n3,4,1\n5,6,-1\n", &CsvOptions::default()).unwrap();
        assert_eq!(d.y, vec![0.0, 1.0, 0.0]);
        assert_eq!(d.label.positive, "1");
        assert_eq!(d.label.negative, "-1");
        assert_eq!(d.x, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn text_labels_sort_last_or_named() {
        let text = "x,diag\n1,M\n2,B\n";
        let d = parse(text, &CsvOptions::default()).unwrap();
        assert_eq!(d.y, vec![1.0, 0.0]); // "M" sorts after "B"
        let opts = CsvOptions {
            positive: Some("B".into()),
            ..Default::default()
        };
        let d = parse(text, &opts).unwrap();
        assert_eq!(d.y, vec![0.0, 1.0]);
        assert_eq!(d.label.negative, "M");
    }

    #[test]
    fn label_and_drop_select_columns() {
        let opts = CsvOptions {
            label: Some("y".into()),
            drop: vec!["id".into()],
            positive: None,
        };
        let d = parse("id,y,f\n7,0,1.5\n8,1,2.5\n", &opts).unwrap();
        assert_eq!(d.feature_names, vec!["f"]);
        assert_eq!(d.x, vec![1.5, 2.5]);
    }

    #[test]
    fn standardize_population_std_and_constant_column() {
        let mut d = parse("a,c,y\n1,5,0\n3,5,1\n", &CsvOptions::default()).unwrap();
        let s = Standardizer::fit(&d);
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.std, vec![1.0, 0.0]);
        s.apply(&mut d);
        assert_eq!(d.x, vec![-1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn validation_file_uses_training_columns_and_mapping() {
        let opts = CsvOptions {
            drop: vec!["id".into()],
            ..Default::default()
        };
        let train = parse("id,a,b,y\n1,1,2,M\n2,3,4,B\n", &opts).unwrap();
        // Columns in another order and an extra one.
        let val = parse_csv_like("v.csv", b"b,y,extra,a\n5,B,x,6\n7,M,y,8\n", &train).unwrap();
        assert_eq!(val.x, vec![6.0, 5.0, 8.0, 7.0]);
        assert_eq!(val.y, vec![0.0, 1.0]);
        // One class only is fine for validation; an unknown label is not.
        assert!(parse_csv_like("v.csv", b"a,b,y\n1,2,M\n", &train).is_ok());
        let e = parse_csv_like("v.csv", b"a,b,y\n1,2,M\n3,4,X\n", &train).unwrap_err();
        assert!(
            e.to_string().contains("v.csv, line 3, column 3 \"y\""),
            "{e}"
        );
        let e = parse_csv_like("v.csv", b"a,y\n1,M\n", &train).unwrap_err();
        assert!(e.to_string().contains("no column \"b\""), "{e}");
    }

    #[test]
    fn stratified_split_keeps_class_shares_and_order() {
        let d = demo(
            Demo::Hyperplane,
            &DemoOptions {
                rows: Some(200),
                ..Default::default()
            },
        )
        .unwrap();
        let (tr, va) = split_stratified(&d, 0.25, 3).unwrap();
        assert_eq!(tr.rows + va.rows, 200);
        let pos = d.positives();
        assert_eq!(va.positives(), (0.25 * pos as f64).round() as usize);
        assert_eq!(
            va.rows - va.positives(),
            (0.25 * (200 - pos) as f64).round() as usize
        );
        let (tr2, _) = split_stratified(&d, 0.25, 3).unwrap();
        assert_eq!(tr.x, tr2.x);
        assert!(split_stratified(&d, 1.0, 3).is_err());
        assert!(split_stratified(&d, 0.0001, 3).is_err());
    }

    #[test]
    fn demos_are_deterministic_and_sized() {
        let o = DemoOptions {
            rows: Some(101),
            noise: 0.1,
            seed: 7,
            ..Default::default()
        };
        for kind in [Demo::Blobs, Demo::Moons, Demo::Hyperplane] {
            let a = demo(kind, &o).unwrap();
            let b = demo(kind, &o).unwrap();
            assert_eq!(a.x, b.x);
            assert_eq!(a.y, b.y);
            assert_eq!(a.rows, 101);
        }
        let clean = demo(
            Demo::Hyperplane,
            &DemoOptions {
                noise: 0.0,
                ..o.clone()
            },
        )
        .unwrap();
        let noisy = demo(Demo::Hyperplane, &o).unwrap();
        let flipped = clean.y.iter().zip(&noisy.y).filter(|(a, b)| a != b).count();
        assert_eq!(flipped, 10); // round(0.1 * 101)
        assert_eq!(demo(Demo::Xnor, &DemoOptions::default()).unwrap().rows, 4);
    }
}

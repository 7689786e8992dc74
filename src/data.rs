//! Training data: CSV loading (streamed, with precise errors and exact label values), label
//! mapping, z-score standardization and the built-in demo sets.

mod label;
mod records;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::memory;
use label::Decimal;
use records::Records;
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
#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// Label column name; `None` takes the last column.
    pub label: Option<String>,
    /// Columns to ignore.
    pub drop: Vec<String>,
    /// The label value that is the positive class.
    pub positive: Option<String>,
    /// The field separator (`--delimiter`), an ASCII byte; `,` by default.
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label: None,
            drop: Vec::new(),
            positive: None,
            delimiter: b',',
        }
    }
}

/// Reads `--delimiter`: one ASCII character, `tab` or `\t` (a tab).
pub fn parse_delimiter(s: &str) -> std::result::Result<u8, String> {
    let b = match s {
        "tab" | "\\t" | "\t" => b'\t',
        _ if s.len() == 1 && s.is_ascii() => s.as_bytes()[0],
        _ => return Err("expected one ASCII character, `tab` or `\\t`".into()),
    };
    check_delimiter(b).map(|()| b)
}

/// A delimiter must be a printable ASCII character other than `"`, a space or a tab.
fn check_delimiter(b: u8) -> std::result::Result<(), String> {
    if b == b'"' {
        Err("the quote character cannot separate fields".into())
    } else if b == b'\t' || b == b' ' || b.is_ascii_graphic() {
        Ok(())
    } else {
        Err(format!(
            "byte {b:#04x} cannot separate fields (use a printable ASCII character, `tab` or `\\t`)"
        ))
    }
}

/// Caps while reading: bytes of input, of one record, and of the rows kept.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// The most bytes the input may supply (`None`: no cap; for inputs that are not regular
    /// files, the machine's memory).
    input: Option<u64>,
    record: usize,
    /// The rows kept may take half of this.
    memory: memory::Limit,
}

impl Limits {
    fn machine(regular: bool) -> Self {
        let memory = memory::limit();
        Limits {
            input: (!regular).then_some(memory.bytes),
            record: MAX_RECORD_BYTES,
            memory,
        }
    }
}

/// Opens a data file, with the caps for its kind: a FIFO, a device or a pipe is read as a
/// stream and capped at the machine's memory; a regular file is only held to the memory the
/// rows kept need.
fn open(path: &Path) -> Result<(std::fs::File, Limits)> {
    let file = std::fs::File::open(path).map_err(|err| Error::Io {
        path: path.to_path_buf(),
        err,
    })?;
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    Ok((file, Limits::machine(regular)))
}

/// Reads a CSV file with a header row. Every column other than the label and the dropped ones
/// must hold finite numbers.
pub fn load_csv(path: &Path, opts: &CsvOptions) -> Result<Dataset> {
    let shown = path.display().to_string();
    let (file, limits) = open(path)?;
    Ok(parse_with(&shown, file, opts.delimiter, limits, Columns::Select(opts))?.0)
}

/// Parses CSV bytes; `name` is used in error messages. Never panics, whatever the bytes.
pub fn parse_csv(name: &str, bytes: &[u8], opts: &CsvOptions) -> Result<Dataset> {
    let limits = Limits::machine(true);
    Ok(parse_with(name, bytes, opts.delimiter, limits, Columns::Select(opts))?.0)
}

/// Parses CSV from a reader, one record at a time, capped as a stream is (at the machine's
/// memory); `name` is used in error messages.
pub fn read_csv(name: &str, src: impl Read, opts: &CsvOptions) -> Result<Dataset> {
    let limits = Limits::machine(false);
    Ok(parse_with(name, src, opts.delimiter, limits, Columns::Select(opts))?.0)
}

/// Reads a validation file: the training data's feature columns (by name, in any order; other
/// columns are ignored) and label column, with the training data's label mapping.
pub fn load_csv_like(path: &Path, like: &Dataset, delimiter: u8) -> Result<Dataset> {
    let shown = path.display().to_string();
    let (file, limits) = open(path)?;
    Ok(parse_with(&shown, file, delimiter, limits, Columns::Like(like))?.0)
}

/// Parses comma-separated bytes with the columns and label mapping of `like`.
pub fn parse_csv_like(name: &str, bytes: &[u8], like: &Dataset) -> Result<Dataset> {
    let limits = Limits::machine(true);
    Ok(parse_with(name, bytes, b',', limits, Columns::Like(like))?.0)
}

/// Reads rows for a saved model: the `features` columns by name (in any order; other columns
/// are ignored) and, if the file has it, the label column mapped by `label`. Returns the rows
/// and whether they are labelled; unlabelled rows all read as class 0.
pub fn load_csv_named(
    path: &Path,
    features: &[String],
    label: &LabelMapping,
    delimiter: u8,
) -> Result<(Dataset, bool)> {
    let shown = path.display().to_string();
    let (file, limits) = open(path)?;
    parse_with(
        &shown,
        file,
        delimiter,
        limits,
        Columns::Named { features, label },
    )
}

/// Parses comma-separated bytes as `load_csv_named` reads a file; `name` is used in error
/// messages.
pub fn parse_csv_named(
    name: &str,
    bytes: &[u8],
    features: &[String],
    label: &LabelMapping,
) -> Result<(Dataset, bool)> {
    let limits = Limits::machine(true);
    parse_with(
        name,
        bytes,
        b',',
        limits,
        Columns::Named { features, label },
    )
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

impl Columns<'_> {
    /// The known label mapping (`None`: found in the file).
    fn mapping(&self) -> Option<&LabelMapping> {
        match self {
            Columns::Select(_) => None,
            Columns::Like(like) => Some(&like.label),
            Columns::Named { label, .. } => Some(label),
        }
    }
}

/// Makes room for one more row of `f` features, growing the capacity at most to `max`
/// elements (beyond what the row itself needs); false if the memory cannot be had.
fn reserve_row(x: &mut Vec<f32>, f: usize, max: usize) -> bool {
    if x.capacity() - x.len() >= f {
        return true;
    }
    let Some(need) = x.len().checked_add(f) else {
        return false;
    };
    let target = x.capacity().saturating_mul(2).max(1024).min(max).max(need);
    x.try_reserve_exact(target - x.len()).is_ok()
}

/// The current record's field `j`, trimmed of ASCII whitespace, as text.
fn field_text<'r, R: Read>(
    name: &str,
    recs: &'r Records<'_, R>,
    line: u64,
    j: usize,
) -> Result<&'r str> {
    std::str::from_utf8(recs.field(j).trim_ascii()).map_err(|_| Error::Data {
        path: name.into(),
        line: Some(line),
        column: None,
        msg: format!("invalid UTF-8 in field {}", j + 1),
    })
}

/// Says so when a one-column header looks separated by another character than `delimiter`.
fn delimiter_hint(name: &str, line: u64, headers: &[String], delimiter: u8) -> Option<Error> {
    let [h] = headers else {
        return None;
    };
    let (_, what, flag) = [
        (b';', "semicolon", "--delimiter ';'"),
        (b'\t', "tab", "--delimiter tab"),
        (b',', "comma", "--delimiter ','"),
    ]
    .into_iter()
    .filter(|c| c.0 != delimiter)
    .map(|c| (h.bytes().filter(|&b| b == c.0).count(), c.1, c.2))
    .filter(|c| c.0 > 0)
    .max_by_key(|c| c.0)?;
    Some(Error::Data {
        path: name.into(),
        line: Some(line),
        column: None,
        msg: format!(
            "the header is one column \"{}\": the file looks {what}-separated; use {flag}",
            h.escape_debug()
        ),
    })
}

/// Where each row's label goes.
enum LabelSink<'a> {
    /// Training data: the two values are found in the file.
    Learn(Learned),
    /// A known mapping (validation data, a saved model's rows).
    Fixed {
        mapping: &'a LabelMapping,
        positive: Option<Decimal>,
        negative: Option<Decimal>,
        y: Vec<f32>,
    },
    /// No label column: every row reads as class 0.
    Absent,
}

fn parse_with<R: Read>(
    name: &str,
    src: R,
    delimiter: u8,
    limits: Limits,
    columns: Columns,
) -> Result<(Dataset, bool)> {
    if let Err(why) = check_delimiter(delimiter) {
        return Err(Error::Config(format!(
            "--delimiter {}: {why}",
            (delimiter as char).escape_debug()
        )));
    }
    let empty = || {
        Error::data(
            name,
            "the file is empty (expected a header row and data rows)",
        )
    };
    let mut recs = Records::new(name, src, delimiter, limits.input, limits.record);
    let Some(hline) = recs.next_record()? else {
        return Err(empty());
    };
    let headers: Vec<String> = (0..recs.len())
        .map(|j| field_text(name, &recs, hline, j).map(str::to_string))
        .collect::<Result<_>>()?;
    if headers.len() == 1 && headers[0].is_empty() {
        // Whitespace so far: empty unless something follows.
        while !recs.content_seen() && recs.next_record()?.is_some() {}
        if !recs.content_seen() {
            return Err(empty());
        }
    }
    let mut seen = HashMap::new();
    for (j, h) in headers.iter().enumerate() {
        if h.is_empty() {
            return Err(Error::Data {
                path: name.into(),
                line: Some(hline),
                column: Some((j + 1).to_string()),
                msg: "the header has an empty column name".into(),
            });
        }
        if let Some(first) = seen.insert(h.as_str(), j) {
            return Err(Error::Data {
                path: name.into(),
                line: Some(hline),
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
    // A column the rows must have, else an error saying whose it is.
    let need = |col: &str, what: &str| {
        headers.iter().position(|h| h == col).ok_or_else(|| {
            delimiter_hint(name, hline, &headers, delimiter).unwrap_or_else(|| Error::Data {
                path: name.into(),
                line: Some(hline),
                column: None,
                msg: format!(
                    "the header has no column \"{col}\" ({what}); its columns: {}",
                    headers.join(", ")
                ),
            })
        })
    };
    let (label_idx, feature_cols) = match columns {
        Columns::Select(opts) => {
            if let Some(hint) = delimiter_hint(name, hline, &headers, delimiter) {
                return Err(hint);
            }
            let (label, features) = select_columns(name, hline, &headers, opts, &find)?;
            (Some(label), features)
        }
        Columns::Like(like) => {
            let label = need(&like.label.column, "the label column of the training data")?;
            let features = like
                .feature_names
                .iter()
                .map(|f| need(f, "a feature of the training data"))
                .collect::<Result<Vec<_>>>()?;
            (Some(label), features)
        }
        Columns::Named { features, label } => {
            let features = features
                .iter()
                .map(|f| need(f, "a feature of the model"))
                .collect::<Result<Vec<_>>>()?;
            (headers.iter().position(|h| *h == label.column), features)
        }
    };
    let mut sink = match (columns.mapping(), label_idx) {
        (None, _) => LabelSink::Learn(Learned::default()),
        (Some(_), None) => LabelSink::Absent,
        (Some(mapping), Some(_)) => LabelSink::Fixed {
            mapping,
            positive: label::parse(&mapping.positive),
            negative: label::parse(&mapping.negative),
            y: Vec::new(),
        },
    };

    let f = feature_cols.len();
    // The rows kept may take half the machine's memory: 4 bytes a feature, 5 a row (its
    // label code now, its f32 label later).
    let budget = limits.memory.bytes / 2;
    let row_bytes = memory::sum([memory::f32_bytes(f as u64), Some(5)]);
    let max_x = usize::try_from(budget / 4).unwrap_or(usize::MAX);
    let mut x: Vec<f32> = Vec::new();
    let mut rows = 0usize;
    while let Some(line) = recs.next_record()? {
        for j in 0..recs.len() {
            field_text(name, &recs, line, j)?;
        }
        if recs.len() != headers.len() {
            return Err(Error::Data {
                path: name.into(),
                line: Some(line),
                column: None,
                msg: format!(
                    "expected {} fields (as in the header), found {}",
                    headers.len(),
                    recs.len()
                ),
            });
        }
        let kept = row_bytes.and_then(|b| memory::mul(rows + 1, b));
        if kept.is_none_or(|k| k > budget) || !reserve_row(&mut x, f, max_x) {
            return Err(Error::Data {
                path: name.into(),
                line: Some(line),
                column: None,
                msg: format!(
                    "{} rows of {f} features need {}, more than half of {}",
                    memory::fmt_count(rows as u64 + 1),
                    memory::size_text(kept),
                    limits.memory.describe()
                ),
            });
        }
        for &j in &feature_cols {
            let cell = field_text(name, &recs, line, j)?;
            x.push(parse_feature(name, line, j, &headers[j], cell)?);
        }
        rows += 1;
        let Some(l) = label_idx else {
            continue;
        };
        let lab = field_text(name, &recs, line, l)?;
        if lab.is_empty() {
            return Err(Error::Data {
                path: name.into(),
                line: Some(line),
                column: Some(column_name(l, &headers[l])),
                msg: "the label is empty".into(),
            });
        }
        match &mut sink {
            LabelSink::Learn(learned) => learned.add(lab, line),
            LabelSink::Fixed {
                mapping,
                positive,
                negative,
                y,
            } => {
                let is = |text: &str, v: &Option<Decimal>| {
                    lab == text || (v.is_some() && label::parse(lab) == *v)
                };
                if is(&mapping.positive, &*positive) {
                    y.push(1.0);
                } else if is(&mapping.negative, &*negative) {
                    y.push(0.0);
                } else {
                    return Err(Error::Data {
                        path: name.into(),
                        line: Some(line),
                        column: Some(column_name(l, &headers[l])),
                        msg: format!(
                            "label \"{lab}\" is neither \"{}\" (positive) nor \"{}\" (negative) as in the training data",
                            mapping.positive, mapping.negative
                        ),
                    });
                }
            }
            LabelSink::Absent => {}
        }
    }
    if rows == 0 {
        return Err(Error::data(name, "no data rows after the header"));
    }
    let labelled = label_idx.is_some();
    let (y, label) = match (sink, &columns) {
        (LabelSink::Learn(learned), Columns::Select(opts)) => {
            let column = label_idx
                .and_then(|l| headers.get(l))
                .map_or("", String::as_str);
            learned.finish(name, column, opts.positive.as_deref())?
        }
        (LabelSink::Fixed { mapping, y, .. }, _) => (y, mapping.clone()),
        (_, columns) => match columns.mapping() {
            Some(mapping) => (vec![0.0; rows], mapping.clone()),
            None => return Err(Error::data(name, "no label column")),
        },
    };
    Ok((
        Dataset {
            rows,
            features: f,
            feature_names: feature_cols.iter().map(|&j| headers[j].clone()).collect(),
            x,
            y,
            label,
            source: name.to_string(),
        },
        labelled,
    ))
}

/// The label column and the feature columns chosen by the options.
fn select_columns(
    name: &str,
    line: u64,
    headers: &[String],
    opts: &CsvOptions,
    find: &dyn Fn(&str, &str) -> Result<usize>,
) -> Result<(usize, Vec<usize>)> {
    let label_idx = match &opts.label {
        Some(l) => find(l, "--label")?,
        None => headers.len().saturating_sub(1),
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
        let after_drop = if opts.drop.is_empty() {
            String::new()
        } else {
            format!(" after --drop {}", opts.drop.join(","))
        };
        return Err(Error::Data {
            path: name.into(),
            line: Some(line),
            column: None,
            msg: format!(
                "no feature columns left besides the label \"{}\"{after_drop} (columns: {})",
                headers[label_idx],
                headers.join(", ")
            ),
        });
    }
    Ok((label_idx, feature_cols))
}

/// Whether two label texts name the same value: the same text, or numbers equal exactly
/// ("1" and "1.0"; never through f64, so 2^53 and 2^53 + 1 differ).
pub fn same_label(a: &str, b: &str) -> bool {
    label::same(a, b)
}

/// Distinct label values of training rows, found as the rows stream by: each row keeps a
/// code (bit 0: it holds the second distinct text; bit 1: the second distinct number).
#[derive(Default)]
struct Learned {
    /// Distinct texts in order of appearance (up to 7), each with its value if a number.
    texts: Vec<(String, Option<Decimal>)>,
    /// Distinct numbers in order of appearance (up to 7), each with its first text.
    nums: Vec<(String, Decimal)>,
    more_texts: bool,
    more_nums: bool,
    /// A label that is not a number was seen: labels compare as texts.
    some_text: bool,
    /// The line of the first row holding a third distinct text, number.
    third_text: Option<u64>,
    third_num: Option<u64>,
    codes: Vec<u8>,
}

/// Distinct values kept for the message about too many.
const SHOWN: usize = 7;

impl Learned {
    fn add(&mut self, t: &str, line: u64) {
        let ti = self.texts.iter().position(|c| c.0 == t);
        let parsed;
        let value = match ti {
            Some(i) => self.texts[i].1.as_ref(),
            None => {
                parsed = label::parse(t);
                parsed.as_ref()
            }
        };
        let mut code = 0u8;
        if value.is_none() {
            self.some_text = true;
        }
        let ni = value.and_then(|v| self.nums.iter().position(|c| c.1 == *v));
        let new_num = match (value, ni) {
            (Some(v), None) if !self.some_text => Some(v.clone()),
            _ => None,
        };
        let new_text = ti.is_none().then(|| value.cloned());
        match ti {
            Some(i) => code |= u8::from(i == 1),
            None => {
                if let Some(v) = new_text {
                    if self.texts.len() < SHOWN {
                        self.texts.push((t.to_string(), v));
                        code |= u8::from(self.texts.len() == 2);
                        if self.texts.len() == 3 {
                            self.third_text = Some(line);
                        }
                    } else {
                        self.more_texts = true;
                    }
                }
            }
        }
        match (ni, new_num) {
            (Some(i), _) => code |= u8::from(i == 1) << 1,
            (None, Some(v)) => {
                if self.nums.len() < SHOWN {
                    self.nums.push((t.to_string(), v));
                    code |= u8::from(self.nums.len() == 2) << 1;
                    if self.nums.len() == 3 {
                        self.third_num = Some(line);
                    }
                } else {
                    self.more_nums = true;
                }
            }
            (None, None) => {}
        }
        self.codes.push(code);
    }

    /// Maps the rows to 0/1. Numeric labels: the larger value is positive. Text labels: the
    /// value that sorts last, unless `positive` names one.
    fn finish(
        self,
        name: &str,
        column: &str,
        positive: Option<&str>,
    ) -> Result<(Vec<f32>, LabelMapping)> {
        let numeric = !self.some_text;
        let (classes, more, third, bit): (Vec<(String, Option<Decimal>)>, bool, _, u8) = if numeric
        {
            let classes = self.nums.into_iter().map(|(t, v)| (t, Some(v))).collect();
            (classes, self.more_nums, self.third_num, 2)
        } else {
            let classes = self.texts.into_iter().map(|(t, _)| (t, None)).collect();
            (classes, self.more_texts, self.third_text, 1)
        };
        match classes.len() {
            0 => return Err(Error::data(name, "no data rows after the header")),
            1 => {
                return Err(Error::data(
                    name,
                    format!(
                        "the label column \"{column}\" has only one distinct value (\"{}\"); a binary classifier needs exactly two",
                        classes[0].0
                    ),
                ));
            }
            2 => {}
            n => {
                let shown: Vec<String> = classes
                    .iter()
                    .take(SHOWN - 1)
                    .map(|c| format!("\"{}\"", c.0))
                    .collect();
                let etc = if more || n > SHOWN - 1 { ", ..." } else { "" };
                return Err(Error::Data {
                    path: name.into(),
                    line: third,
                    column: None,
                    msg: format!(
                        "the label column \"{column}\" has more than two distinct values ({}{etc}); a binary classifier needs exactly two (pick the label with --label)",
                        shown.join(", ")
                    ),
                });
            }
        }
        // Class 1 is the one holding the code bit; `hi` is the one that sorts last.
        let hi = match (&classes[0].1, &classes[1].1) {
            (Some(a), Some(b)) if numeric => usize::from(b > a),
            _ => usize::from(classes[1].0 > classes[0].0),
        };
        let lo = 1 - hi;
        let pos_idx = match positive {
            None => hi,
            Some(p) => {
                let pv = label::parse(p);
                classes
                    .iter()
                    .position(|c| c.0 == p || (numeric && pv.is_some() && c.1 == pv))
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "--positive {p}: the label column \"{column}\" holds \"{}\" and \"{}\", not \"{p}\"",
                            classes[lo].0, classes[hi].0
                        ))
                    })?
            }
        };
        let y = self
            .codes
            .iter()
            .map(|&c| {
                let class = usize::from(c & bit != 0);
                if class == pos_idx { 1.0 } else { 0.0 }
            })
            .collect();
        Ok((
            y,
            LabelMapping {
                column: column.to_string(),
                positive: classes[pos_idx].0.clone(),
                negative: classes[1 - pos_idx].0.clone(),
            },
        ))
    }
}

fn column_name(j: usize, name: &str) -> String {
    format!("{} \"{name}\"", j + 1)
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

/// Fails unless a demo set of `rows` rows fits in memory (X and y in f32, and the row indices
/// the label noise shuffles); `features` as given by `--features` (`None`: 2), named in the
/// error with `--rows`.
pub fn check_demo_size(rows: usize, features: Option<usize>) -> Result<()> {
    let f = features.unwrap_or(2);
    let bytes = memory::sum([
        memory::mul(rows, f).and_then(memory::f32_bytes),
        memory::mul(rows, 4),
        memory::mul(rows, std::mem::size_of::<usize>()),
    ]);
    memory::check(bytes, |size| {
        let flags = match features {
            Some(f) => format!("--rows {rows} --features {f}"),
            None => format!("--rows {rows}"),
        };
        format!(
            "{flags}: the data has {} rows × {f} features, {size} with the labels",
            memory::fmt_count(rows as u64)
        )
    })
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
    match kind {
        Demo::Xnor => {}
        Demo::Hyperplane => check_demo_size(rows, Some(features))?,
        Demo::Blobs | Demo::Moons => check_demo_size(rows, None)?,
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

    fn err(text: &str, opts: &CsvOptions) -> String {
        match parse(text, opts) {
            Ok(_) => panic!("accepted: {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_bom_alone_is_empty_and_before_a_header_is_dropped() {
        for text in ["\u{feff}", "\u{feff}\n", "\u{feff}\r\n \t", " \n\n", ""] {
            let e = err(text, &CsvOptions::default());
            assert!(e.starts_with("t.csv: the file is empty"), "{text:?}: {e}");
        }
        let d = parse(
            "\u{feff}y,a\n0,1\n1,2\n",
            &CsvOptions {
                label: Some("y".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(d.feature_names, vec!["a"]);
        // Whitespace before a real header is a header with an empty name, as before.
        let e = err(" \na,y\n1,0\n", &CsvOptions::default());
        assert!(
            e.contains("line 1, column 1: the header has an empty column name"),
            "{e}"
        );
    }

    #[test]
    fn numeric_labels_compare_exactly() {
        let d = parse("a,y\n1,1\n2,1.0\n3,0\n4,01\n", &CsvOptions::default()).unwrap();
        assert_eq!(d.y, vec![1.0, 1.0, 0.0, 1.0]);
        assert_eq!(
            (d.label.positive.as_str(), d.label.negative.as_str()),
            ("1", "0")
        );
        // Spellings of one number are distinct texts once a label is not a number.
        let e = err("a,y\n1,1\n2,1.0\n3,x\n", &CsvOptions::default());
        assert!(e.contains("t.csv, line 4: "), "{e}");
        assert!(e.contains("(\"1\", \"1.0\", \"x\")"), "{e}");
        let e = err(
            "a,y\n1,5\n2,9007199254740992\n3,9007199254740993\n",
            &CsvOptions::default(),
        );
        assert!(e.contains("t.csv, line 4: "), "{e}");
        let text = "a,y\n1,-100000000000000000001\n2,-100000000000000000000\n";
        let d = parse(text, &CsvOptions::default()).unwrap();
        assert_eq!(d.y, vec![0.0, 1.0]);
        let opts = CsvOptions {
            positive: Some("-1.00000000000000000001e20".into()),
            ..Default::default()
        };
        assert_eq!(parse(text, &opts).unwrap().y, vec![1.0, 0.0]);
        // Up to six values are shown, then "...".
        let rows: String = (0..9).map(|i| format!("{i},{i}\n")).collect();
        let e = err(&format!("a,y\n{rows}"), &CsvOptions::default());
        assert!(
            e.contains("(\"0\", \"1\", \"2\", \"3\", \"4\", \"5\", ...)"),
            "{e}"
        );
        assert!(e.contains("t.csv, line 4: "), "{e}");
    }

    #[test]
    fn a_known_mapping_compares_labels_exactly() {
        let train = parse(
            "a,y\n1,100000000000000000000\n2,100000000000000000001\n",
            &CsvOptions::default(),
        )
        .unwrap();
        let v =
            parse_csv_like("v.csv", b"a,y\n1,1e20\n2,100000000000000000001.0\n", &train).unwrap();
        assert_eq!(v.y, vec![0.0, 1.0]);
        let e = parse_csv_like("v.csv", b"a,y\n1,100000000000000000002\n", &train)
            .unwrap_err()
            .to_string();
        assert!(e.contains("v.csv, line 2, column 2 \"y\": label"), "{e}");
        assert!(same_label("1e20", "100000000000000000000"));
        assert!(!same_label("1e20", "100000000000000000001"));
    }

    #[test]
    fn delimiters_are_read_and_hinted() {
        let opts = CsvOptions {
            delimiter: b';',
            ..Default::default()
        };
        let e = err("a;b;y\n1,5;2;0\n", &opts);
        assert!(
            e.contains("line 2, column 1 \"a\": \"1,5\" is not a number"),
            "{e}"
        );
        assert_eq!(
            parse("a;b;y\n1;2;0\n3;4;1\n", &opts).unwrap().x,
            vec![1.0, 2.0, 3.0, 4.0]
        );
        let e = err("a\tb\ty\n1\t2\t0\n", &CsvOptions::default());
        assert!(
            e.contains("t.csv, line 1: the header is one column \"a\\tb\\ty\": the file looks tab-separated; use --delimiter tab"),
            "{e}"
        );
        // Validation files and a model's rows get the hint too.
        let train = parse("a,b,y\n1,2,0\n3,4,1\n", &CsvOptions::default()).unwrap();
        let e = parse_csv_like("v.csv", b"a;b;y\n1;2;0\n", &train)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("v.csv, line 1: ") && e.contains("--delimiter ';'"),
            "{e}"
        );
        let e = parse_csv_named("p.csv", b"a;b\n1;2\n", &train.feature_names, &train.label)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.csv, line 1: ") && e.contains("--delimiter ';'"),
            "{e}"
        );
        // A delimiter that cannot separate fields is refused, also from the library.
        for bad in [b'"', b'\n', b'\r', 0, 0xE9] {
            let opts = CsvOptions {
                delimiter: bad,
                ..Default::default()
            };
            assert!(
                matches!(parse("a,y\n1,0\n", &opts), Err(Error::Config(_))),
                "{bad}"
            );
        }
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter("\\t"), Ok(b'\t'));
        assert_eq!(parse_delimiter("|"), Ok(b'|'));
        assert!(parse_delimiter(";;").is_err());
        assert!(parse_delimiter("").is_err());
    }

    #[test]
    fn the_rows_kept_are_held_to_the_memory() {
        let limits = Limits {
            input: None,
            record: MAX_RECORD_BYTES,
            memory: memory::Limit {
                bytes: 2 * (3 * 13),
                known: true,
            },
        };
        let opts = CsvOptions::default();
        let text = "a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n";
        // Each row keeps 2 · 4 + 5 bytes: three fit in half of 78 bytes, four do not.
        let e = parse_with(
            "m.csv",
            text.as_bytes(),
            b',',
            limits,
            Columns::Select(&opts),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("m.csv, line 5: 4 rows of 2 features need 52 B, more than half of this machine's 78 B of memory"),
            "{e}"
        );
        let three = "a,b,y\n1,2,0\n3,4,1\n5,6,0\n";
        assert!(
            parse_with(
                "m.csv",
                three.as_bytes(),
                b',',
                limits,
                Columns::Select(&opts)
            )
            .is_ok()
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_load_or_fail_without_a_panic(
            bytes in proptest::collection::vec(proptest::sample::select(
                b"ay,;\t\"\r\n 01.-e5\xef\xbb\xbf\xff".to_vec()), 0..120),
            pick in 0u8..8,
        ) {
            let opts = CsvOptions {
                label: (pick & 1 != 0).then(|| "y".to_string()),
                positive: (pick & 2 != 0).then(|| "1".to_string()),
                delimiter: if pick & 4 != 0 { b';' } else { b',' },
                ..Default::default()
            };
            if let Ok(d) = parse_csv("p.csv", &bytes, &opts) {
                proptest::prop_assert_eq!(d.x.len(), d.rows * d.features);
                proptest::prop_assert_eq!(d.y.len(), d.rows);
                let _ = parse_csv_like("p.csv", &bytes, &d);
                let _ = parse_csv_named("p.csv", &bytes, &d.feature_names, &d.label);
            }
        }
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
            delimiter: b',',
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

    #[test]
    fn demos_beyond_memory_are_refused_before_allocating() {
        let big = |kind, rows, features| {
            let o = DemoOptions {
                rows: Some(rows),
                features,
                ..Default::default()
            };
            demo(kind, &o).unwrap_err().to_string()
        };
        let e = big(Demo::Hyperplane, 1 << 40, Some(64));
        assert!(
            e.starts_with(
                "--rows 1099511627776 --features 64: the data has 1,099,511,627,776 rows × 64 \
                 features, 268.0 TiB with the labels, more than "
            ),
            "{e}"
        );
        let e = big(Demo::Moons, usize::MAX, None);
        assert!(
            e.contains("rows × 2 features, over 16 EiB with the labels"),
            "{e}"
        );
        let e = big(Demo::Hyperplane, 10, Some(usize::MAX));
        assert!(e.contains("over 16 EiB"), "{e}");
    }
}

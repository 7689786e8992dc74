//! CSV loading: the options and `--delimiter`, the loaders of training data, validation data
//! and a saved model's rows (streamed, capped, with precise errors; the rows of files and
//! bytes parsed on all cores by `chunks` where they read the same), and the choice of their
//! columns and label mapping.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use super::chunks;
use super::classes::Learned;
use super::label::{self, Decimal};
use super::records::{MAX_RECORD_BYTES, Records};
use super::{Dataset, LabelMapping};
use crate::error::{Error, Result};
use crate::memory;

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

/// An input to read: a file, or stdin (`-`).
enum Input {
    File(std::fs::File),
    Stdin(std::io::Stdin),
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Input::File(f) => f.read(buf),
            Input::Stdin(s) => s.read(buf),
        }
    }
}

/// Whether a data path is `-`, which reads stdin.
fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// How messages name a data path: as given, `-` as "stdin".
fn shown(path: &Path) -> String {
    if is_dash(path) {
        "stdin".into()
    } else {
        path.display().to_string()
    }
}

/// Opens a data file (`-`: stdin), with the caps for its kind: a FIFO, a device, a pipe or
/// stdin is read as a stream and capped at the machine's memory; a regular file is only held
/// to the memory the rows kept need.
fn open(path: &Path) -> Result<(Input, Limits)> {
    if is_dash(path) {
        return Ok((Input::Stdin(std::io::stdin()), Limits::machine(false)));
    }
    let file = std::fs::File::open(path).map_err(|err| Error::Io {
        path: path.to_path_buf(),
        err,
    })?;
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    Ok((Input::File(file), Limits::machine(regular)))
}

/// An error, before anything is read, if two inputs (flag, path) are one stream, which only
/// one of them could read: both stdin (`-`, /dev/stdin, /dev/fd/0, ...), or the same FIFO,
/// device or socket. The same regular file twice is fine.
pub fn check_streams(inputs: &[(&str, &Path)]) -> Result<()> {
    let stdin = |p: &Path| is_dash(p) || crate::atomic::fd_of(p) == Some(0);
    for (i, &(flag, path)) in inputs.iter().enumerate() {
        for &(earlier_flag, earlier) in &inputs[..i] {
            if (stdin(path) && stdin(earlier)) || same_stream(path, earlier) {
                return Err(Error::Config(format!(
                    "{flag} {} and {earlier_flag} {} are the same stream, which only one of them \
                     can read; save it to a file for both",
                    path.display(),
                    earlier.display()
                )));
            }
        }
    }
    Ok(())
}

/// Whether two paths name one object that is not a regular file (`-`: stdin's).
#[cfg(unix)]
fn same_stream(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let meta = |p: &Path| {
        std::fs::metadata(if is_dash(p) {
            Path::new("/dev/stdin")
        } else {
            p
        })
    };
    match (meta(a), meta(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino() && !x.is_file() && !x.is_dir(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_stream(_a: &Path, _b: &Path) -> bool {
    false
}

/// Reads a CSV file with a header row. Every column other than the label and the dropped ones
/// must hold finite numbers.
pub fn load_csv(path: &Path, opts: &CsvOptions) -> Result<Dataset> {
    let shown = shown(path);
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
    let shown = shown(path);
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
    let shown = shown(path);
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

/// Says that `lab` is none of the training data's classes, naming them (or some of them).
fn unknown_label(lab: &str, mapping: &LabelMapping) -> String {
    if mapping.k() == 2 {
        return format!(
            "label \"{lab}\" is neither \"{}\" (positive) nor \"{}\" (negative) as in the training data",
            mapping.positive(),
            mapping.negative()
        );
    }
    let shown: Vec<String> = mapping
        .classes
        .iter()
        .take(8)
        .map(|c| format!("\"{c}\""))
        .collect();
    let etc = if mapping.k() > 8 { ", ..." } else { "" };
    format!(
        "label \"{lab}\" is none of the training data's {} classes ({}{etc})",
        mapping.k(),
        shown.join(", ")
    )
}

/// Makes room for one more row of `f` features, growing the capacity at most to `max`
/// elements (beyond what the row itself needs); false if the memory cannot be had.
pub(super) fn reserve_row(x: &mut Vec<f32>, f: usize, max: usize) -> bool {
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
pub(super) enum LabelSink<'a> {
    /// Training data: the two values are found in the file.
    Learn(Learned),
    /// A known mapping (validation data, a saved model's rows).
    Fixed {
        mapping: &'a LabelMapping,
        /// Each class's value if a number.
        values: Vec<Option<Decimal>>,
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
        if h.starts_with('\u{feff}') {
            return Err(Error::Data {
                path: name.into(),
                line: Some(hline),
                column: Some((j + 1).to_string()),
                msg: format!(
                    "the column name \"{}\" starts with a byte order mark (U+FEFF); save \
                     the file as UTF-8 with at most one BOM, at its start",
                    h.escape_debug()
                ),
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
            values: mapping.classes.iter().map(|c| label::parse(c)).collect(),
            y: Vec::new(),
        },
    };

    let f = feature_cols.len();
    // The rows kept may take half the machine's memory: 4 bytes a feature, 8 a row (its
    // class index now, its f32 label later).
    let budget = limits.memory.bytes / 2;
    let row_bytes = memory::sum([memory::f32_bytes(f as u64), Some(8)]);
    let max_x = usize::try_from(budget / 4).unwrap_or(usize::MAX);
    let mut x: Vec<f32> = Vec::new();
    let mut rows = 0usize;
    if limits.input.is_none() {
        // As many rows as read exactly as below, on all cores; this loop reads the rest.
        let plan = chunks::Plan {
            delimiter,
            fields: headers.len(),
            features: &feature_cols,
            label: label_idx,
            max_record: limits.record,
            budget,
            row_bytes,
            max_x,
        };
        let out = chunks::Rows {
            x: &mut x,
            rows: &mut rows,
            sink: &mut sink,
        };
        chunks::run(&mut recs, &plan, out);
    }
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
            LabelSink::Learn(learned) => {
                let column = &headers[l];
                learned.add(name, column, lab, line)?
            }
            LabelSink::Fixed { mapping, values, y } => match fixed_class(mapping, values, lab) {
                Some(c) => y.push(c as f32),
                None => {
                    return Err(Error::Data {
                        path: name.into(),
                        line: Some(line),
                        column: Some(column_name(l, &headers[l])),
                        msg: unknown_label(lab, mapping),
                    });
                }
            },
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

/// The class of label `lab` in a known mapping (`values`: each class's value if a number):
/// the class of the same text, else of the same number.
pub(super) fn fixed_class(
    mapping: &LabelMapping,
    values: &[Option<Decimal>],
    lab: &str,
) -> Option<usize> {
    mapping.classes.iter().position(|c| c == lab).or_else(|| {
        let v = label::parse(lab)?;
        values.iter().position(|c| c.as_ref() == Some(&v))
    })
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
    // Correctly rounded, as `str::parse::<f64>` (the same numbers, the same values).
    let v: f64 =
        fast_float2::parse(cell).map_err(|_| bad(format!("\"{cell}\" is not a number")))?;
    if !v.is_finite() {
        return Err(bad(format!("\"{cell}\" is not a finite number")));
    }
    let v32 = v as f32;
    if !v32.is_finite() {
        return Err(bad(format!("\"{cell}\" is outside the range of f32")));
    }
    Ok(v32)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::data) fn parse(text: &str, opts: &CsvOptions) -> Result<Dataset> {
        parse_csv("t.csv", text.as_bytes(), opts)
    }

    /// Limits under which the rows are read as a stream is, without the parallel path.
    fn sequential_limits() -> Limits {
        Limits {
            input: Some(u64::MAX),
            ..Limits::machine(true)
        }
    }

    /// `parse_csv` without the parallel path.
    pub(in crate::data) fn sequential(
        name: &str,
        bytes: &[u8],
        opts: &CsvOptions,
    ) -> Result<Dataset> {
        let limits = sequential_limits();
        Ok(parse_with(name, bytes, opts.delimiter, limits, Columns::Select(opts))?.0)
    }

    /// `parse_csv_like` without the parallel path.
    pub(in crate::data) fn sequential_like(
        name: &str,
        bytes: &[u8],
        like: &Dataset,
    ) -> Result<Dataset> {
        let limits = sequential_limits();
        Ok(parse_with(name, bytes, b',', limits, Columns::Like(like))?.0)
    }

    /// `parse_csv_named` without the parallel path.
    pub(in crate::data) fn sequential_named(
        name: &str,
        bytes: &[u8],
        features: &[String],
        label: &LabelMapping,
    ) -> Result<(Dataset, bool)> {
        let limits = sequential_limits();
        parse_with(
            name,
            bytes,
            b',',
            limits,
            Columns::Named { features, label },
        )
    }

    pub(in crate::data) fn err(text: &str, opts: &CsvOptions) -> String {
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
    fn a_second_bom_is_an_error_naming_the_column() {
        let e = err("\u{feff}\u{feff}a,y\n1,0\n2,1\n", &CsvOptions::default());
        assert!(
            e.starts_with("t.csv, line 1: the file starts with two byte order marks"),
            "{e}"
        );
        let e = err("\u{feff}\u{feff}\u{feff}a,y\n1,0\n", &CsvOptions::default());
        assert!(
            e.starts_with("t.csv, line 1: the file starts with two"),
            "{e}"
        );
        let e = err("a,\u{feff}y\n1,0\n2,1\n", &CsvOptions::default());
        assert!(
            e.starts_with("t.csv, line 1, column 2: the column name \"\\u{feff}y\" starts with a byte order mark"),
            "{e}"
        );
    }

    #[test]
    fn two_inputs_that_are_one_stream_are_refused() {
        let p = Path::new;
        for (a, b) in [("-", "-"), ("/dev/stdin", "-"), ("-", "/dev/fd/0")] {
            let e = check_streams(&[("--data", p(a)), ("--val", p(b))])
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("--val {b} and --data {a} are the same stream")),
                "{e}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.csv");
        std::fs::write(&file, "a,y\n").unwrap();
        assert!(check_streams(&[("--data", &file), ("--val", &file)]).is_ok());
        assert!(check_streams(&[("--data", p("-")), ("--val", &file)]).is_ok());
        if cfg!(unix) && Path::new("/dev/null").exists() {
            let e = check_streams(&[("--data", p("/dev/null")), ("--val", p("/dev/null"))]);
            assert!(e.is_err());
        }
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
                bytes: 2 * (3 * 16),
                known: true,
            },
        };
        let opts = CsvOptions::default();
        let text = "a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n";
        // Each row keeps 2 · 4 + 8 bytes: three fit in half of 96 bytes, four do not.
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
            e.starts_with("m.csv, line 5: 4 rows of 2 features need 64 B, more than half of this machine's 96 B of memory"),
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

    #[test]
    fn the_memory_cap_names_the_same_line_on_the_parallel_path() {
        let limits = Limits {
            input: None,
            record: MAX_RECORD_BYTES,
            memory: memory::Limit {
                bytes: 2 * (300 * 16),
                known: true,
            },
        };
        let opts = CsvOptions::default();
        let rows: String = (0..400)
            .map(|i| format!("{i},{},{}\n", i * 2, i % 2))
            .collect();
        let text = format!("a,b,y\n{rows}");
        for s in super::chunks::tests::TRIES {
            let e = super::chunks::tests::with_sizes(s, || {
                parse_with(
                    "m.csv",
                    text.as_bytes(),
                    b',',
                    limits,
                    Columns::Select(&opts),
                )
            })
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with(
                    "m.csv, line 302: 301 rows of 2 features need 4.7 KiB, more than half"
                ),
                "{s:?}: {e}"
            );
        }
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
}

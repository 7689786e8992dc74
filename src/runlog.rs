//! `--log FILE.csv`: one row per checked iteration, flushed as the run goes so that a run
//! that dies still leaves its history. A write that fails says that the log is incomplete.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::atomic;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::outputs::Checked;
use crate::train::CheckRecord;

const FIELDS: [&str; 6] = ["loss", "accuracy", "precision", "recall", "f1", "iou"];

pub struct RunLog {
    path: PathBuf,
    out: csv::Writer<BufWriter<Box<dyn Write + Send>>>,
    has_val: bool,
    /// The iteration of the last row written completely.
    last: Option<u64>,
}

fn values(m: &Metrics) -> [f64; 6] {
    [m.loss, m.accuracy, m.precision, m.recall, m.f1, m.iou]
}

impl RunLog {
    /// Opens the log (a regular file is created or truncated; a symlink is followed; a
    /// device, FIFO or descriptor such as /dev/stdout is written to) and writes the header.
    /// `checked`: the inputs' files, which the log refuses to become.
    pub fn create(path: &Path, has_val: bool, checked: &Checked) -> Result<Self> {
        let io = |err| Error::Io {
            path: path.to_path_buf(),
            err,
        };
        let target = atomic::resolve(path).map_err(io)?;
        let sink = atomic::open_stream(&target, &checked.inputs).map_err(io)?;
        let mut log = RunLog {
            path: path.to_path_buf(),
            out: csv::Writer::from_writer(BufWriter::new(sink)),
            has_val,
            last: None,
        };
        let mut header = vec!["iteration".to_string(), "elapsed_s".to_string()];
        header.extend(FIELDS.iter().map(|f| format!("train_{f}")));
        if has_val {
            header.extend(FIELDS.iter().map(|f| format!("val_{f}")));
        }
        log.row(header, "the header")?;
        Ok(log)
    }

    /// Appends one check; numbers in their shortest round-trip form.
    pub fn write(&mut self, c: &CheckRecord) -> Result<()> {
        let mut row = vec![c.iteration.to_string(), c.elapsed_s.to_string()];
        row.extend(values(&c.train).iter().map(f64::to_string));
        if self.has_val {
            let v = c.val.map(|v| values(&v));
            row.extend(
                FIELDS
                    .iter()
                    .enumerate()
                    .map(|(i, _)| v.map_or(String::new(), |v| v[i].to_string())),
            );
        }
        self.row(row, &format!("the row of iteration {}", c.iteration))?;
        self.last = Some(c.iteration);
        Ok(())
    }

    /// Writes and flushes one row; an error says what is in the file.
    fn row(&mut self, fields: Vec<String>, what: &str) -> Result<()> {
        let written = self
            .out
            .write_record(&fields)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.flush());
        written.map_err(|e| {
            let kept = match self.last {
                Some(t) => format!("its last complete row is of iteration {t}"),
                None => "it has no complete row".to_string(),
            };
            Error::Io {
                path: self.path.clone(),
                err: std::io::Error::new(
                    e.kind(),
                    format!(
                        "writing {what} failed: {e}; the log {} is incomplete ({kept})",
                        self.path.display()
                    ),
                ),
            }
        })
    }
}

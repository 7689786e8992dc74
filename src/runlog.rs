//! `--log FILE.csv`: one row per checked iteration, flushed as the run goes so that a run
//! that dies still leaves its history.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::train::CheckRecord;

const FIELDS: [&str; 6] = ["loss", "accuracy", "precision", "recall", "f1", "iou"];

pub struct RunLog {
    path: PathBuf,
    out: csv::Writer<BufWriter<File>>,
    has_val: bool,
}

fn values(m: &Metrics) -> [f64; 6] {
    [m.loss, m.accuracy, m.precision, m.recall, m.f1, m.iou]
}

impl RunLog {
    /// Creates (truncates) the file and writes the header.
    pub fn create(path: &Path, has_val: bool) -> Result<Self> {
        let io = |err| Error::Io {
            path: path.to_path_buf(),
            err,
        };
        let file = File::create(path).map_err(io)?;
        let mut log = RunLog {
            path: path.to_path_buf(),
            out: csv::Writer::from_writer(BufWriter::new(file)),
            has_val,
        };
        let mut header = vec!["iteration".to_string(), "elapsed_s".to_string()];
        header.extend(FIELDS.iter().map(|f| format!("train_{f}")));
        if has_val {
            header.extend(FIELDS.iter().map(|f| format!("val_{f}")));
        }
        log.row(header)?;
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
        self.row(row)
    }

    fn row(&mut self, fields: Vec<String>) -> Result<()> {
        let err = |e: std::io::Error| Error::Io {
            path: self.path.clone(),
            err: e,
        };
        self.out.write_record(&fields).map_err(|e| err(e.into()))?;
        self.out.flush().map_err(err)
    }
}

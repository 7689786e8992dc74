//! The library's error type. Every message names what the user can fix: the file, line and
//! column, or the flag.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// Bad content in a data file; `line` and `column` are 1-based where known.
    #[error("{}", data_message(path, *line, column.as_deref(), msg))]
    Data {
        path: String,
        line: Option<u64>,
        column: Option<String>,
        msg: String,
    },
    /// An option's value is invalid (the message names the flag).
    #[error("{0}")]
    Config(String),
    /// No GPU adapter could be found or opened.
    #[error("{0}")]
    NoAdapter(String),
    /// The data or model does not fit the device's limits.
    #[error("{0}")]
    TooLarge(String),
    /// The backend cannot run what was asked (e.g. an optimizer the GPU lacks so far).
    #[error("{0}")]
    Unsupported(String),
    /// The GPU reported an error while working.
    #[error("GPU error: {0}")]
    Gpu(String),
}

fn data_message(path: &str, line: Option<u64>, column: Option<&str>, msg: &str) -> String {
    let mut s = path.to_string();
    if let Some(l) = line {
        s.push_str(&format!(", line {l}"));
    }
    if let Some(c) = column {
        s.push_str(&format!(", column {c}"));
    }
    s.push_str(": ");
    s.push_str(msg);
    s
}

impl Error {
    pub(crate) fn data(path: &str, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.to_string(),
            line: None,
            column: None,
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

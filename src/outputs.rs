//! The files a command reads and writes, checked together before anything runs: no output is
//! another output or an input, and every output can be written. Also the account of an output
//! whose write failed at the end of a run (the report's `write_errors`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::atomic::{self, Target};
use crate::error::{Error, Result};
use crate::job::{DataSource, TrainJob, ValSource};
use crate::report::Report;

/// A path as a flag gave it.
#[derive(Clone, Copy, Debug)]
pub struct Named<'a> {
    pub flag: &'a str,
    pub path: &'a Path,
}

/// What a path stands for, for telling whether two paths are one file.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Identity {
    /// An existing object, symlinks followed; `shared`: a character device (such as /dev/null
    /// or a terminal), which several outputs may name.
    Node { dev: u64, ino: u64, shared: bool },
    /// A file yet to be created: its canonical folder and its name.
    Planned(PathBuf),
}

impl Identity {
    fn shared(&self) -> bool {
        matches!(self, Identity::Node { shared: true, .. })
    }
}

/// The identity of `path` (`-`: stdout, for an output); `None` where it cannot be told (the
/// writability check then says why the path is no good).
fn identity(path: &Path, output: bool) -> Option<Identity> {
    let p = if output && path.as_os_str() == "-" {
        Path::new("/dev/stdout")
    } else {
        path
    };
    match std::fs::metadata(p) {
        Ok(m) => node(p, &m),
        Err(_) => match atomic::resolve(p) {
            Ok(Target::File {
                path,
                existing: None,
            }) => Some(Identity::Planned(path)),
            _ => None,
        },
    }
}

#[cfg(unix)]
fn node(_path: &Path, m: &std::fs::Metadata) -> Option<Identity> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    Some(Identity::Node {
        dev: m.dev(),
        ino: m.ino(),
        shared: m.file_type().is_char_device(),
    })
}

#[cfg(not(unix))]
fn node(path: &Path, _m: &std::fs::Metadata) -> Option<Identity> {
    std::fs::canonicalize(path).ok().map(Identity::Planned)
}

/// An error if two outputs are one file or an output is an input (character devices
/// excepted), then every output's writability check ([`atomic::check_target`]).
pub fn check(inputs: &[Named], outputs: &[Named]) -> Result<()> {
    let ins: Vec<_> = inputs
        .iter()
        .map(|n| (n, identity(n.path, false)))
        .collect();
    let outs: Vec<_> = outputs
        .iter()
        .map(|n| (n, identity(n.path, true)))
        .collect();
    for (i, (o, id)) in outs.iter().enumerate() {
        let Some(id) = id.as_ref().filter(|id| !id.shared()) else {
            continue;
        };
        if let Some((input, _)) = ins.iter().find(|(_, other)| other.as_ref() == Some(id)) {
            return Err(Error::Config(format!(
                "{} {}: the same file as {} {}, which it would overwrite; name another file for {}",
                o.flag,
                o.path.display(),
                input.flag,
                input.path.display(),
                o.flag
            )));
        }
        if let Some((earlier, _)) = outs[..i]
            .iter()
            .find(|(_, other)| other.as_ref() == Some(id))
        {
            return Err(Error::Config(format!(
                "{} {} and {} {} are the same file; each output needs a file of its own",
                earlier.flag,
                earlier.path.display(),
                o.flag,
                o.path.display()
            )));
        }
    }
    for o in outputs {
        atomic::check_target(o.path, o.flag)?;
    }
    Ok(())
}

/// [`check`] for a training job: inputs `--data`, `--val`, `--init-weights`; outputs
/// `--save`, `--log` and `plot` (`--plot`, which the command line draws).
pub fn check_train(job: &TrainJob, plot: Option<&Path>) -> Result<()> {
    let mut inputs = Vec::new();
    if let DataSource::Csv { path, .. } = &job.source {
        inputs.push(Named {
            flag: "--data",
            path,
        });
    }
    if let ValSource::File(path) = &job.val {
        inputs.push(Named {
            flag: "--val",
            path,
        });
    }
    if let Some(path) = &job.init_weights {
        inputs.push(Named {
            flag: "--init-weights",
            path,
        });
    }
    check(&inputs, &train_outputs(job, plot))
}

/// `--save`, `--log` and `--plot` where given.
fn train_outputs<'a>(job: &'a TrainJob, plot: Option<&'a Path>) -> Vec<Named<'a>> {
    [
        ("--save", job.save.as_deref()),
        ("--log", job.log.as_deref()),
        ("--plot", plot),
    ]
    .into_iter()
    .filter_map(|(flag, p)| p.map(|path| Named { flag, path }))
    .collect()
}

/// An error if an output of `train` would go to stdout mixed with the report printed there.
/// With `--json` no output may go to stdout (the JSON could not be parsed); with the human
/// report `--log -` (or another name of descriptor 1) may, its rows coming before the report,
/// but not `--save` or `--plot` (the file would end in the report's text). An output naming
/// the file or pipe that stdout is, other than through descriptor 1, is an error either way.
pub fn check_report_stdout(job: &TrainJob, plot: Option<&Path>, json: bool) -> Result<()> {
    let report = if json {
        "the --json report"
    } else {
        "the report"
    };
    let stdout = identity(Path::new("/dev/stdout"), true).filter(|id| !id.shared());
    for o in train_outputs(job, plot) {
        let what = match o.flag {
            "--save" => "the model file",
            "--plot" => "the chart",
            _ => "the log",
        };
        let shown = o.path.display();
        if is_stdout(o.path) {
            if json {
                return Err(Error::Config(format!(
                    "{} {shown} and --json both write to stdout: {what} and the JSON report \
                     would mix and the JSON could not be parsed; send {} to a file, or leave \
                     out --json",
                    o.flag, o.flag
                )));
            }
            if o.flag != "--log" {
                return Err(Error::Config(format!(
                    "{} {shown}: {what} would go to stdout followed by the report printed \
                     there; send {} to a file",
                    o.flag, o.flag
                )));
            }
        } else if stdout.is_some() && identity(o.path, true) == stdout {
            let or = if o.flag == "--log" {
                " (or name it -: the log then comes before the report)"
            } else {
                ""
            };
            return Err(Error::Config(format!(
                "{} {shown} is the file stdout goes to: {what} and {report} would overwrite \
                 each other; send {} to another file{or}",
                o.flag, o.flag
            )));
        }
    }
    Ok(())
}

/// [`check`] for `predict`: inputs `--model` and `--data`, output `--out`.
pub fn check_predict(model: &Path, data: &Path, out: Option<&Path>) -> Result<()> {
    let inputs = [
        Named {
            flag: "--model",
            path: model,
        },
        Named {
            flag: "--data",
            path: data,
        },
    ];
    let outputs: Vec<Named> = out
        .map(|path| Named {
            flag: "--out",
            path,
        })
        .into_iter()
        .collect();
    check(&inputs, &outputs)
}

/// Whether `path` names this process's stdout (`-`, /dev/stdout, /dev/fd/1, ...).
pub fn is_stdout(path: &Path) -> bool {
    atomic::fd_of(path) == Some(1)
}

/// An output that could not be written (or not completely) at the end of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WriteError {
    /// The option, e.g. `--save`.
    pub flag: String,
    /// The path as given.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

impl WriteError {
    pub fn new(flag: &str, path: &Path, e: &Error) -> Self {
        WriteError {
            flag: flag.to_string(),
            path: path.display().to_string(),
            error: match e {
                Error::Io { err, .. } => err.to_string(),
                other => other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.flag, self.path, self.error)
    }
}

/// The `--json` report; with `write_errors` after the report's own keys when a write failed.
pub fn report_json(report: &Report, errors: &[WriteError]) -> String {
    #[derive(Serialize)]
    struct WithErrors<'a> {
        #[serde(flatten)]
        report: &'a Report,
        write_errors: &'a [WriteError],
    }
    if errors.is_empty() {
        return report.to_json();
    }
    serde_json::to_string_pretty(&WithErrors {
        report,
        write_errors: errors,
    })
    .unwrap_or_else(|_| report.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named<'a>(flag: &'a str, path: &'a Path) -> Named<'a> {
        Named { flag, path }
    }

    #[test]
    fn the_same_file_under_two_names_collides() {
        let dir = tempfile::TempDir::new().unwrap();
        let data = dir.path().join("d.csv");
        std::fs::write(&data, "a,y\n1,0\n").unwrap();
        let dotted = dir.path().join(".").join("d.csv");
        let e = check(&[named("--data", &data)], &[named("--save", &dotted)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--save") && e.contains("--data"), "{e}");
        // Two outputs not yet there, named two ways.
        let a = dir.path().join("m.bin");
        let b = dir.path().join("sub").join("..").join("m.bin");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let e = check(&[], &[named("--save", &a), named("--plot", &b)])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--save ") && e.contains(" and --plot "),
            "{e}"
        );
        assert!(check(&[], &[named("--save", &a), named("--log", &data)]).is_ok());
        #[cfg(unix)]
        {
            let null = Path::new("/dev/null");
            assert!(check(&[named("--data", null)], &[named("--save", null)]).is_ok());
            assert!(check(&[], &[named("--save", null), named("--plot", null)]).is_ok());
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "the checks leave nothing behind"
        );
    }
}

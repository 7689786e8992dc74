//! The files a command reads and writes, checked together before anything runs: no output is
//! another output or an input, and every output can be written. Also the account of an output
//! whose write failed at the end of a run (the report's `write_errors`).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

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

/// The identity of `path`: `-` is stdout for an output and stdin for an input, and it and
/// other names of a descriptor (/dev/stdin, /dev/fd/N, ...) stand for the open file the
/// descriptor is. `None` where it cannot be told (the writability check then says why the
/// path is no good).
fn identity(path: &Path, output: bool) -> Option<Identity> {
    let fd = if path.as_os_str() == "-" {
        Some(if output { 1 } else { 0 })
    } else {
        atomic::fd_of(path)
    };
    if let Some(fd) = fd {
        return fd_identity(fd);
    }
    match std::fs::metadata(path) {
        Ok(m) => node(path, &m),
        Err(_) => match atomic::resolve(path) {
            Ok(Target::File {
                path,
                existing: None,
            }) => Some(Identity::Planned(path)),
            _ => None,
        },
    }
}

/// What the open descriptor `fd` is (fstat).
#[cfg(unix)]
fn fd_identity(fd: i32) -> Option<Identity> {
    // SAFETY: fstat writes into the zeroed struct it is given, nothing else.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some(Identity::Node {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        shared: st.st_mode & libc::S_IFMT == libc::S_IFCHR,
    })
}

#[cfg(not(unix))]
fn fd_identity(_fd: i32) -> Option<Identity> {
    None
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

/// What [`check`] found: the inputs' files, which a write at the end of the run refuses to
/// touch even where a symlink made during the run would lead there.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub inputs: Vec<atomic::Avoid>,
}

impl Checked {
    /// Writes the output `path` ([`atomic::write_checked`]), giving up a stalled FIFO once
    /// `stop` is set.
    pub fn write(&self, path: &Path, bytes: &[u8], stop: &AtomicBool) -> Result<()> {
        atomic::write_checked(path, bytes, stop, &self.inputs)
    }
}

/// An error if two outputs are one file or an output is an input (character devices
/// excepted), then every output's writability check ([`atomic::check_target`]). Returns the
/// inputs' identities for the writes.
pub fn check(inputs: &[Named], outputs: &[Named]) -> Result<Checked> {
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
    let inputs = ins
        .into_iter()
        .filter_map(|(n, id)| match id {
            Some(Identity::Node {
                dev,
                ino,
                shared: false,
            }) => Some(atomic::Avoid {
                flag: n.flag.to_string(),
                path: n.path.to_path_buf(),
                dev,
                ino,
            }),
            _ => None,
        })
        .collect();
    Ok(Checked { inputs })
}

/// [`check`] for a training job: inputs `--data`, `--val`, `--init-weights`; outputs
/// `--save`, `--log` and `plot` (`--plot`, which the command line draws).
pub fn check_train(job: &TrainJob, plot: Option<&Path>) -> Result<Checked> {
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
            flag: job.init_flag,
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
    let stdout = fd_identity(1).filter(|id| !id.shared());
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
pub fn check_predict(model: &Path, data: &Path, out: Option<&Path>) -> Result<Checked> {
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

/// An error if `predict --out` would collide with what `predict` prints: the summary on
/// stdout (an `--out` naming the file stdout goes to, other than through descriptor 1, which
/// streams the CSV there instead) or the messages on stderr (`--out` naming stderr).
pub fn check_predict_stdout(out: Option<&Path>) -> Result<()> {
    let Some(out) = out else {
        return Ok(());
    };
    if is_stdout(out) {
        return Ok(());
    }
    let shown = out.display();
    let id = identity(out, true);
    let stdout = fd_identity(1).filter(|id| !id.shared());
    if stdout.is_some() && id == stdout {
        return Err(Error::Config(format!(
            "--out {shown} is the file stdout goes to: the predictions and the summary printed \
             there would overwrite each other; send --out to another file, or name it - to \
             stream the predictions to stdout"
        )));
    }
    let stderr = fd_identity(2).filter(|id| !id.shared());
    if atomic::fd_of(out) == Some(2) || (stderr.is_some() && id == stderr) {
        return Err(Error::Config(format!(
            "--out {shown} is stderr: the predictions would mix with the messages and metrics \
             printed there; send --out to a file, or name it - to stream the predictions to \
             stdout"
        )));
    }
    Ok(())
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

//! Where an output path's bytes go: a descriptor, a regular file (symlinks followed, and not
//! a stranger's in a sticky shared folder), a device, FIFO or socket; `resolve` decides.

use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

/// The folder a file at `path` goes into ("." for a bare file name).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Where the bytes written for a path go.
#[derive(Debug)]
pub enum Target {
    /// An open file descriptor (`-`, /dev/stdout, /dev/fd/N, ...): written to.
    Fd(i32),
    /// A regular file at this path, symlinks followed (`existing`: what it replaces, if it
    /// exists): replaced atomically.
    File {
        path: PathBuf,
        existing: Option<fs::Metadata>,
    },
    /// A character device or a FIFO: opened and written to.
    Stream(PathBuf),
    /// A Unix socket: connected to and written to.
    Socket(PathBuf),
}

pub(super) fn err(kind: ErrorKind, msg: String) -> io::Error {
    io::Error::new(kind, msg)
}

/// The descriptor a path names without being a file: `-` (stdout), /dev/stdin, /dev/stdout,
/// /dev/stderr, /dev/fd/N, /proc/self/fd/N, /proc/thread-self/fd/N or /proc/PID/fd/N of this
/// process.
pub fn fd_of(path: &Path) -> Option<i32> {
    if path.as_os_str() == "-" {
        return Some(1);
    }
    if !cfg!(unix) || !path.has_root() {
        return None;
    }
    // `/dev/./stdout`, `/dev//stdout` and `/dev/x/../stdout` name /dev/stdout too.
    let mut parts: Vec<&str> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(s) => parts.push(s.to_str()?),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let number = |s: &str| -> Option<i32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let pid = std::process::id().to_string();
    match parts.as_slice() {
        ["dev", "stdin"] => Some(0),
        ["dev", "stdout"] => Some(1),
        ["dev", "stderr"] => Some(2),
        ["dev", "fd", n] => number(n),
        ["proc", who, "fd", n] if *who == "self" || *who == "thread-self" || *who == pid => {
            number(n)
        }
        _ => None,
    }
}

/// An error unless `fd` is open for writing.
#[cfg(unix)]
pub(super) fn check_fd(fd: i32) -> io::Result<()> {
    // SAFETY: F_GETFL reads the descriptor's flags and touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(err(
            ErrorKind::NotFound,
            format!("file descriptor {fd} is not open"),
        ));
    }
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(err(
            ErrorKind::PermissionDenied,
            format!("file descriptor {fd} is open for reading only"),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn check_fd(_fd: i32) -> io::Result<()> {
    Ok(())
}

/// Follows `path` through symlinks, component by component, to the physical path a write
/// would create or replace (a dangling link gives its missing target; a missing folder is
/// kept in the path for the caller to report). A link in a sticky, world-writable folder
/// (such as /tmp) owned neither by this user nor by the folder's owner is not followed, as
/// the kernel's protected_symlinks rule has it: another user could point it anywhere.
pub(super) fn final_path(path: &Path) -> io::Result<PathBuf> {
    use std::path::Component;
    let mut done = if path.has_root() {
        PathBuf::from("/")
    } else {
        std::env::current_dir()?
    };
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(s) => todo.push(s.to_os_string()),
                Component::ParentDir => todo.push("..".into()),
                _ => {}
            }
        }
    };
    push(&mut todo, path);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            done.pop();
            continue;
        }
        let next = done.join(&name);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(err(
                        ErrorKind::InvalidInput,
                        "too many levels of symbolic links".into(),
                    ));
                }
                protected_link(&done, &next, &m)?;
                let to = fs::read_link(&next)?;
                if to.has_root() {
                    done = PathBuf::from("/");
                }
                push(&mut todo, &to);
            }
            Ok(_) => done = next,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                done = next;
                while let Some(rest) = todo.pop() {
                    done.push(rest);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// An error for the symlink `link` (metadata `m`) in the folder `dir` if the folder is sticky
/// and world-writable and the link belongs neither to this user nor to the folder's owner.
#[cfg(unix)]
pub(super) fn protected_link(dir: &Path, link: &Path, m: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let d = fs::metadata(dir)?;
    // SAFETY: geteuid has no failure mode and touches no memory.
    let me = unsafe { libc::geteuid() };
    if d.mode() & 0o1002 == 0o1002 && m.uid() != me && m.uid() != d.uid() {
        return Err(err(
            ErrorKind::PermissionDenied,
            format!(
                "{} is a symlink owned by user {} in the shared folder {} (sticky and \
                 world-writable): not followed, as another user could point it at any file; \
                 name the file it leads to instead",
                link.display(),
                m.uid(),
                dir.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn protected_link(_dir: &Path, _link: &Path, _m: &fs::Metadata) -> io::Result<()> {
    Ok(())
}

/// Where a write to `path` goes; an error for a folder, a block device, a missing folder, or a
/// descriptor that is not open for writing.
pub fn resolve(path: &Path) -> io::Result<Target> {
    if let Some(fd) = fd_of(path) {
        check_fd(fd)?;
        return Ok(Target::Fd(fd));
    }
    let text = path.as_os_str().to_string_lossy();
    if text.is_empty() {
        return Err(err(ErrorKind::InvalidInput, "the path is empty".into()));
    }
    if text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR) {
        return Err(err(
            ErrorKind::InvalidInput,
            "a file name is needed, not a folder".into(),
        ));
    }
    match fs::metadata(path) {
        Ok(m) => {
            let t = m.file_type();
            if t.is_file() {
                return Ok(Target::File {
                    path: final_path(path)?,
                    existing: Some(m),
                });
            }
            if t.is_dir() {
                return Err(err(
                    ErrorKind::InvalidInput,
                    "a file name is needed, not a folder".into(),
                ));
            }
            // Walked for its symlinks' sake (see `final_path`).
            special(&final_path(path)?, &t)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let p = final_path(path)?;
            let name = p.file_name().ok_or_else(|| {
                err(
                    ErrorKind::InvalidInput,
                    "a file name is needed, not a folder".into(),
                )
            })?;
            let dir = folder_of(&p);
            let shown = if p == path {
                String::new()
            } else {
                format!(" (where the symlink leads, {})", p.display())
            };
            let canonical = match fs::canonicalize(dir) {
                Ok(d) => d,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(err(
                        ErrorKind::NotFound,
                        format!("the folder {} does not exist{shown}", dir.display()),
                    ));
                }
                Err(e) => return Err(e),
            };
            if !canonical.is_dir() {
                return Err(err(
                    ErrorKind::NotADirectory,
                    format!("{} is not a folder{shown}", dir.display()),
                ));
            }
            Ok(Target::File {
                path: canonical.join(name),
                existing: None,
            })
        }
        Err(e) if e.raw_os_error() == not_a_dir() => {
            let dir = folder_of(path);
            Err(err(
                ErrorKind::NotADirectory,
                if fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
                    format!("{} is not a folder", dir.display())
                } else {
                    format!("a part of {} is a file, not a folder", dir.display())
                },
            ))
        }
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
pub(super) fn not_a_dir() -> Option<i32> {
    Some(libc::ENOTDIR)
}

#[cfg(not(unix))]
pub(super) fn not_a_dir() -> Option<i32> {
    None
}

/// The target of an existing path that is neither a regular file nor a folder.
#[cfg(unix)]
pub(super) fn special(path: &Path, t: &fs::FileType) -> io::Result<Target> {
    use std::os::unix::fs::FileTypeExt;
    if t.is_char_device() || t.is_fifo() {
        Ok(Target::Stream(path.to_path_buf()))
    } else if t.is_socket() {
        Ok(Target::Socket(path.to_path_buf()))
    } else {
        Err(err(
            ErrorKind::InvalidInput,
            "is a block device (outputs go to files, character devices, FIFOs or sockets)".into(),
        ))
    }
}

#[cfg(not(unix))]
pub(super) fn special(path: &Path, _t: &fs::FileType) -> io::Result<Target> {
    Ok(Target::Stream(path.to_path_buf()))
}

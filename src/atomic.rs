//! Writing an output (`--save`, `--plot`, `--out`, and opening `--log`): where a path's bytes
//! go, a check before a run that they can go there, and the write itself.
//!
//! - A regular file, or a path that does not exist yet, is replaced atomically: on Linux the
//!   bytes go into an unnamed temporary file (O_TMPFILE) in the target's folder, are flushed
//!   to disk (fsync) and only then get a name, so a reader sees the old file or the whole new
//!   one and a kill during the write leaves nothing. Elsewhere (or where the file system has
//!   no O_TMPFILE) a named temporary `.NAME.wgtrain-partial-PID-N` is used, removed on every
//!   error. The replaced file's mode (and, where allowed, owner) is kept.
//! - A symlink is followed to its final target, which is written (a dangling link creates
//!   its target); the link stays a link.
//! - Character devices, FIFOs and sockets are written to as they are, and so are open file
//!   descriptors named `-` (stdout), `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` or
//!   `/proc/self/fd/N`. A FIFO is opened without blocking, again every few milliseconds until
//!   a reader comes or a stop flag (a signal) is set, so the wait can be given up.
//! - A replaced file's setuid and setgid bits are not carried over to the new file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};

/// Tells apart the temporary files of concurrent writes within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Never set: the stop flag of a write that waits for a FIFO's reader as long as it takes.
static NEVER: AtomicBool = AtomicBool::new(false);

/// How often a write into a FIFO tries again to find a reader.
const READER_POLL: Duration = Duration::from_millis(20);

/// What a write given up for a signal says (its error kind is `Interrupted`).
pub const NO_READER: &str = "no reader opened the FIFO before the signal";

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

fn err(kind: ErrorKind, msg: String) -> io::Error {
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
    let parts: Vec<&str> = path
        .components()
        .skip(1)
        .map(|c| match c {
            std::path::Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
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
fn check_fd(fd: i32) -> io::Result<()> {
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
fn check_fd(_fd: i32) -> io::Result<()> {
    Ok(())
}

/// Follows `path` through symlinks as long as they lead somewhere, to the path a write would
/// create or replace (a dangling link gives its missing target).
fn final_path(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = fs::read_link(&p)?;
                p = if to.is_absolute() {
                    to
                } else {
                    folder_of(&p).join(to)
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(e),
        }
    }
    Err(err(
        ErrorKind::InvalidInput,
        "too many levels of symbolic links".into(),
    ))
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
                    path: fs::canonicalize(path)?,
                    existing: Some(m),
                });
            }
            if t.is_dir() {
                return Err(err(
                    ErrorKind::InvalidInput,
                    "a file name is needed, not a folder".into(),
                ));
            }
            special(path, &t)
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
fn not_a_dir() -> Option<i32> {
    Some(libc::ENOTDIR)
}

#[cfg(not(unix))]
fn not_a_dir() -> Option<i32> {
    None
}

/// The target of an existing path that is neither a regular file nor a folder.
#[cfg(unix)]
fn special(path: &Path, t: &fs::FileType) -> io::Result<Target> {
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
fn special(path: &Path, _t: &fs::FileType) -> io::Result<Target> {
    Ok(Target::Stream(path.to_path_buf()))
}

/// A temporary name in `dir` for `dest` that says what it is.
fn partial_name(dir: &Path, dest: &Path, what: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Room for the suffix within a 255-byte file name.
    let mut cut = name.len().min(180);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    dir.join(format!(
        ".{}.wgtrain-{what}-{}-{}",
        &name[..cut],
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// An unnamed file in `dir` (O_TMPFILE); `None` where the system or file system has none.
#[cfg(target_os = "linux")]
fn unnamed(dir: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o666)
        .open(dir)
    {
        Ok(f) => Ok(Some(f)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Gives the unnamed `file` the name `dest`, which must not exist.
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, dest: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let fd = file.as_raw_fd();
    let to = CString::new(dest.as_os_str().as_bytes())
        .map_err(|_| err(ErrorKind::InvalidInput, "a NUL byte in the path".into()))?;
    let from = CString::new(format!("/proc/self/fd/{fd}"))
        .map_err(|_| err(ErrorKind::InvalidInput, "a NUL byte in the path".into()))?;
    // SAFETY: both strings are NUL-terminated and outlive the calls; linkat writes no memory.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let first = io::Error::last_os_error();
    if first.raw_os_error() != Some(libc::ENOENT) {
        return Err(first);
    }
    // No /proc: link the descriptor itself (needs CAP_DAC_READ_SEARCH).
    // SAFETY: as above; the empty path is a NUL-terminated literal.
    let rc = unsafe {
        libc::linkat(
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if rc == 0 { Ok(()) } else { Err(first) }
}

/// Whether naming an unnamed file failed for want of support (then a named temporary is
/// used instead) rather than for a reason that would stop that too.
#[cfg(target_os = "linux")]
fn link_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::EPERM | libc::EXDEV | libc::EOPNOTSUPP | libc::EINVAL)
    )
}

/// Gives the new file the mode and, where allowed, the owner of the one it replaces.
fn keep_mode(file: &File, existing: Option<&fs::Metadata>) -> io::Result<()> {
    match existing {
        Some(old) => keep_mode_of(file, old),
        None => Ok(()),
    }
}

#[cfg(unix)]
fn keep_mode_of(file: &File, old: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let new = file.metadata()?;
    if new.uid() != old.uid() || new.gid() != old.gid() {
        // Only root may give a file away; others keep their own ownership.
        let _ = std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid()));
    }
    // Not setuid or setgid: new contents must not inherit the old file's privileges.
    file.set_permissions(fs::Permissions::from_mode(old.mode() & 0o1777))
}

#[cfg(not(unix))]
fn keep_mode_of(file: &File, old: &fs::Metadata) -> io::Result<()> {
    file.set_permissions(old.permissions())
}

/// Writes the whole of `bytes`, the replaced file's mode, and flushes it all to disk.
fn fill(mut file: &File, bytes: &[u8], existing: Option<&fs::Metadata>) -> io::Result<()> {
    file.write_all(bytes)?;
    keep_mode(file, existing)?;
    file.sync_all()
}

/// Removes a named temporary file when dropped, unless it was renamed into place.
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Replaces (or creates) the regular file `dest` with `bytes`, atomically.
fn replace(dest: &Path, existing: Option<&fs::Metadata>, bytes: &[u8]) -> io::Result<()> {
    let dir = folder_of(dest);
    #[cfg(target_os = "linux")]
    if let Some(file) = unnamed(dir)? {
        fill(&file, bytes, existing)?;
        let named = (|| {
            if existing.is_none() {
                match link_unnamed(&file, dest) {
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    done => return done,
                }
            }
            // A complete file gets a temporary name and is at once renamed over the old one.
            let tmp = partial_name(dir, dest, "partial");
            link_unnamed(&file, &tmp)?;
            let mut guard = Partial(Some(tmp.clone()));
            fs::rename(&tmp, dest)?;
            guard.0 = None;
            Ok(())
        })();
        match named {
            Ok(()) => {
                sync_folder(dir);
                return Ok(());
            }
            Err(e) if !link_unsupported(&e) => return Err(e),
            Err(_) => {}
        }
    }
    replace_named(dir, dest, existing, bytes)?;
    sync_folder(dir);
    Ok(())
}

/// The fallback of [`replace`]: a named temporary in `dir`, renamed over `dest` once complete
/// and removed on any error.
fn replace_named(
    dir: &Path,
    dest: &Path,
    existing: Option<&fs::Metadata>,
    bytes: &[u8],
) -> io::Result<()> {
    let tmp = partial_name(dir, dest, "partial");
    let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    let mut guard = Partial(Some(tmp.clone()));
    fill(&file, bytes, existing)?;
    drop(file);
    fs::rename(&tmp, dest)?;
    guard.0 = None;
    Ok(())
}

/// Makes a rename durable. Opening a folder fails on some systems (Windows); the rename has
/// happened either way.
fn sync_folder(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A descriptor of this process as a writable file of its own (a duplicate).
#[cfg(unix)]
fn dup_fd(fd: i32) -> io::Result<File> {
    // SAFETY: `check_fd` found the descriptor open; it is only duplicated, never closed here.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    Ok(File::from(borrowed.try_clone_to_owned()?))
}

#[cfg(not(unix))]
fn dup_fd(fd: i32) -> io::Result<File> {
    Err(err(
        ErrorKind::Unsupported,
        format!("file descriptor {fd}: not supported on this system"),
    ))
}

/// Whether `path` is a FIFO, symlinks followed.
fn is_fifo(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Whether a write to `path` waits for someone else: a FIFO, until its reader opens it.
pub fn waits_for_reader(path: &Path) -> bool {
    matches!(resolve(path), Ok(Target::Stream(p)) if is_fifo(&p))
}

/// Opens the FIFO `path` for writing once it has a reader, looking every [`READER_POLL`];
/// gives up with [`NO_READER`] (kind `Interrupted`) once `stop` is set.
#[cfg(unix)]
fn open_fifo(path: &Path, stop: &AtomicBool) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    loop {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => {
                let fd = f.as_raw_fd();
                // SAFETY: F_GETFL and F_SETFL read and set the open descriptor's flags only.
                let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
                // Writes wait for the reader again, as on a FIFO opened the usual way.
                if flags < 0
                    || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0
                {
                    return Err(io::Error::last_os_error());
                }
                return Ok(f);
            }
            // ENXIO: no reader yet.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if stop.load(Ordering::SeqCst) {
                    return Err(err(ErrorKind::Interrupted, NO_READER.into()));
                }
                std::thread::sleep(READER_POLL);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(not(unix))]
fn open_fifo(path: &Path, _stop: &AtomicBool) -> io::Result<File> {
    OpenOptions::new().write(true).open(path)
}

/// A writer on `target` for a stream of writes (the `--log`): a regular file is created or
/// truncated in place (its mode kept), anything else written to as with [`write_atomic`].
pub fn open_stream(target: &Target) -> io::Result<Box<dyn Write + Send>> {
    open_stream_until(target, &NEVER)
}

/// [`open_stream`], giving up the wait for a FIFO's reader once `stop` is set.
fn open_stream_until(target: &Target, stop: &AtomicBool) -> io::Result<Box<dyn Write + Send>> {
    Ok(match target {
        Target::Fd(1) => Box::new(io::stdout()),
        Target::Fd(2) => Box::new(io::stderr()),
        Target::Fd(fd) => Box::new(dup_fd(*fd)?),
        Target::File { path, .. } => Box::new(
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?,
        ),
        Target::Stream(path) if is_fifo(path) => Box::new(open_fifo(path, stop)?),
        Target::Stream(path) => Box::new(OpenOptions::new().write(true).open(path)?),
        #[cfg(unix)]
        Target::Socket(path) => Box::new(std::os::unix::net::UnixStream::connect(path)?),
        #[cfg(not(unix))]
        Target::Socket(path) => Box::new(OpenOptions::new().write(true).open(path)?),
    })
}

/// Writes `bytes` to `path` as the module's header describes: atomically for a regular file
/// or a missing path, directly for a device, FIFO, socket or descriptor.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_until(path, bytes, &NEVER)
}

/// [`write_atomic`], giving up the wait for a FIFO's reader once `stop` is set (an
/// [`Error::Io`] of kind `Interrupted` saying [`NO_READER`]).
pub fn write_until(path: &Path, bytes: &[u8], stop: &AtomicBool) -> Result<()> {
    let io = |err| Error::Io {
        path: path.to_path_buf(),
        err,
    };
    match resolve(path).map_err(io)? {
        Target::File {
            path: dest,
            existing,
        } => replace(&dest, existing.as_ref(), bytes).map_err(io),
        other => {
            let mut w = open_stream_until(&other, stop).map_err(io)?;
            w.write_all(bytes).and_then(|()| w.flush()).map_err(io)
        }
    }
}

/// Creates and removes a file in `dir`: whether files can be made there.
fn probe_folder(dir: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if unnamed(dir)?.is_some() {
        return Ok(());
    }
    let p = partial_name(dir, Path::new("probe"), "probe");
    OpenOptions::new().write(true).create_new(true).open(&p)?;
    fs::remove_file(&p)
}

/// Checks, before a long run, that a file can later be written at `path`: it resolves (see
/// [`resolve`]), a file can be created in its folder, an existing file or device opens for
/// writing. `flag` names the option in the message.
pub fn check_target(path: &Path, flag: &str) -> Result<()> {
    let shown = path.display();
    let fail = |why: String| Error::Config(format!("{flag} {shown}: {why}"));
    let target = resolve(path).map_err(|e| fail(e.to_string()))?;
    match &target {
        Target::Fd(_) | Target::Socket(_) => Ok(()),
        Target::File {
            path: dest,
            existing,
        } => {
            let dir = folder_of(dest);
            probe_folder(dir).map_err(|e| {
                fail(format!(
                    "cannot create a file in the folder {}: {e}",
                    dir.display()
                ))
            })?;
            if existing.is_some() {
                OpenOptions::new()
                    .write(true)
                    .open(dest)
                    .map_err(|e| fail(format!("cannot be opened for writing: {e}")))?;
            }
            Ok(())
        }
        // Opening a FIFO and closing it again would end its reader's input.
        Target::Stream(p) if is_fifo(p) => Ok(()),
        Target::Stream(p) => OpenOptions::new()
            .write(true)
            .open(p)
            .map(drop)
            .map_err(|e| fail(format!("cannot be opened for writing: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary folder.
    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wgtrain-atomic-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_replaces_and_leaves_no_temporary_file() {
        let dir = folder("replace");
        let p = dir.join("out.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(names(&dir), ["out.txt"]);
        let missing = dir.join("no-such-folder").join("out.txt");
        let e = write_atomic(&missing, b"x").unwrap_err();
        assert!(e.to_string().contains("no-such-folder"), "{e}");
        assert!(!missing.exists());
        let e = check_target(&missing, "--save").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(check_target(&p, "--save").is_ok());
        let e = check_target(&dir, "--save").unwrap_err().to_string();
        assert!(e.contains("a file name is needed, not a folder"), "{e}");
        let slash = format!("{}/new/", dir.display());
        let e = check_target(Path::new(&slash), "--save").unwrap_err();
        assert!(e.to_string().contains("not a folder"), "{e}");
        assert_eq!(names(&dir), ["out.txt"]);
        // Here the unnamed temporary is what the writes above used.
        #[cfg(target_os = "linux")]
        if unnamed(&dir).unwrap().is_none() {
            let _ = writeln!(
                io::stderr(),
                "\n!!! {} has no O_TMPFILE: the named fallback was tested instead\n",
                dir.display()
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn descriptor_paths_are_recognised() {
        let pid = std::process::id();
        for (p, fd) in [
            ("-", Some(1)),
            ("/dev/stdout", Some(1)),
            ("/dev//stderr", Some(2)),
            ("/dev/fd/7", Some(7)),
            ("/proc/self/fd/12", Some(12)),
            (&format!("/proc/{pid}/fd/3"), Some(3)),
            ("/proc/1/fd/3", None),
            ("/dev/fd/x", None),
            ("/dev/fd/-1", None),
            ("dev/stdout", None),
            ("/dev/null", None),
        ] {
            let want = if cfg!(unix) || p == "-" { fd } else { None };
            assert_eq!(fd_of(Path::new(p)), want, "{p}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn keeps_the_mode_and_writes_through_symlinks() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let dir = folder("links");
        let real = dir.join("real.bin");
        fs::write(&real, b"old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.join("link.bin");
        symlink("real.bin", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
        let mode = fs::metadata(&real).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        // A dangling link, relative to its own folder, creates its target.
        fs::create_dir(dir.join("sub")).unwrap();
        let dangling = dir.join("sub").join("d.bin");
        symlink("../made.bin", &dangling).unwrap();
        write_atomic(&dangling, b"made").unwrap();
        assert_eq!(fs::read(dir.join("made.bin")).unwrap(), b"made");
        assert!(
            fs::symlink_metadata(&dangling)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A link into a missing folder says where it leads.
        let lost = dir.join("lost.bin");
        symlink("nowhere/x.bin", &lost).unwrap();
        let e = check_target(&lost, "--plot").unwrap_err().to_string();
        assert!(e.contains("does not exist") && e.contains("nowhere"), "{e}");
        assert_eq!(
            names(&dir),
            ["link.bin", "lost.bin", "made.bin", "real.bin", "sub"]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_written_to_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        write_atomic(Path::new("/dev/null"), b"gone").unwrap();
        assert!(
            fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
        if Path::new("/dev/full").exists() {
            assert!(check_target(Path::new("/dev/full"), "--out").is_ok());
            let e = write_atomic(Path::new("/dev/full"), b"x").unwrap_err();
            assert!(e.to_string().contains("/dev/full"), "{e}");
        }
        assert!(matches!(
            resolve(Path::new("/dev/null")),
            Ok(Target::Stream(_))
        ));
        // The test harness keeps descriptor 0 open; a descriptor far above is not.
        let e = check_target(Path::new("/dev/fd/1000000"), "--out").unwrap_err();
        assert!(e.to_string().contains("not open"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn the_named_fallback_replaces_keeps_the_mode_and_cleans_up() {
        use std::os::unix::fs::PermissionsExt;
        let dir = folder("named");
        let p = dir.join("f.txt");
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let tmp = partial_name(&dir, &p, "partial");
        let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".f.txt.wgtrain-partial-"), "{name}");
        let old = fs::metadata(&p).unwrap();
        replace_named(&dir, &p, Some(&old), b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        // Renaming onto a folder fails: the temporary goes, on both paths.
        let sub = dir.join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("keep"), b"").unwrap();
        assert!(replace_named(&dir, &sub, None, b"x").is_err());
        assert!(replace(&sub, None, b"x").is_err());
        assert_eq!(names(&dir), ["f.txt", "sub"]);
        // A long name still leaves room for the suffix.
        let long = dir.join("x".repeat(250));
        replace_named(&dir, &long, None, b"long").unwrap();
        assert_eq!(fs::read(&long).unwrap(), b"long");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_replaced_file_loses_setuid_and_setgid_but_keeps_the_rest() {
        use std::os::unix::fs::PermissionsExt;
        let dir = folder("setuid");
        let p = dir.join("s4");
        for (before, after) in [(0o4755, 0o755), (0o2750, 0o750), (0o1644, 0o1644)] {
            fs::write(&p, b"old").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(before)).unwrap();
            write_atomic(&p, b"new").unwrap();
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, after, "{before:o}");
            fs::set_permissions(&p, fs::Permissions::from_mode(before)).unwrap();
            let old = fs::metadata(&p).unwrap();
            replace_named(&dir, &p, Some(&old), b"named").unwrap();
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, after, "named fallback, {before:o}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_without_a_reader_is_given_up_once_the_flag_is_set() {
        let dir = folder("fifo");
        let fifo = dir.join("fo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            let _ = writeln!(
                io::stderr(),
                "\n!!! TEST SKIPPED: mkfifo cannot make a FIFO\n"
            );
            return;
        }
        assert!(waits_for_reader(&fifo));
        assert!(!waits_for_reader(&dir.join("plain")));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let setter = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::SeqCst);
            })
        };
        let start = std::time::Instant::now();
        let e = write_until(&fifo, b"x", &stop).unwrap_err();
        setter.join().unwrap();
        assert!(start.elapsed() >= Duration::from_millis(100));
        match &e {
            Error::Io { err, .. } => assert_eq!(err.kind(), ErrorKind::Interrupted),
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains(NO_READER), "{e}");
        // With a reader the bytes arrive, the flag notwithstanding.
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        let stop = AtomicBool::new(false);
        write_until(&fifo, b"through", &stop).unwrap();
        assert_eq!(reader.join().unwrap(), b"through");
        fs::remove_dir_all(&dir).unwrap();
    }
}

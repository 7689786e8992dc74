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

mod target;

use target::err;
pub use target::{Target, fd_of, folder_of, resolve};

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
/// gives up with [`NO_READER`] (kind `Interrupted`) once `stop` is set. The descriptor stays
/// non-blocking: [`Fifo`] waits for room with poll(), so a reader that stops reading cannot
/// hold a write past a signal.
#[cfg(unix)]
fn open_fifo<'a>(path: &Path, stop: &'a AtomicBool) -> io::Result<Fifo<'a>> {
    use std::os::unix::fs::OpenOptionsExt;
    loop {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => return Ok(Fifo { file, stop }),
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

/// A FIFO open without blocking: a write waits for room in short polls and gives up (kind
/// `Interrupted`) once `stop` is set.
#[cfg(unix)]
pub struct Fifo<'a> {
    file: File,
    stop: &'a AtomicBool,
}

#[cfg(unix)]
impl Write for Fifo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        loop {
            match self.file.write(buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                done => return done,
            }
            if self.stop.load(Ordering::SeqCst) {
                return Err(err(
                    ErrorKind::Interrupted,
                    "the reader stopped reading and a signal came".into(),
                ));
            }
            let mut p = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the call's duration; a failure (EINTR) just loops.
            unsafe { libc::poll(&mut p, 1, READER_POLL.as_millis() as i32) };
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(not(unix))]
fn open_fifo<'a>(path: &Path, _stop: &'a AtomicBool) -> io::Result<File> {
    OpenOptions::new().write(true).open(path)
}

/// An input's file, recorded when the outputs were checked: a write whose target has become
/// this file (a symlink made during the run) is refused.
#[derive(Clone, Debug)]
pub struct Avoid {
    /// The input's option, e.g. `--data`.
    pub flag: String,
    /// The path as given.
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

/// The (device, inode) of a file's metadata; `None` for a character device, which several
/// names may share harmlessly (or where the system has no inodes).
pub fn node_of(m: &fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        (!m.file_type().is_char_device()).then(|| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        None
    }
}

/// An error if `m` (the file a write is about to touch) is one of `avoid`.
fn guard(m: &fs::Metadata, avoid: &[Avoid]) -> io::Result<()> {
    let Some(node) = node_of(m) else {
        return Ok(());
    };
    match avoid.iter().find(|a| (a.dev, a.ino) == node) {
        Some(a) => Err(err(
            ErrorKind::InvalidInput,
            format!(
                "it now leads to the same file as {} {} (a symlink changed during the run?), \
                 which it would overwrite; nothing was written",
                a.flag,
                a.path.display()
            ),
        )),
        None => Ok(()),
    }
}

/// [`guard`] for a resolved target: the file or stream as it is now, looked up again.
fn guard_target(target: &Target, avoid: &[Avoid]) -> io::Result<()> {
    let path = match target {
        Target::File { path, .. } | Target::Stream(path) => path,
        Target::Fd(_) | Target::Socket(_) => return Ok(()),
    };
    match fs::symlink_metadata(path) {
        Ok(m) => guard(&m, avoid),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A writer on `target` for a stream of writes (the `--log`): a regular file is created or
/// truncated in place (its mode kept, less setuid and setgid), anything else written to as
/// with [`write_atomic`]. A target that has become one of `avoid` is refused, before any byte
/// of it is truncated.
pub fn open_stream(target: &Target, avoid: &[Avoid]) -> io::Result<Box<dyn Write + Send>> {
    guard_target(target, avoid)?;
    Ok(match target {
        Target::Fd(1) => Box::new(io::stdout()),
        Target::Fd(2) => Box::new(io::stderr()),
        Target::Fd(fd) => Box::new(dup_fd(*fd)?),
        Target::File { path, .. } => Box::new(open_log_file(path, avoid)?),
        Target::Stream(path) if is_fifo(path) => Box::new(open_fifo(path, &NEVER)?),
        Target::Stream(path) => Box::new(OpenOptions::new().write(true).open(path)?),
        #[cfg(unix)]
        Target::Socket(path) => Box::new(std::os::unix::net::UnixStream::connect(path)?),
        #[cfg(not(unix))]
        Target::Socket(path) => Box::new(OpenOptions::new().write(true).open(path)?),
    })
}

/// Opens the regular file `path` (already resolved) for the log: not through a symlink, the
/// open file checked against `avoid`, then truncated and stripped of setuid and setgid.
fn open_log_file(path: &Path, avoid: &[Avoid]) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    let f = o.open(path)?;
    let m = f.metadata()?;
    guard(&m, avoid)?;
    f.set_len(0)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = m.permissions().mode();
        if mode & 0o6000 != 0 {
            f.set_permissions(fs::Permissions::from_mode(mode & 0o1777))?;
        }
    }
    Ok(f)
}

/// Writes `bytes` to `path` as the module's header describes: atomically for a regular file
/// or a missing path, directly for a device, FIFO, socket or descriptor.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_checked(path, bytes, &NEVER, &[])
}

/// [`write_atomic`], giving up the wait for a FIFO's reader once `stop` is set (an
/// [`Error::Io`] of kind `Interrupted` saying [`NO_READER`]).
pub fn write_until(path: &Path, bytes: &[u8], stop: &AtomicBool) -> Result<()> {
    write_checked(path, bytes, stop, &[])
}

/// [`write_until`], refusing a target that has become one of `avoid` since the check. A FIFO
/// whose reader stops reading is given up once `stop` is set, the error (kind `Interrupted`)
/// saying how many of the bytes went through.
pub fn write_checked(path: &Path, bytes: &[u8], stop: &AtomicBool, avoid: &[Avoid]) -> Result<()> {
    let io = |err| Error::Io {
        path: path.to_path_buf(),
        err,
    };
    let target = resolve(path).map_err(io)?;
    guard_target(&target, avoid).map_err(io)?;
    match target {
        Target::File {
            path: dest,
            existing,
        } => replace(&dest, existing.as_ref(), bytes).map_err(io),
        Target::Stream(p) if is_fifo(&p) => {
            let mut w = open_fifo(&p, stop).map_err(io)?;
            let mut sent = 0;
            while sent < bytes.len() {
                match w.write(&bytes[sent..]) {
                    Ok(0) => return Err(io(ErrorKind::WriteZero.into())),
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {
                        return Err(io(err(
                            ErrorKind::Interrupted,
                            format!(
                                "cut off by the signal after {sent} of {} bytes ({e})",
                                bytes.len()
                            ),
                        )));
                    }
                    Err(e) => return Err(io(e)),
                }
            }
            Ok(())
        }
        other => {
            let mut w = open_stream(&other, &[]).map_err(io)?;
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
        Target::Fd(_) => Ok(()),
        // Connected to and let go: a socket with nobody listening is found now, not after
        // the run.
        #[cfg(unix)]
        Target::Socket(p) => std::os::unix::net::UnixStream::connect(p)
            .map(drop)
            .map_err(|e| fail(format!("cannot connect to the socket: {e}"))),
        #[cfg(not(unix))]
        Target::Socket(_) => Ok(()),
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
            ("/dev/./stdout", Some(1)),
            ("/dev/x/../stdout", Some(1)),
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

    /// A FIFO `fo` in `dir`; `None` (after saying so loudly) where mkfifo cannot make one.
    #[cfg(unix)]
    fn fifo_in(dir: &Path) -> Option<PathBuf> {
        let fifo = dir.join("fo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            return Some(fifo);
        }
        let _ = writeln!(
            io::stderr(),
            "\n!!! TEST SKIPPED: mkfifo cannot make a FIFO\n"
        );
        None
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_without_a_reader_is_given_up_once_the_flag_is_set() {
        let dir = folder("fifo");
        let Some(fifo) = fifo_in(&dir) else {
            return;
        };
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

    #[cfg(unix)]
    #[test]
    fn a_target_that_became_an_input_is_refused_at_write_time() {
        use std::os::unix::fs::{MetadataExt, symlink};
        let dir = folder("toctou");
        let input = dir.join("in.csv");
        fs::write(&input, b"a,y\n").unwrap();
        let m = fs::metadata(&input).unwrap();
        let avoid = [Avoid {
            flag: "--data".into(),
            path: input.clone(),
            dev: m.dev(),
            ino: m.ino(),
        }];
        // Checked while missing; a symlink to the input appears during the run.
        let out = dir.join("out.st");
        symlink("in.csv", &out).unwrap();
        let e = write_checked(&out, b"model", &NEVER, &avoid)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--data") && e.contains("in.csv"), "{e}");
        let target = resolve(&out).unwrap();
        assert!(open_stream(&target, &avoid).is_err());
        assert_eq!(fs::read(&input).unwrap(), b"a,y\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_stranger_s_symlink_in_a_sticky_shared_folder_is_not_followed() {
        use std::os::unix::fs::{PermissionsExt, lchown, symlink};
        // SAFETY: geteuid touches no memory.
        if unsafe { libc::geteuid() } != 0 {
            let _ = writeln!(
                io::stderr(),
                "\n!!! TEST SKIPPED: only root can give a symlink to another user\n"
            );
            return;
        }
        let dir = folder("sticky");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let link = dir.join("out.st");
        symlink("victim", &link).unwrap();
        lchown(&link, Some(4242), Some(4242)).unwrap();
        let e = write_atomic(&link, b"x").unwrap_err().to_string();
        assert!(e.contains("not followed") && e.contains("out.st"), "{e}");
        assert!(check_target(&link, "--save").is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        // The same link in a folder that is not shared is followed.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"new");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_whose_reader_stops_reading_is_cut_off_on_a_signal() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = folder("stall");
        let Some(fifo) = fifo_in(&dir) else {
            return;
        };
        // A reader that opens the FIFO and never reads.
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let setter = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::SeqCst);
            })
        };
        let bytes = vec![7u8; 4 << 20];
        let e = write_until(&fifo, &bytes, &stop).unwrap_err();
        setter.join().unwrap();
        match &e {
            Error::Io { err, .. } => assert_eq!(err.kind(), ErrorKind::Interrupted),
            other => panic!("{other}"),
        }
        let e = e.to_string();
        assert!(
            e.contains("cut off") && e.contains(" of 4194304 bytes"),
            "{e}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

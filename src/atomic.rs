//! Atomic file writes: the bytes go to a temporary file in the target's folder, which is
//! flushed to disk (fsync) and then renamed over the target. A reader sees the old file or the
//! whole new one, never a part; a failed or interrupted write leaves no file behind.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Tells apart the temporary files of concurrent writes within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The folder a file at `path` goes into ("." for a bare file name).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks, before a long run, that a file can later be written at `path`: it names a file and
/// its folder exists. `flag` names the option in the message.
pub fn check_target(path: &Path, flag: &str) -> Result<()> {
    let shown = path.display();
    if path.file_name().is_none() || path.is_dir() {
        return Err(Error::Config(format!(
            "{flag} {shown}: a file name is needed, not a folder"
        )));
    }
    let dir = folder_of(path);
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "{flag} {shown}: the folder {} does not exist",
            dir.display()
        )));
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: temporary file in the same folder, write, fsync,
/// rename, then fsync of the folder so the rename itself is durable.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |err| Error::Io {
        path: path.to_path_buf(),
        err,
    };
    let name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let dir = folder_of(path);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(err) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io(err));
    }
    // Opening a folder fails on some systems (Windows); the rename has happened either way.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("wgtrain-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.txt")]);
        let missing = dir.join("no-such-folder").join("out.txt");
        let e = write_atomic(&missing, b"x").unwrap_err();
        assert!(e.to_string().contains("no-such-folder"), "{e}");
        assert!(!missing.exists());
        let e = check_target(&missing, "--save").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(check_target(&p, "--save").is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}

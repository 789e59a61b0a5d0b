//! Small filesystem helpers: atomic writes, directory copies, cache location.

use crate::util::error::{io_at, IoAt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `data` to `path` through a temporary file in the same directory and
/// a rename, so readers never see a half-written file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), IoAt> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_at("creating", dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_at("creating a temp file in", dir))?;
    tmp.write_all(data).and_then(|_| tmp.as_file().sync_all()).map_err(io_at("writing a temp file in", dir))?;
    tmp.persist(path).map_err(|e| io_at("renaming into", path)(e.error))?;
    Ok(())
}

/// Why [`read_bounded`] read nothing; it says what was wrong, not which
/// file (callers name it, keeping this as the cause).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read")]
    Io(#[from] std::io::Error),
    #[error("expected a regular file")]
    NotFile,
    #[error("{size} bytes, expected at most {max}")]
    TooBig { size: u64, max: u64 },
    #[error("grew past {0} bytes while read")]
    Grew(u64),
}

/// Reads `path` if it is a regular file of at most `max` bytes: a device
/// (`/dev/zero`), FIFO or directory would read forever or mean nothing.
/// The error says what was wrong, not which file (callers name it).
pub fn read_bounded(path: &Path, max: u64) -> std::result::Result<Vec<u8>, ReadError> {
    use std::io::Read;
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotFile);
    }
    if meta.len() > max {
        return Err(ReadError::TooBig { size: meta.len(), max });
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the check and the read; never read past max.
    file.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(ReadError::Grew(max));
    }
    Ok(data)
}

/// Recursively copies `from` into `to` (created), keeping symlinks as links.
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), IoAt> {
    std::fs::create_dir_all(to).map_err(io_at("creating", to))?;
    for entry in std::fs::read_dir(from).map_err(io_at("reading", from))? {
        let entry = entry.map_err(io_at("reading", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io_at("reading", &src))?;
        if kind.is_dir() {
            copy_dir(&src, &dst)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(io_at("reading the link", &src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(io_at("linking", &dst))?;
        } else {
            std::fs::copy(&src, &dst).map_err(io_at("copying into", &dst))?;
        }
    }
    Ok(())
}

/// Total size of the regular files directly in `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// `$XDG_CACHE_HOME/crtest`, else `~/.cache/crtest`; `CRTEST_CACHE` overrides both.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CRTEST_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("crtest")
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/r.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        // Only the target remains: no temp files left behind.
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn bounded_reads_refuse_devices_and_big_files() {
        assert_eq!(read_bounded(Path::new("/dev/zero"), 10).unwrap_err().to_string(), "expected a regular file");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_bounded(&p, 5).unwrap(), b"12345");
        assert_eq!(read_bounded(&p, 4).unwrap_err().to_string(), "5 bytes, expected at most 4");
        assert!(read_bounded(dir.path(), 4).is_err());
    }

    #[test]
    fn sha256_of_empty() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}

//! Writes a run's output directory so that readers never see a mix of two
//! runs or a half-written file: everything is built in a staging directory
//! next to the target and moved into place entry by entry, results last.

use crate::util::error::{io_at, IoAt};
use crate::util::fsutil;
use std::path::{Path, PathBuf};

/// Why a run's output directory cannot be used or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("--out {}", .0.display())]
    Unreadable(PathBuf, #[source] std::io::Error),
    #[error("--out {}: exists and is not a directory", .0.display())]
    NotDir(PathBuf),
    #[error("--out {}: cannot list", .0.display())]
    Unlistable(PathBuf, #[source] std::io::Error),
    /// A directory with files that are not an earlier crtest output.
    #[error(
        "--out {}: expected a new or empty directory, or an earlier crtest output (with its results.json); \
         it has other files, and crtest replaces what it writes there",
        .0.display()
    )]
    Foreign(PathBuf),
    /// Ctrl-C or SIGTERM came: nothing more is written.
    #[error("interrupted: results not written")]
    Interrupted,
    #[error("moving {} into place", .0.display())]
    Move(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    At(#[from] IoAt),
    /// Listing or clearing crtest's own staging entries: the OS error alone, as before.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

type Result<T, E = OutputError> = std::result::Result<T, E>;

pub struct Staging {
    pub dir: PathBuf,
    out: PathBuf,
}

/// Checks that `out` may receive a run's output: absent, an empty
/// directory, or the output of an earlier crtest run (its `results.json`
/// names a crtest schema). Committing replaces entries of the same names
/// (`cells/`, `vms/`...), so any other directory (`/`, a home, a source
/// tree) is refused before anything runs.
pub fn check_out(out: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(|e| OutputError::Unreadable(out.into(), e))?,
    };
    if !meta.is_dir() {
        return Err(OutputError::NotDir(out.into()));
    }
    let entries = std::fs::read_dir(out).map_err(|e| OutputError::Unlistable(out.into(), e))?;
    // Staging dirs are crtest's own (left by a run that was killed).
    let foreign = entries.flatten().any(|e| !e.file_name().to_string_lossy().starts_with(".staging-"));
    if !foreign || is_crtest_output(out) {
        return Ok(());
    }
    Err(OutputError::Foreign(out.into()))
}

/// Whether `dir/results.json` is a crtest results document.
fn is_crtest_output(dir: &Path) -> bool {
    let Ok(data) = fsutil::read_bounded(&dir.join("results.json"), 256 << 20) else { return false };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&data) else { return false };
    doc.get("schema").and_then(|s| s.as_str()).is_some_and(|s| s.starts_with("crtest-results/"))
}

/// Files 0644 (0755 when executable), directories 0755: results are for
/// everyone to read, whatever mode the guest or a temp file gave them.
fn publish_modes(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    let mode = if meta.is_dir() {
        0o755
    } else if meta.is_file() {
        if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        }
    } else {
        return Ok(()); // links keep theirs
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_at("setting the mode of", path))?;
    if meta.is_dir() {
        for e in std::fs::read_dir(path)? {
            publish_modes(&e?.path())?;
        }
    }
    Ok(())
}

/// Nothing is written once the run was interrupted.
fn writable() -> Result<()> {
    match crate::vm::reaper::may_write() {
        true => Ok(()),
        false => Err(OutputError::Interrupted),
    }
}

impl Staging {
    pub fn new(out: &Path) -> Result<Self> {
        check_out(out)?;
        std::fs::create_dir_all(out).map_err(io_at("creating", out))?;
        let dir = out.join(format!(".staging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        crate::vm::reaper::scratch(&dir);
        Ok(Staging { dir, out: out.to_path_buf() })
    }

    pub fn write(&self, name: &str, data: &[u8]) -> Result<()> {
        writable()?;
        Ok(fsutil::write_atomic(&self.dir.join(name), data)?)
    }

    /// Moves staged entries into the output dir; `last` go last, in order.
    pub fn commit(self, last: &[&str]) -> Result<()> {
        writable()?;
        publish_modes(&self.dir)?;
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort_by_key(|n| (last.iter().position(|l| l == n), n.clone()));
        for name in names {
            let (from, to) = (self.dir.join(&name), self.out.join(&name));
            if to.is_dir() {
                std::fs::remove_dir_all(&to)?;
            }
            std::fs::rename(&from, &to).map_err(|e| OutputError::Move(to, e))?;
        }
        std::fs::remove_dir(&self.dir)?;
        crate::vm::reaper::unscratch(&self.dir);
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Only reached with content left when commit failed or was never called.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_previous_run_and_leaves_no_staging() {
        let out = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(out.path().join("cells/old")).unwrap();
        std::fs::write(out.path().join("results.json"), r#"{"schema": "crtest-results/1"}"#).unwrap();
        let s = Staging::new(out.path()).unwrap();
        std::fs::create_dir_all(s.dir.join("cells/new")).unwrap();
        s.write("results.json", b"{}").unwrap();
        s.commit(&["results.json"]).unwrap();
        assert!(out.path().join("cells/new").is_dir());
        assert!(!out.path().join("cells/old").exists());
        assert_eq!(std::fs::read(out.path().join("results.json")).unwrap(), b"{}");
        let left: Vec<_> = std::fs::read_dir(out.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".staging"))
            .collect();
        assert!(left.is_empty());
    }

    #[test]
    fn foreign_directories_are_refused_and_outputs_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let e = Staging::new(Path::new("/")).err().unwrap().to_string();
        assert!(e.contains("--out /: expected a new or empty directory"), "{e}");
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        assert!(Staging::new(dir.path()).is_err());
        std::fs::write(dir.path().join("results.json"), "{\"cells\": []}").unwrap();
        assert!(Staging::new(dir.path()).is_err(), "a results.json that is not crtest's");
        assert!(matches!(Staging::new(dir.path()), Err(OutputError::Foreign(_))));
        let file = dir.path().join("notes.txt");
        assert!(matches!(check_out(&file), Err(OutputError::NotDir(_))));
        // Under a file: the OS error is the cause, printed once after the path.
        let e = check_out(&file.join("x")).unwrap_err();
        let want = format!("--out {}: Not a directory (os error 20)", file.join("x").display());
        assert_eq!(crate::util::error::chain(&e), want);
        assert!(check_out(&dir.path().join("new")).is_ok());
        let out = dir.path().join("out");
        let s = Staging::new(&out).unwrap();
        std::fs::create_dir_all(s.dir.join("cells/c")).unwrap();
        std::fs::write(s.dir.join("cells/c/log"), "x").unwrap();
        std::fs::set_permissions(s.dir.join("cells/c"), std::fs::Permissions::from_mode(0o700)).unwrap();
        s.write("results.json", b"{\"schema\": \"crtest-results/1\"}").unwrap();
        s.commit(&["results.json"]).unwrap();
        let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            (mode("results.json"), mode("cells"), mode("cells/c"), mode("cells/c/log")),
            (0o644, 0o755, 0o755, 0o644)
        );
        assert!(Staging::new(&out).is_ok(), "an earlier output may be replaced");
    }

    #[test]
    fn dropped_staging_leaves_nothing() {
        let out = tempfile::tempdir().unwrap();
        {
            let s = Staging::new(out.path()).unwrap();
            s.write("junit.xml", b"<x/>").unwrap();
        }
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }
}

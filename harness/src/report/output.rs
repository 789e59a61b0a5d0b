//! Writes a run's output directory so that readers never see a mix of two
//! runs or a half-written file: everything is built in a staging directory
//! next to the target and moved into place entry by entry, results last.

use crate::fsutil;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub struct Staging {
    pub dir: PathBuf,
    out: PathBuf,
}

impl Staging {
    pub fn new(out: &Path) -> Result<Self> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let dir = out.join(format!(".staging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        crate::reaper::scratch(&dir);
        Ok(Staging { dir, out: out.to_path_buf() })
    }

    pub fn write(&self, name: &str, data: &[u8]) -> Result<()> {
        anyhow::ensure!(!crate::reaper::interrupted(), "interrupted: results not written");
        fsutil::write_atomic(&self.dir.join(name), data)
    }

    /// Moves staged entries into the output dir; `last` go last, in order.
    pub fn commit(self, last: &[&str]) -> Result<()> {
        anyhow::ensure!(!crate::reaper::interrupted(), "interrupted: results not written");
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
            std::fs::rename(&from, &to).with_context(|| format!("moving {} into place", to.display()))?;
        }
        std::fs::remove_dir(&self.dir)?;
        crate::reaper::unscratch(&self.dir);
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
    fn dropped_staging_leaves_nothing() {
        let out = tempfile::tempdir().unwrap();
        {
            let s = Staging::new(out.path()).unwrap();
            s.write("junit.xml", b"<x/>").unwrap();
        }
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }
}

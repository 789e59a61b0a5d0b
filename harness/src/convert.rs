//! Image conversion between format versions: a step of its own in every cell,
//! between the dump and the restore.
//!
//! Built in: `identity`. A user converter is any command following the
//! contract `CMD IN_DIR OUT_DIR`, with `CRTEST_FROM` and `CRTEST_TO` naming
//! the format versions, exit status 0 on success and messages on stderr.

use crate::fsutil;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;

/// Converts an image directory from one format version to another.
pub trait Converter: Send + Sync {
    fn name(&self) -> &str;
    /// Converts `input` into the (not yet existing) directory `output`.
    fn convert(&self, input: &Path, output: &Path, from: &str, to: &str) -> Result<()>;
    /// Whether a failure of this converter is a result (it is part of what
    /// is tested) rather than a fault of crtest.
    fn under_test(&self) -> bool;
}

/// A converter command following the contract above.
pub struct External {
    pub command: std::path::PathBuf,
}

impl Converter for External {
    fn name(&self) -> &str {
        self.command.to_str().unwrap_or("external converter")
    }
    fn convert(&self, input: &Path, output: &Path, from: &str, to: &str) -> Result<()> {
        std::fs::create_dir_all(output)?;
        let out = std::process::Command::new(&self.command)
            .arg(input)
            .arg(output)
            .env("CRTEST_FROM", from)
            .env("CRTEST_TO", to)
            .output()
            .with_context(|| format!("running converter {}", self.command.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            anyhow::bail!("converter {} exited with {}: {}", self.command.display(), out.status, err.trim());
        }
        Ok(())
    }
    fn under_test(&self) -> bool {
        true
    }
}

/// Copies the images unchanged (same format on both sides).
pub struct Identity;

impl Converter for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn convert(&self, input: &Path, output: &Path, _from: &str, _to: &str) -> Result<()> {
        fsutil::copy_dir(input, output).with_context(|| format!("identity conversion of {}", input.display()))
    }
    fn under_test(&self) -> bool {
        false
    }
}

/// What one conversion step did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    pub converter: String,
    pub from: String,
    pub to: String,
    pub ok: bool,
    pub message: Option<String>,
    pub secs: f64,
}

/// Runs `conv` from `input` into `output` and records the step.
pub fn run_step(conv: &dyn Converter, from: &str, to: &str, input: &Path, output: &Path) -> StepRecord {
    let started = Instant::now();
    let result = conv.convert(input, output, from, to);
    StepRecord {
        converter: conv.name().to_string(),
        from: from.to_string(),
        to: to.to_string(),
        ok: result.is_ok(),
        message: result.err().map(|e| format!("{e:#}")),
        secs: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_copies_every_image() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("pagemap-1.img"), [1, 2, 3]).unwrap();
        let rec = run_step(&Identity, "criu-3.17.1", "criu-3.17.1", &a, &b);
        assert!(rec.ok, "{rec:?}");
        assert_eq!(std::fs::read(b.join("pagemap-1.img")).unwrap(), [1, 2, 3]);
        let rec = run_step(&Identity, "x", "x", &dir.path().join("missing"), &dir.path().join("c"));
        assert!(!rec.ok);
        assert!(rec.message.unwrap().contains("identity conversion of"));
    }

    #[test]
    fn external_converter_contract() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("x.img"), "1").unwrap();
        let script = dir.path().join("conv.sh");
        std::fs::write(&script, "#!/bin/sh\ncp \"$1\"/* \"$2\"/ && echo \"$CRTEST_FROM>$CRTEST_TO\" >\"$2/note\"\n")
            .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let conv = External { command: script.clone() };
        let rec = run_step(&conv, "4.2", "4.1", &a, &b);
        assert!(rec.ok, "{rec:?}");
        assert_eq!(std::fs::read_to_string(b.join("note")).unwrap(), "4.2>4.1\n");
        std::fs::write(&script, "#!/bin/sh\necho 'pagemap: no nr_pages' >&2; exit 3\n").unwrap();
        let rec = run_step(&conv, "4.2", "4.1", &a, &dir.path().join("c"));
        assert!(!rec.ok && rec.message.as_deref().unwrap().contains("pagemap: no nr_pages"), "{rec:?}");
    }
}

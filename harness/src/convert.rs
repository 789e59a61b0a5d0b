//! Image conversion between format versions: a step of its own in every cell,
//! between the dump and the restore. Only the identity converter exists so far.

use crate::fsutil;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;

/// Converts an image directory from one format version to another.
pub trait Converter: Send + Sync {
    fn name(&self) -> &str;
    fn convert(&self, input: &Path, output: &Path) -> Result<()>;
}

/// Copies the images unchanged (same format on both sides).
pub struct Identity;

impl Converter for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn convert(&self, input: &Path, output: &Path) -> Result<()> {
        fsutil::copy_dir(input, output).with_context(|| format!("identity conversion of {}", input.display()))
    }
}

/// What one conversion step did.
#[derive(Debug, Clone, serde::Serialize)]
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
    let result = conv.convert(input, output);
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
}

//! The contract every converter keeps, built in or a user's command.

use anyhow::Result;
use std::path::Path;

/// Converts an image directory from one format version to another.
pub trait Converter: Send + Sync {
    fn name(&self) -> &str;
    /// Converts `input` into the (not yet existing) directory `output`.
    fn convert(&self, input: &Path, output: &Path, from: &str, to: &str) -> Result<()>;
    /// Whether a failure of this converter is a result (it is part of what
    /// is tested) rather than a fault of crtest.
    fn under_test(&self) -> bool;
    /// What the converter observed beyond success (e.g. byte equality).
    fn note(&self, _input: &Path, _output: &Path) -> Option<String> {
        None
    }
}

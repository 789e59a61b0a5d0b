//! One conversion step run and recorded.

use super::Converter;
use std::path::Path;
use std::time::Instant;

/// What one conversion step did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    pub converter: String,
    pub from: String,
    pub to: String,
    pub ok: bool,
    pub message: Option<String>,
    pub secs: f64,
    /// How many images of the output decode with the receiving version's
    /// crit (None when not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The step could not be judged: crtest or a tool it runs broke.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broken: bool,
}

impl StepRecord {
    /// `criu-4.2 -> criu-4.1 (pagemap-nr-pages)`.
    pub fn label(&self) -> String {
        format!("{} -> {} ({})", self.from, self.to, self.converter)
    }

    /// `ok`, `FAIL` (the converter or its output) or `ERROR` (crtest's fault).
    pub fn status(&self) -> &'static str {
        match (self.ok, self.broken) {
            (true, _) => "ok",
            (false, true) => "ERROR",
            (false, false) => "FAIL",
        }
    }

    /// `step 1/2 criu-4.2 -> criu-4.1 (...): ok in 0.01s, 11 images decode
    /// with criu-4.1's crit`, for step `i` (from 1) of `n`.
    pub fn summary(&self, i: usize, n: usize) -> String {
        let checked = self.checked.map(|k| format!(", {k} images decode with {}'s crit", self.to)).unwrap_or_default();
        format!("step {i}/{n} {}: {} in {:.2}s{checked}", self.label(), self.status(), self.secs)
    }
}

/// Runs `conv` from `input` into `output` and records the step.
pub fn run_step(conv: &dyn Converter, from: &str, to: &str, input: &Path, output: &Path) -> StepRecord {
    let started = Instant::now();
    let result = conv.convert(input, output, from, to);
    let note = result.as_ref().ok().and_then(|_| conv.note(input, output));
    StepRecord {
        converter: conv.name().to_string(),
        from: from.to_string(),
        to: to.to_string(),
        ok: result.is_ok(),
        message: result.err().map(|e| crate::util::error::chain(&e)),
        secs: started.elapsed().as_secs_f64(),
        checked: None,
        note,
        broken: false,
    }
}

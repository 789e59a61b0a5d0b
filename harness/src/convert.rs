//! Image conversion between format versions: a step of its own in every cell,
//! between the dump and the restore.
//!
//! Built in: `identity`, `crit-recode` and `pagemap-nr-pages` (see
//! `formats.rs` for how steps chain). A user converter is any command following the
//! contract `CMD IN_DIR OUT_DIR`, with `CRTEST_FROM` and `CRTEST_TO` naming
//! the format versions, exit status 0 on success and messages on stderr.

use crate::crit::{self, Crit};
use crate::formats::{StepSpec, Using};
use crate::fsutil;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// Decodes every image with the sender's crit and encodes it back with the
/// receiver's; raw files (pages, tarballs) are copied. How many images came
/// out byte-for-byte identical is reported with the step.
pub struct CritRecode {
    pub sender: Crit,
    pub receiver: Crit,
}

impl Converter for CritRecode {
    fn name(&self) -> &str {
        "crit-recode"
    }
    fn convert(&self, input: &Path, output: &Path, _from: &str, _to: &str) -> Result<()> {
        std::fs::create_dir_all(output)?;
        let json = tempfile::tempdir().context("creating the JSON scratch dir")?;
        self.sender.decode(input, json.path())?;
        self.receiver.encode(json.path(), output)?;
        copy_raw(input, output)
    }
    fn under_test(&self) -> bool {
        true
    }
    fn note(&self, input: &Path, output: &Path) -> Option<String> {
        let (mut same, mut differ) = (0, Vec::new());
        for name in crit::file_names(input).ok()?.into_iter().filter(|n| !crit::is_raw(n)) {
            match std::fs::read(input.join(&name)).ok()? == std::fs::read(output.join(&name)).ok()? {
                true => same += 1,
                false => differ.push(name),
            }
        }
        Some(match differ.len() {
            0 => format!("all {same} images byte-identical after recoding"),
            n => format!("{same} images byte-identical, {n} differ: {}", differ.join(", ")),
        })
    }
}

/// CRIU 4.2 -> 4.1: puts `pagemap_entry.nr_pages` back where 4.1 reads it
/// (see `images::pagemap_to_4_1`); every other file is copied unchanged.
pub struct PagemapNrPages;

impl Converter for PagemapNrPages {
    fn name(&self) -> &str {
        "pagemap-nr-pages"
    }
    fn convert(&self, input: &Path, output: &Path, _from: &str, _to: &str) -> Result<()> {
        fsutil::copy_dir(input, output)?;
        for name in crit::file_names(output)?.into_iter().filter(|n| n.starts_with("pagemap-")) {
            let path = output.join(&name);
            let mut img = crate::images::ImageFile::parse(&std::fs::read(&path)?).with_context(|| name.clone())?;
            crate::images::pagemap_to_4_1(&mut img).with_context(|| name.clone())?;
            std::fs::write(&path, img.to_bytes())?;
        }
        Ok(())
    }
    fn under_test(&self) -> bool {
        true
    }
}

/// Copies the files crit does not decode (pages, tarballs, anything else).
fn copy_raw(input: &Path, output: &Path) -> Result<()> {
    for name in crit::file_names(input)?.into_iter().filter(|n| crit::is_raw(n)) {
        std::fs::copy(input.join(&name), output.join(&name)).with_context(|| format!("copying {name}"))?;
    }
    Ok(())
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
        message: result.err().map(|e| format!("{e:#}")),
        secs: started.elapsed().as_secs_f64(),
        checked: None,
        note,
        broken: false,
    }
}

/// A step ready to run: its converter and the crit that must decode its output.
pub struct Step {
    pub from: String,
    pub to: String,
    pub converter: Box<dyn Converter>,
    pub check: Option<Crit>,
}

/// The steps of the chain `specs` from format `from` to `to`, each checked
/// with the receiving version's crit. Within one format (no specs) it is one
/// step with `within`, checked only when that converter is under test.
pub fn steps(
    specs: &[StepSpec],
    (from, to): (&str, &str),
    within: Box<dyn Converter>,
    crits: &std::collections::BTreeMap<String, Crit>,
) -> Result<Vec<Step>> {
    if specs.is_empty() {
        let check = crits.get(from).cloned().filter(|_| within.under_test());
        return Ok(vec![Step { from: from.into(), to: to.into(), converter: within, check }]);
    }
    specs
        .iter()
        .map(|s| {
            let converter = build(s, crits)?;
            Ok(Step { from: s.from.clone(), to: s.to.clone(), converter, check: crits.get(&s.to).cloned() })
        })
        .collect()
}

/// Builds the converter a declared step uses; `crits` has every format's crit.
pub fn build(spec: &StepSpec, crits: &std::collections::BTreeMap<String, Crit>) -> Result<Box<dyn Converter>> {
    let crit = |f: &str| crits.get(f).cloned().with_context(|| format!("no crit prepared for format {f}"));
    Ok(match &spec.using {
        Using::Identity => Box::new(Identity),
        Using::CritRecode => Box::new(CritRecode { sender: crit(&spec.from)?, receiver: crit(&spec.to)? }),
        Using::PagemapNrPages => Box::new(PagemapNrPages),
        Using::Command(p) => Box::new(External { command: p.clone() }),
    })
}

/// Runs `steps` in order from `input`, each into a directory of its own
/// under `scratch`, the last into `output`; checks each output with the
/// receiving version's crit. Stops at the first step that fails.
pub fn run_chain(steps: &[Step], input: &Path, scratch: &Path, output: &Path) -> Vec<StepRecord> {
    let mut records = Vec::new();
    let mut from: PathBuf = input.to_path_buf();
    for (i, step) in steps.iter().enumerate() {
        let to = if i + 1 == steps.len() { output.to_path_buf() } else { scratch.join(format!("step{}", i + 1)) };
        let mut rec = run_step(step.converter.as_ref(), &step.from, &step.to, &from, &to);
        if let (true, Some(crit)) = (rec.ok, &step.check) {
            match crit.check(&to) {
                Ok(n) => rec.checked = Some(n),
                Err(crit::CritError::Rejected(e)) => {
                    rec.ok = false;
                    rec.message = Some(format!("output does not decode: {e}"));
                }
                Err(crit::CritError::Tool(e)) => {
                    rec.ok = false;
                    rec.broken = true;
                    rec.message = Some(format!("could not check the output: {e}"));
                }
            }
        }
        let ok = rec.ok;
        records.push(rec);
        if !ok {
            break;
        }
        from = to;
    }
    records
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

//! Chains of steps between format versions: built from the declared steps,
//! run in order, each output checked with the receiving version's crit.

use super::crit::{self, Crit};
use super::step::{run_step, StepRecord};
use super::{Converter, CritRecode, External, Identity, PagemapNrPages};
use crate::config::formats::{StepSpec, Using};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

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
        Using::Command(p) => Box::new(External::new(p.clone())),
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

/// Checks that `dir` is a directory of regular files (and directories of
/// them), as a CRIU image directory is: a link could make a converter read
/// or write outside it, and a FIFO or device would block or never end.
pub fn check_input_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).with_context(|| format!("{}: cannot read", dir.display()))?;
    anyhow::ensure!(meta.is_dir(), "{}: expected an image directory (not a link or a file)", dir.display());
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let kind = e.file_type()?;
        if kind.is_dir() {
            check_input_dir(&e.path())?;
            continue;
        }
        anyhow::ensure!(
            kind.is_file(),
            "{}: expected only regular files in an image directory, found {}, a link or special file",
            dir.display(),
            e.file_name().to_string_lossy()
        );
    }
    Ok(())
}

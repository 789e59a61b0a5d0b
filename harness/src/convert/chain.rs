//! Chains of steps between format versions: built from the declared steps,
//! run in order, each output checked with the receiving version's crit.

use super::crit::{self, Crit};
use super::step::{run_step, StepRecord};
use super::{Converter, CritRecode, External, Identity, PagemapNrPages};
use crate::config::formats::{StepSpec, Using};
use crate::util::error::chain;
use std::path::{Path, PathBuf};

/// A crit-recode step between formats whose crit was not prepared.
#[derive(Debug, thiserror::Error)]
#[error("no crit prepared for format {format}")]
pub struct NoCritError {
    pub format: String,
}

/// Why a directory is not one a converter may be given.
#[derive(Debug, thiserror::Error)]
pub enum ImageDirError {
    #[error("{}: cannot read", dir.display())]
    Unreadable {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: expected an image directory (not a link or a file)", dir.display())]
    NotADir { dir: PathBuf },
    #[error("{}: expected only regular files in an image directory, found {name}, a link or special file", dir.display())]
    Special { dir: PathBuf, name: String },
    #[error(transparent)]
    Read(#[from] crate::util::error::IoAt),
    #[error(transparent)]
    Io(#[from] std::io::Error),
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
) -> Result<Vec<Step>, NoCritError> {
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
pub fn build(
    spec: &StepSpec,
    crits: &std::collections::BTreeMap<String, Crit>,
) -> Result<Box<dyn Converter>, NoCritError> {
    let crit = |f: &str| crits.get(f).cloned().ok_or_else(|| NoCritError { format: f.to_string() });
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
                Err(e @ crit::CritError::Rejected { .. }) => {
                    rec.ok = false;
                    rec.message = Some(format!("output does not decode: {e}"));
                }
                Err(e) => {
                    rec.ok = false;
                    rec.broken = true;
                    rec.message = Some(format!("could not check the output: {}", chain(&e)));
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
pub fn check_input_dir(dir: &Path) -> Result<(), ImageDirError> {
    let meta =
        std::fs::symlink_metadata(dir).map_err(|source| ImageDirError::Unreadable { dir: dir.into(), source })?;
    if !meta.is_dir() {
        return Err(ImageDirError::NotADir { dir: dir.into() });
    }
    for e in std::fs::read_dir(dir).map_err(crate::util::error::io_at("reading", dir))? {
        let e = e?;
        let kind = e.file_type()?;
        if kind.is_dir() {
            check_input_dir(&e.path())?;
            continue;
        }
        if !kind.is_file() {
            return Err(ImageDirError::Special { dir: dir.into(), name: e.file_name().to_string_lossy().into_owned() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_dirs_with_links_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        check_input_dir(&a).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", a.join("inventory.img")).unwrap();
        let e = check_input_dir(&a).unwrap_err();
        assert!(matches!(&e, ImageDirError::Special { name, .. } if name == "inventory.img"), "{e}");
        let e = check_input_dir(&a.join("inventory.img")).unwrap_err();
        assert!(matches!(e, ImageDirError::NotADir { .. }), "{e}");
    }

    #[test]
    fn a_crit_that_cannot_start_breaks_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let (a, root) = (dir.path().join("a"), dir.path().join("root"));
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("inventory.img"), "1").unwrap();
        let step = Step {
            from: "f".into(),
            to: "f".into(),
            converter: Box::new(Identity),
            check: Some(Crit::new("f", &root)),
        };
        let rec = run_chain(&[step], &a, dir.path(), &dir.path().join("b")).remove(0);
        assert!(!rec.ok && rec.broken, "{rec:?}");
        let expect = format!("could not check the output: crit of f: no dynamic loader in {}", root.display());
        assert_eq!(rec.message.unwrap(), expect);
    }
}

//! `crtest convert`: a chain of converters run by hand over an image directory.

use super::lists::load_formats;
use super::Out;
use crate::convert;
use crate::prepare::Project;
use anyhow::{Context, Result};
use std::cell::RefCell;
use std::path::Path;

/// Runs the chain `from` -> `to` over `input` into `output` (a new
/// directory, moved into place only when every step worked): 0 when
/// converted, 1 when a step refused the images, 2 when a converter broke.
pub fn convert(
    project: &Project,
    (from, to): (&str, &str),
    file: Option<&Path>,
    (input, output): (&Path, &Path),
    out: &mut Out,
) -> Result<i32> {
    let formats = load_formats(project, file)?;
    convert::check_input_dir(input)?;
    let parent = check_output(input, output)?;
    let specs = formats.chain(from, to).map_err(anyhow::Error::msg)?;
    let needed = specs.iter().flat_map(|s| [s.from.clone(), s.to.clone()]);
    let crits = {
        // crit's fetch notes go where crtest's notes go (the log is a `Fn`).
        let stderr = RefCell::new(&mut *out.stderr);
        let log = |m: &str| {
            let _ = writeln!(stderr.borrow_mut(), "note: {m}");
        };
        convert::crit::for_formats(needed, &project.engines, &crate::util::fsutil::cache_dir(), &log)?
    };
    let steps = convert::steps(&specs, (from, to), Box::new(convert::Identity), &crits)?;
    // Ctrl-C or SIGTERM kills the converter and removes the scratch dir.
    crate::vm::reaper::install();
    let scratch = tempfile::Builder::new().prefix(".crtest-convert-").tempdir_in(parent)?;
    crate::vm::reaper::scratch(scratch.path());
    let records = convert::run_chain(&steps, input, scratch.path(), &scratch.path().join("out"));
    for (i, r) in records.iter().enumerate() {
        writeln!(out.stdout, "{}", r.summary(i + 1, steps.len()))?;
        for line in r.note.iter().chain(r.message.iter()) {
            writeln!(out.stdout, "    {line}")?;
        }
    }
    if records.len() == steps.len() && records.iter().all(|r| r.ok) {
        std::fs::rename(scratch.path().join("out"), output)
            .with_context(|| format!("moving the converted images to {}", output.display()))?;
        crate::vm::reaper::unscratch(scratch.path());
        writeln!(out.stdout, "converted {} ({from}) into {} ({to})", input.display(), output.display())?;
        return Ok(0);
    }
    Ok(if records.iter().any(|r| r.broken) { 2 } else { 1 })
}

/// `output` must not exist and must lie outside `input`; its parent
/// directory (where the scratch directory goes, so the final rename stays
/// on one filesystem).
fn check_output<'a>(input: &Path, output: &'a Path) -> Result<&'a Path> {
    anyhow::ensure!(
        std::fs::symlink_metadata(output).is_err(),
        "{}: already exists; crtest convert writes a new directory",
        output.display()
    );
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (inside, outside) = (std::fs::canonicalize(input)?, std::fs::canonicalize(parent)?);
    anyhow::ensure!(
        !outside.starts_with(&inside),
        "{}: expected a directory outside the input {} (it would be converted into itself)",
        output.display(),
        input.display()
    );
    Ok(parent)
}

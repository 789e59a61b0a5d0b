//! Commands on finished runs: `merge`, `compare`, `export`, `report` and `show`.

use super::known_if_available;
use super::select::load_plan;
use crate::cli::Select;
use crate::prepare::Project;
use crate::report::{html, load::Doc, show, story};
use crate::tools::compare::{self, Allow, CompareError};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Merges the shards in `dirs` (which must cover the plan of `matrix`) into
/// `out`; the exit status is the merged run's.
pub fn merge(project: &Project, dirs: &[PathBuf], out: &Path, matrix: &Path, w: &mut dyn Write) -> Result<i32> {
    let select = Select { matrix: matrix.to_path_buf(), ..Select::default() };
    let (matrix, plan) = load_plan(project, &select, None)?;
    let expected: Vec<String> = plan.cells.iter().map(|c| c.id.clone()).collect();
    let docs = dirs.iter().map(|d| crate::tools::merge::load_dir(d)).collect::<Result<Vec<_>, _>>()?;
    let merged = crate::tools::merge::merge(&docs, Some((&expected, &matrix.path.display().to_string())))?;
    let cells: Vec<crate::result::CellResult> = serde_json::from_value(merged["cells"].clone())?;
    let (table, body) = crate::report::grid::parts(&cells, &matrix.kernels, &project.known);
    let staging = crate::report::output::Staging::new(out)?;
    staging.write("grid.txt", format!("{table}\n{body}").as_bytes())?;
    staging.write("junit.xml", &crate::report::junit::render(&cells))?;
    let mut json = serde_json::to_vec_pretty(&merged)?;
    json.push(b'\n');
    staging.write("report.html", merged_report(&json, dirs, out, &project.known)?.as_bytes())?;
    staging.write("results.json", &json)?;
    staging.commit(&["junit.xml", "results.json"])?;
    // With the merged run's properties (the shards' cell artifacts are not copied).
    crate::report::junit::rewrite(out)?;
    let summary = crate::report::Summary::of(&cells);
    writeln!(w, "{body}\n{table}\nmerged {} shards: {summary}; results in {}", dirs.len(), out.display())?;
    Ok(summary.exit_code())
}

/// The merged run's report.html: each cell's artifacts stay in its shard's
/// directory, linked relative to OUT.
fn merged_report(json: &[u8], dirs: &[PathBuf], out: &Path, known: &crate::verdict::known::Known) -> Result<String> {
    let doc = Doc::parse(json)?;
    let out_abs = std::path::absolute(out)?;
    let mut roots = html::Roots::single(out);
    for dir in dirs {
        let shard = Doc::load(dir)?;
        let href = html::relative_href(&out_abs, &std::path::absolute(dir)?);
        for c in shard.cells {
            roots.by_cell.insert(c.cell.id, story::Root { disk: dir, href: href.clone() });
        }
    }
    Ok(html::render(&doc, &roots, Some(known)))
}

/// Compares two runs: exit 1 on a regression `allow` does not accept.
pub fn compare(baseline: &Path, new: &Path, allow: Allow, junit: Option<&Path>, out: &mut dyn Write) -> Result<i32> {
    let (base_path, base) = compare::load(baseline)?;
    let (new_path, new) = compare::load(new)?;
    // One file compared with itself always passes: that is a mistake.
    if std::fs::canonicalize(&base_path)? == std::fs::canonicalize(&new_path)? {
        return Err(CompareError::SameFile(base_path, new_path).into());
    }
    let cmp = compare::compare(&base, &new);
    if let Some(file) = junit {
        crate::report::junit::write_readable(file, cmp.junit(allow).as_bytes())
            .with_context(|| format!("--junit {}", file.display()))?;
    }
    writeln!(out, "{}", cmp.render())?;
    Ok(if cmp.regressed(allow) { 1 } else { 0 })
}

/// The run in `dir` as KCIDB JSON, into `file` (atomically) or `out`.
pub fn export_kcidb(dir: &Path, file: Option<&Path>, out: &mut dyn Write) -> Result<i32> {
    let (results, doc) = compare::load(dir)?;
    let raw = std::fs::read(&results).with_context(|| format!("reading {}", results.display()))?;
    let kcidb = crate::report::kcidb::export(&doc, &raw, results.parent())?;
    let mut text = serde_json::to_vec_pretty(&kcidb)?;
    text.push(b'\n');
    match file {
        Some(path) => crate::report::junit::write_readable(path, &text)?,
        None => {
            write!(out, "{}", String::from_utf8_lossy(&text))?;
            out.flush()?;
        }
    }
    Ok(0)
}

/// Re-renders `dir`/report.html.
pub fn report(dir: &Path, out: &mut dyn Write) -> Result<i32> {
    let known = known_if_available();
    let started = std::time::Instant::now();
    let page = html::rewrite(dir, known.as_ref())?;
    writeln!(
        out,
        "wrote {} ({} KiB in {:.2}s)",
        dir.join("report.html").display(),
        page.len() / 1024,
        started.elapsed().as_secs_f64()
    )?;
    Ok(0)
}

/// One cell's story from the run in `dir`; `terminal` says whether `out`
/// is one (for `--color auto`).
pub fn show(id: &str, dir: &Path, color: show::ColorChoice, terminal: bool, out: &mut dyn Write) -> Result<i32> {
    let doc = Doc::load(dir)?;
    let Some(cell) = doc.cell(id) else {
        let close = show::suggestions(doc.cells.iter().map(|c| c.cell.id.as_str()), id);
        let hint = if close.is_empty() { String::new() } else { format!("; did you mean {}?", close.join(", ")) };
        bail!("no cell `{id}` in {}{hint}", dir.join("results.json").display());
    };
    let known = known_if_available();
    let root = story::Root { disk: dir, href: String::new() };
    let story = story::Story::of(cell, &root, known.as_ref(), story::Depth::Full);
    let colour = color.enabled(terminal, std::env::var_os("NO_COLOR").as_deref());
    write!(out, "{}", show::render(&story, dir, colour))?;
    out.flush()?;
    Ok(0)
}

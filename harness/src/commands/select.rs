//! From `--matrix`, the filters and `--engine` to the matrix and plan a
//! command works on; shared by run, plan, merge, cell and bisect.

use crate::cli::Select;
use crate::config::matrix::Matrix;
use crate::engine::LocalEngineError;
use crate::plan::{Filters, Plan};
use crate::prepare::Project;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::Path;

/// What an engine argument may be, for messages.
pub const ENGINE_RULE: &str = "expected host, an id of kernels/engines.yaml or the path of a criu binary (with a `/`)";

/// The matrix and plan of `select`; `engine` (an id) replaces every
/// kernel's engine (`crtest run --engine`).
pub fn load_plan(project: &Project, select: &Select, engine: Option<&str>) -> Result<(Matrix, Plan)> {
    // A relative matrix not found here is the project's (CRTEST_ROOT's).
    let path = if select.matrix.is_relative() && !select.matrix.exists() {
        project.root.join(&select.matrix)
    } else {
        select.matrix.clone()
    };
    let mut matrix = Matrix::load(&path, &project.catalog, &project.library, &project.formats)?;
    if let Some(e) = engine {
        anyhow::ensure!(project.formats.knows_engine(e), "--engine {e}: unknown engine; {ENGINE_RULE}");
        matrix.engines.values_mut().for_each(|k| *k = e.to_string());
    }
    check_select(&matrix, &path, select)?;
    let filters = Filters {
        kernels: select.kernels.clone(),
        workloads: select.workloads.clone(),
        partition: select.partition,
        run_known_gaps: select.run_known_gaps,
        tests: select.tests.clone(),
        excludes: select.excludes.clone(),
        srcs: select.srcs.clone(),
        dsts: select.dsts.clone(),
        ids: select.rerun_failed.as_deref().map(failed_cells).transpose()?,
    };
    let plan = Plan::new(&matrix, &project.catalog, &matrix.library, &filters);
    // A partition of a small matrix may be empty; a filter that selects nothing is a mistake.
    anyhow::ensure!(
        !plan.cells.is_empty() || select.partition.is_some(),
        "the selection (--kernel, --workload, --test, --exclude, --src, --dst, --rerun-failed) has no cell of {}",
        path.display()
    );
    Ok((matrix, plan))
}

/// Every kernel, workload and kind `select` names is one of the matrix at `path`.
fn check_select(matrix: &Matrix, path: &Path, select: &Select) -> Result<()> {
    for k in &select.kernels {
        anyhow::ensure!(
            matrix.kernels.contains(k),
            "--kernel {k}: not a kernel of {} (it has {})",
            path.display(),
            matrix.kernels.join(", ")
        );
    }
    for w in &select.workloads {
        anyhow::ensure!(matrix.workloads.contains(w), "--workload {w}: not a workload of {}", path.display());
    }
    for (flag, kinds) in [("--src", &select.srcs), ("--dst", &select.dsts)] {
        if let Some(k) = kinds.iter().find(|k| !matrix.kernels.iter().any(|m| m == crate::plan::kernel_of(k))) {
            bail!("{flag} {k}: not a kind of {} (its kernels are {})", path.display(), matrix.kernels.join(", "));
        }
    }
    Ok(())
}

/// Ids of the cells that were FAIL, ERROR or CONTROL-FAIL in `dir`'s
/// results (`--rerun-failed`); a run where nothing failed is an error, as
/// rerunning nothing is surely a mistake.
pub fn failed_cells(dir: &Path) -> Result<BTreeSet<String>> {
    let (file, doc) = crate::tools::compare::load(dir).with_context(|| format!("--rerun-failed {}", dir.display()))?;
    let cells = doc["cells"].as_array().map(Vec::as_slice).unwrap_or_default();
    let failed: BTreeSet<String> = cells
        .iter()
        .filter(|c| matches!(c["status"].as_str(), Some("FAIL" | "ERROR" | "CONTROL-FAIL")))
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    anyhow::ensure!(!failed.is_empty(), "--rerun-failed {}: no cell failed there", file.display());
    Ok(failed)
}

/// The engine id of an engine argument: an id as it is; a path (with a
/// `/`) becomes an engine of the project, named by its content.
pub fn engine_id(project: &mut Project, engine: Option<&str>) -> Result<Option<String>, LocalEngineError> {
    match engine {
        Some(e) if crate::engine::is_path(e) => project.add_engine_path(Path::new(e)).map(Some),
        other => Ok(other.map(str::to_string)),
    }
}

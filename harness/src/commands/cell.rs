//! `crtest cell`: one cell for `git bisect run`, whose exit status says
//! PASS (0), FAIL (1), cannot be judged (125) or a usage error (2).

use super::select::{engine_id, ENGINE_RULE};
use super::Out;
use crate::cli::CellArgs;
use crate::config::matrix::{EnginePair, Matrix};
use crate::config::mode::Mode;
use crate::engine::LocalEngineError;
use crate::plan::{Filters, Plan};
use crate::prepare::Project;
use crate::report::progress::Progress;
use crate::session;
use crate::verdict::Status;
use anyhow::{bail, Result};
use std::ops::ControlFlow;

/// `git bisect run`'s "this revision cannot be tested".
const SKIP: i32 = 125;

/// Runs the single cell `workload/src->dst` once (with `engine` on both
/// sides, else the host's); its status, id and reason.
pub fn one_cell(
    project: &Project,
    workload: &str,
    (src, dst): (&str, &str),
    (engine, restore_engine): (Option<&str>, Option<&str>),
    mode: Mode,
    opts: &session::Options,
) -> Result<(Status, String, String)> {
    anyhow::ensure!(
        project.library.get(workload).is_some(),
        "unknown workload `{workload}`: see `crtest workloads list`"
    );
    let mut matrix =
        Matrix::for_pairs(&project.library, &project.formats, workload, vec![(src.to_string(), dst.to_string())]);
    if let Some(e) = engine {
        matrix.engines = [src, dst].iter().map(|k| (k.to_string(), e.to_string())).collect();
    }
    if let Some(r) = restore_engine.filter(|r| *r != engine.unwrap_or(crate::engine::HOST)) {
        anyhow::ensure!(project.formats.knows_engine(r), "unknown engine `{r}`: see kernels/engines.yaml");
        matrix.pairs.clear();
        matrix.engine_pairs.push(EnginePair {
            src: src.to_string(),
            dst: dst.to_string(),
            dump_engine: engine.unwrap_or(crate::engine::HOST).to_string(),
            restore_engine: r.to_string(),
        });
    }
    matrix.modes = vec![mode];
    let plan = Plan::new(&matrix, &project.catalog, &project.library, &Filters::default());
    let done = session::execute(project, &matrix, &plan, opts, &Progress::new(false))?;
    // The plan may hold the cell's control too (its source kind's diagonal).
    let c =
        done.cells.iter().find(|c| !c.cell.control_only).ok_or_else(|| anyhow::anyhow!("the run produced no cell"))?;
    Ok((c.status, c.cell.id.clone(), c.reason.clone().unwrap_or_default()))
}

/// Mistakes in `crtest cell`'s own arguments: exit 2 (an error), never 125,
/// which would make `git bisect run` skip every revision instead of stopping.
pub fn check_cell_usage(project: &Project, args: &CellArgs) -> Result<()> {
    anyhow::ensure!(
        project.library.get(&args.workload).is_some(),
        "--workload {}: unknown workload; see `crtest workloads list`",
        args.workload
    );
    for (flag, engine) in [("--engine", &args.engine), ("--restore-engine", &args.restore_engine)] {
        // A path is checked when it is used (a missing binary is a skipped revision).
        if let Some(e) = engine.as_deref().filter(|e| !crate::engine::is_path(e) && !project.formats.knows_engine(e)) {
            bail!("{flag} {e}: unknown engine; {ENGINE_RULE}");
        }
    }
    Ok(crate::report::output::check_out(&args.out)?)
}

/// The engine ids of `--engine` and `--restore-engine`, or the exit status
/// that ends the command when one of them cannot be used.
fn engine_ids(project: &mut Project, args: &CellArgs, out: &mut Out) -> Result<ControlFlow<i32, [Option<String>; 2]>> {
    let mut ids = [None, None];
    for (slot, (flag, engine)) in
        ids.iter_mut().zip([("--engine", &args.engine), ("--restore-engine", &args.restore_engine)])
    {
        match engine_id(project, engine.as_deref()) {
            Ok(id) => *slot = id,
            // `git bisect run`: a build that produced no binary cannot be judged.
            Err(e @ LocalEngineError::Missing(_)) => {
                writeln!(out.stderr, "crtest cell: cannot test this revision: {flag} {e}")?;
                return Ok(ControlFlow::Break(SKIP));
            }
            // A CRIU that cannot even say its version is the system under test failing.
            Err(e @ LocalEngineError::Broken(..)) => {
                let label = crate::plan::label(&args.workload, args.mode);
                let id = crate::plan::cell_id(&label, &args.src_kernel, &args.dst_kernel);
                writeln!(out.stdout, "{} {id}: {flag} {e}", Status::Fail)?;
                return Ok(ControlFlow::Break(1));
            }
            Err(e @ LocalEngineError::Invalid(..)) => bail!("{flag} {e}"),
        }
    }
    Ok(ControlFlow::Continue(ids))
}

/// `crtest cell`: runs the cell and prints its verdict line.
pub fn cell(mut project: Project, args: CellArgs, out: &mut Out) -> Result<i32> {
    check_cell_usage(&project, &args)?;
    let [engine, restore_engine] = match engine_ids(&mut project, &args, out)? {
        ControlFlow::Continue(ids) => ids,
        ControlFlow::Break(code) => return Ok(code),
    };
    let mut resolve = |k: &str| project.catalog.resolve(k, args.modules.as_deref());
    let (src, dst) = match (resolve(&args.src_kernel), resolve(&args.dst_kernel)) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => {
            // A revision whose kernel is missing cannot be judged: skip it.
            writeln!(out.stderr, "crtest cell: cannot test this revision: {e}")?;
            return Ok(SKIP);
        }
    };
    let opts = session::Options {
        jobs: 2,
        out: args.out,
        accel: args.accel,
        seed: args.seed,
        iters: 1,
        resume: !args.no_resume,
    };
    let engines = (engine.as_deref(), restore_engine.as_deref());
    let (status, id, reason) = match one_cell(&project, &args.workload, (&src, &dst), engines, args.mode, &opts) {
        Ok(r) => r,
        Err(e) => {
            writeln!(out.stderr, "crtest cell: cannot test this revision: {e:#}")?;
            return Ok(SKIP);
        }
    };
    writeln!(out.stdout, "{status} {id}{}", if reason.is_empty() { String::new() } else { format!(": {reason}") })?;
    Ok(match status {
        Status::Pass => 0,
        Status::Fail => 1,
        // A cell whose control failed too says nothing about this revision.
        Status::Error | Status::Skip | Status::ControlFail => SKIP,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::{project, Captured};

    fn args(workload: &str, engine: Option<&str>, out: &std::path::Path) -> CellArgs {
        CellArgs {
            src_kernel: "6.1".into(),
            dst_kernel: "6.12".into(),
            workload: workload.into(),
            modules: None,
            engine: engine.map(str::to_string),
            restore_engine: None,
            out: out.to_path_buf(),
            accel: None,
            seed: None,
            mode: Default::default(),
            no_resume: false,
        }
    }

    #[test]
    fn usage_mistakes_are_errors_not_skips() {
        let (dir, project) = project();
        let out = dir.path().join("cell-out");
        let e = check_cell_usage(&project, &args("nope", None, &out)).unwrap_err();
        assert_eq!(e.to_string(), "--workload nope: unknown workload; see `crtest workloads list`");
        let e = check_cell_usage(&project, &args("counter", Some("criu-9"), &out)).unwrap_err();
        assert_eq!(e.to_string(), format!("--engine criu-9: unknown engine; {ENGINE_RULE}"));
        check_cell_usage(&project, &args("counter", Some("criu-4.2"), &out)).unwrap();
    }

    #[test]
    fn a_revision_without_a_criu_binary_is_skipped() {
        let (dir, project) = project();
        let criu = dir.path().join("build/criu");
        let mut captured = Captured::default();
        let code = cell(project, args("counter", criu.to_str(), &dir.path().join("o")), &mut captured.out()).unwrap();
        assert_eq!(code, SKIP);
        assert_eq!(captured.text(), "");
        let err = String::from_utf8(captured.stderr).unwrap();
        assert!(err.starts_with("crtest cell: cannot test this revision: --engine "), "{err}");
        assert!(err.contains("build/criu"), "{err}");
    }
}

//! `crtest run`: a matrix of cells, progress on stderr, the grid at the end.

use super::select::{engine_id, load_plan};
use super::Out;
use crate::cli::RunArgs;
use crate::prepare::Project;
use crate::report::progress::Progress;
use crate::session;
use anyhow::{Context, Result};

/// Runs the selected cells; the exit status is the summary's (0, 1 or 2),
/// or 130 when interrupted.
pub fn run(mut project: Project, args: RunArgs, out: &mut Out) -> Result<i32> {
    let engine = engine_id(&mut project, args.engine.as_deref()).context("--engine")?;
    let (matrix, plan) = load_plan(&project, &args.select, engine.as_deref())?;
    let progress = Progress::new(args.verbose);
    let opts = session::Options {
        jobs: args.jobs,
        out: args.out.clone(),
        accel: args.accel,
        seed: args.seed,
        iters: args.iters,
        resume: !args.no_resume,
    };
    let done = session::execute(&project, &matrix, &plan, &opts, &progress)?;
    if crate::vm::reaper::interrupted() {
        writeln!(
            out.stderr,
            "crtest: interrupted: the {} cells judged before it are in {}",
            done.cells.len(),
            args.out.display()
        )?;
        return Ok(crate::vm::reaper::EXIT_INTERRUPTED);
    }
    writeln!(
        out.stdout,
        "\n{}\n{} in {:.1}s; results in {} (open report.html there, or `crtest show CELL`)",
        done.grid,
        done.summary,
        done.wall_secs,
        args.out.display()
    )?;
    Ok(done.summary.exit_code())
}

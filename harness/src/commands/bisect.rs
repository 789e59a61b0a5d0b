//! `crtest bisect`: the probe loop that runs cells along an axis (kernels,
//! engines or the steps of a conversion chain) for [`crate::tools::bisect`].

use crate::cli::{Axis, BisectArgs, Side};
use crate::commands::cell::one_cell;
use crate::commands::select::engine_id;
use crate::commands::Out;
use crate::prepare::Project;
use crate::session;
use crate::tools::bisect::{self, Probe};
use crate::verdict::Status;
use anyhow::{bail, Context, Result};
use std::ops::ControlFlow;

/// Bisects the axis of `args`: exit 0 with the boundary found, 2 when the
/// bisection could not find one (its reason on stderr).
pub fn run(mut project: Project, args: BisectArgs, out: &mut Out) -> Result<i32> {
    let engine = engine_id(&mut project, args.engine.as_deref()).context("--engine")?;
    if args.axis == Axis::Chain {
        let restore = engine_id(&mut project, args.restore_engine.as_deref()).context("--restore-engine")?;
        return bisect_chain(&project, &args, (engine, restore), out);
    }
    anyhow::ensure!(args.restore_engine.is_none(), "--restore-engine is for --axis chain");
    let (Some(good), Some(bad)) = (args.good.as_deref(), args.bad.as_deref()) else {
        bail!("--axis kernel and --axis engine need --good and --bad");
    };
    // Kernel axis: the catalog's order, the cell moves. Engine axis: the
    // engines catalog's order (oldest first), on the kernel(s) of --fixed.
    let axis: Vec<String> = match args.axis {
        Axis::Kernel => project.catalog.kernels.iter().map(|k| k.id.clone()).collect(),
        Axis::Engine | Axis::Chain => {
            crate::engine::load_catalog(&project.root.join("kernels/engines.yaml"))?.into_iter().map(|e| e.id).collect()
        }
    };
    let on_engines = args.axis == Axis::Engine;
    if on_engines && args.fixed.is_none() {
        bail!("--axis engine needs --fixed KERNEL (the kernel both sides run)");
    }
    let pair = |k: &str| pair_at(&args, on_engines, k);
    pair(good)?;
    let mut probe = |k: &str| -> Probe {
        let Ok((src, dst)) = pair(k) else { return Probe::Skip("bad --side".into()) };
        let engine = if on_engines { Some(k) } else { engine.as_deref() };
        probe_cell(&project, &args, k, (&src, &dst), (engine, None))
    };
    let found = match search(&axis, (good, bad), &mut probe, out)? {
        ControlFlow::Continue(found) => found,
        ControlFlow::Break(code) => return Ok(code),
    };
    writeln!(
        out.stdout,
        "first bad: {}\n  evidence: {}\nlast good: {}",
        found.first_bad, found.evidence, found.last_good
    )?;
    if !found.skipped.is_empty() {
        writeln!(out.stdout, "untestable in between: {}", found.skipped.join(", "))?;
    }
    Ok(0)
}

/// The cell's (src, dst) kernels at point `k` of a kernel or engine axis.
fn pair_at(args: &BisectArgs, on_engines: bool, k: &str) -> Result<(String, String)> {
    if on_engines {
        let fixed = args.fixed.clone().unwrap_or_default();
        return Ok((fixed.clone(), fixed));
    }
    let fixed = || args.fixed.clone().ok_or_else(|| anyhow::anyhow!("--side src/dst needs --fixed KERNEL"));
    Ok(match args.side {
        Side::Both => (k.to_string(), k.to_string()),
        Side::Src => (k.to_string(), fixed()?),
        Side::Dst => (fixed()?, k.to_string()),
    })
}

/// Runs the bisection, each step logged on stdout; a bisection that ends
/// without a boundary is reported on stderr and becomes exit status 2.
fn search(
    axis: &[String],
    (good, bad): (&str, &str),
    probe: &mut dyn FnMut(&str) -> Probe,
    out: &mut Out,
) -> Result<ControlFlow<i32, bisect::Found>> {
    // The log cannot fail the bisection midway: its first write error ends it after.
    let mut failed = None;
    let mut log = |line: &str| {
        if let Err(e) = writeln!(out.stdout, "bisect: {line}") {
            failed.get_or_insert(e);
        }
    };
    let result = bisect::bisect(axis, good, bad, probe, &mut log);
    if let Some(e) = failed {
        return Err(e.into());
    }
    match result {
        Ok(found) => Ok(ControlFlow::Continue(found)),
        Err(e) => {
            writeln!(out.stderr, "crtest bisect: {e}")?;
            Ok(ControlFlow::Break(2))
        }
    }
}

/// Runs the probe's cell `--repeat` times: any FAIL is bad, all PASS is
/// good, anything else (ERROR, SKIP, CONTROL-FAIL) cannot decide.
fn probe_cell(
    project: &Project,
    args: &BisectArgs,
    point: &str,
    (src, dst): (&str, &str),
    engines: (Option<&str>, Option<&str>),
) -> Probe {
    let mut skip = None;
    for run in 1..=args.repeat.max(1) {
        let out = args.out.join(format!("{point}-{run}"));
        let opts =
            session::Options { jobs: 2, out, accel: args.accel, seed: Some(u64::from(run)), iters: 1, resume: true };
        match one_cell(project, &args.workload, (src, dst), engines, crate::config::mode::Mode::Dump, &opts) {
            Ok((Status::Fail, id, why)) => return Probe::Bad(format!("{id}: {why}")),
            Ok((Status::Pass, ..)) => {}
            Ok((status, _, why)) => skip = Some(format!("{status}: {why}")),
            Err(e) => skip = Some(format!("{e:#}")),
        }
    }
    skip.map_or(Probe::Good, Probe::Skip)
}

/// `crtest bisect --axis chain`: which step of the chain --from -> --to
/// first gives images that no longer restore. Each point is a prefix of the
/// chain: the cell W/K -> K dumps with the engine of --from and restores
/// with the engine of the prefix's last format (the plan runs the prefix's
/// steps); a format no engine writes is skipped.
fn bisect_chain(
    project: &Project,
    args: &BisectArgs,
    (engine, restore): (Option<String>, Option<String>),
    out: &mut Out,
) -> Result<i32> {
    let fixed = args.fixed.as_deref().context("--axis chain needs --fixed KERNEL (the kernel both sides run)")?;
    let formats = &project.formats;
    let format_of = |e: &Option<String>| e.as_deref().and_then(|e| formats.of_engine(e));
    let from =
        args.from.clone().or_else(|| format_of(&engine)).context("--axis chain needs --from FORMAT or --engine")?;
    let to = args
        .to
        .clone()
        .or_else(|| format_of(&restore))
        .context("--axis chain needs --to FORMAT or --restore-engine")?;
    let (axis, steps) = bisect::chain_axis(formats, &from, &to).map_err(anyhow::Error::msg)?;
    // The engines given stand for their ends of the chain; other formats get theirs.
    let engine_at = |f: &str| match (f == from, f == to) {
        (true, _) if engine.is_some() => engine.clone(),
        (_, true) if restore.is_some() => restore.clone(),
        _ => bisect::engine_for_format(formats, &project.engines, f),
    };
    let dump = engine_at(&from).with_context(|| format!("no engine writes format {from}: it cannot be dumped"))?;
    let mut probe = |f: &str| match engine_at(f) {
        None => Probe::Skip(format!("no engine reads format {f} (kernels/engines.yaml)")),
        Some(r) => probe_cell(project, args, f, (fixed, fixed), (Some(&dump), Some(&r))),
    };
    let (good, bad) = (args.good.as_deref().unwrap_or(&from), args.bad.as_deref().unwrap_or(&to));
    let found = match search(&axis, (good, bad), &mut probe, out)? {
        ControlFlow::Continue(found) => found,
        ControlFlow::Break(code) => return Ok(code),
    };
    let at = |f: &str| axis.iter().position(|a| a == f).unwrap_or(0);
    let (first, last) = (at(&found.first_bad), at(&found.last_good));
    writeln!(out.stdout, "first bad step: {}", bisect::step_label(&steps, first))?;
    writeln!(out.stdout, "  evidence: {}", found.evidence)?;
    match last {
        0 => writeln!(out.stdout, "last good: {} (the dump restored as it is)", found.last_good)?,
        n => writeln!(out.stdout, "last good: {} (after {})", found.last_good, bisect::step_label(&steps, n))?,
    }
    if !found.skipped.is_empty() {
        // Any step after the last good one may be the first bad.
        writeln!(out.stdout, "untestable in between: {} (no verdict there)", found.skipped.join(", "))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::Captured;

    fn axis() -> Vec<String> {
        ["5.10", "6.1", "6.12", "6.16"].map(String::from).to_vec()
    }

    /// 5.10 and 6.1 pass, later kernels fail.
    fn probe(k: &str) -> Probe {
        if k < "6.12" {
            Probe::Good
        } else {
            Probe::Bad(format!("counter/{k}->{k}: restore failed"))
        }
    }

    #[test]
    fn search_logs_each_probe_on_stdout() {
        let mut captured = Captured::default();
        let found = search(&axis(), ("5.10", "6.16"), &mut probe, &mut captured.out()).unwrap();
        let ControlFlow::Continue(found) = found else { panic!("no boundary") };
        assert_eq!((found.first_bad.as_str(), found.last_good.as_str()), ("6.12", "6.1"));
        let text = captured.text();
        assert!(text.lines().all(|l| l.starts_with("bisect: ")), "{text}");
        assert!(text.contains("bisect: 6.12: bad"), "{text}");
        assert!(captured.stderr.is_empty());
    }

    #[test]
    fn search_without_a_boundary_ends_with_status_2() {
        let mut captured = Captured::default();
        let end = search(&axis(), ("6.16", "5.10"), &mut probe, &mut captured.out()).unwrap();
        assert_eq!(end, ControlFlow::Break(2));
        let err = String::from_utf8(captured.stderr).unwrap();
        assert_eq!(err, "crtest bisect: the good version 6.16 must come before the bad version 5.10 on the axis\n");
    }
}

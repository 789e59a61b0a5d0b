//! The `crtest` command: thin wiring from arguments to the library.

use anyhow::{bail, Context, Result};
use clap::Parser;
use crtest::cli::{
    Axis, BisectArgs, CacheCommand, CellArgs, Cli, Command, ExportFormat, KernelsCommand, PlanFormat, RunArgs, Select,
    Side, WorkloadsCommand,
};
use crtest::config::matrix::Matrix;
use crtest::engine::LocalEngineError;
use crtest::kernel::fetch;
use crtest::plan::{Filters, Plan};
use crtest::prepare::{self, Project};
use crtest::report::progress::Progress;
use crtest::session;
use crtest::tools::bisect::{self, Probe};
use crtest::util::fsutil;
use crtest::verdict::Status;
use std::path::PathBuf;

/// `println!` for stdout that ends the process quietly when the reader has
/// gone (`crtest plan | head`), instead of panicking on the broken pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*) {
            stdout_failed(e);
        }
    }};
}

/// `print!` counterpart of [`say!`].
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if let Err(e) = write!(out, $($arg)*).and_then(|_| out.flush()) {
            stdout_failed(e);
        }
    }};
}

/// A reader that went away ends crtest quietly; any other write error is reported.
fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        crtest::vm::reaper::kill_all();
        std::process::exit(0);
    }
    eprintln!("crtest: error: writing to stdout: {e}");
    std::process::exit(2);
}

fn main() {
    // SIGPIPE stays ignored (Rust's default): a child tool that exits early
    // must give crtest an EPIPE to report, never kill it. Output piped into
    // `head` ends quietly through `say!` instead.
    let cli = Cli::parse();
    let code = match dispatch(cli.command) {
        Ok(code) => code,
        Err(_) if crtest::vm::reaper::interrupted() => crtest::vm::reaper::EXIT_INTERRUPTED,
        Err(e) => {
            eprintln!("crtest: error: {e:#}");
            2
        }
    };
    // An interrupted command ends 130 whatever it got to write (so `git bisect run` stops).
    std::process::exit(if crtest::vm::reaper::interrupted() { crtest::vm::reaper::EXIT_INTERRUPTED } else { code });
}

fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Run(args) => run(args),
        Command::Plan { select, format } => plan(select, format),
        Command::Kernels { command: KernelsCommand::List } => kernels_list(),
        Command::Kernels { command: KernelsCommand::Fetch { ids } } => kernels_fetch(ids),
        Command::Workloads { command: WorkloadsCommand::List } => workloads_list(),
        Command::Cell(args) => cell(args),
        Command::Bench { kernel, workload, runs, accel, no_resume, vs_virtme } => {
            bench(&BenchArgs { kernel, workload, runs, accel, resume: !no_resume, vs_virtme })
        }
        Command::Merge { dirs, out, matrix } => merge(&dirs, &out, &matrix),
        Command::Formats { formats } => formats_list(formats.as_deref()),
        Command::Convert { from, to, formats, input, output } => {
            convert(&from, &to, formats.as_deref(), &input, &output)
        }
        Command::Compare { baseline, new, allow_removed, allow_skip, allow_control_fail, junit } => {
            let allow = crtest::tools::compare::Allow {
                removed: allow_removed,
                skip: allow_skip,
                control_fail: allow_control_fail,
            };
            compare(&baseline, &new, allow, junit.as_deref())
        }
        Command::Bisect(args) => bisect_cmd(args),
        Command::Cache { command } => cache(command.unwrap_or(CacheCommand::Show)),
        Command::Export { format: ExportFormat::Kcidb, out, dir } => export_kcidb(&dir, out.as_deref()),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "crtest", &mut out);
            say_raw!("{}", String::from_utf8_lossy(&out));
            Ok(0)
        }
        Command::Report { dir } => report_cmd(&dir),
        Command::Show { cell, out, color } => show(&cell, &out, color),
    }
}

/// The matrix and plan of `select`; `engine` (an id) replaces every
/// kernel's engine (`crtest run --engine`).
fn load_plan(project: &Project, select: &Select, engine: Option<&str>) -> Result<(Matrix, Plan)> {
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
        if let Some(k) = kinds.iter().find(|k| !matrix.kernels.iter().any(|m| m == crtest::plan::kernel_of(k))) {
            bail!("{flag} {k}: not a kind of {} (its kernels are {})", path.display(), matrix.kernels.join(", "));
        }
    }
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

/// Ids of the cells that were FAIL, ERROR or CONTROL-FAIL in `dir`'s
/// results (`--rerun-failed`); a run where nothing failed is an error, as
/// rerunning nothing is surely a mistake.
fn failed_cells(dir: &std::path::Path) -> Result<std::collections::BTreeSet<String>> {
    let (file, doc) = crtest::tools::compare::load(dir).with_context(|| format!("--rerun-failed {}", dir.display()))?;
    let cells = doc["cells"].as_array().map(Vec::as_slice).unwrap_or_default();
    let failed: std::collections::BTreeSet<String> = cells
        .iter()
        .filter(|c| matches!(c["status"].as_str(), Some("FAIL" | "ERROR" | "CONTROL-FAIL")))
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    anyhow::ensure!(!failed.is_empty(), "--rerun-failed {}: no cell failed there", file.display());
    Ok(failed)
}

fn run(args: RunArgs) -> Result<i32> {
    let mut project = Project::load()?;
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
    if crtest::vm::reaper::interrupted() {
        eprintln!("crtest: interrupted: the {} cells judged before it are in {}", done.cells.len(), args.out.display());
        return Ok(crtest::vm::reaper::EXIT_INTERRUPTED);
    }
    say!(
        "\n{}\n{} in {:.1}s; results in {} (open report.html there, or `crtest show CELL`)",
        done.grid,
        done.summary,
        done.wall_secs,
        args.out.display()
    );
    Ok(done.summary.exit_code())
}

/// Runs the single cell `workload/src->dst` once (with `engine` on both
/// sides, else the host's); its status and reason.
fn one_cell(
    project: &Project,
    workload: &str,
    (src, dst): (&str, &str),
    (engine, restore_engine): (Option<&str>, Option<&str>),
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
    if let Some(r) = restore_engine.filter(|r| *r != engine.unwrap_or(crtest::engine::HOST)) {
        anyhow::ensure!(project.formats.knows_engine(r), "unknown engine `{r}`: see kernels/engines.yaml");
        matrix.pairs.clear();
        matrix.engine_pairs.push(crtest::config::matrix::EnginePair {
            src: src.to_string(),
            dst: dst.to_string(),
            dump_engine: engine.unwrap_or(crtest::engine::HOST).to_string(),
            restore_engine: r.to_string(),
        });
    }
    let plan = Plan::new(&matrix, &project.catalog, &project.library, &Filters::default());
    let done = session::execute(project, &matrix, &plan, opts, &Progress::new(false))?;
    // The plan may hold the cell's control too (its source kind's diagonal).
    let c =
        done.cells.iter().find(|c| !c.cell.control_only).ok_or_else(|| anyhow::anyhow!("the run produced no cell"))?;
    Ok((c.status, c.cell.id.clone(), c.reason.clone().unwrap_or_default()))
}

/// What an engine argument may be, for messages.
const ENGINE_RULE: &str = "expected host, an id of kernels/engines.yaml or the path of a criu binary (with a `/`)";

/// The engine id of an engine argument: an id as it is; a path (with a
/// `/`) becomes an engine of the project, named by its content.
fn engine_id(project: &mut Project, engine: Option<&str>) -> Result<Option<String>, LocalEngineError> {
    match engine {
        Some(e) if crtest::engine::is_path(e) => project.add_engine_path(std::path::Path::new(e)).map(Some),
        other => Ok(other.map(str::to_string)),
    }
}

/// Mistakes in `crtest cell`'s own arguments: exit 2 (an error), never 125,
/// which would make `git bisect run` skip every revision instead of stopping.
fn check_cell_usage(project: &Project, args: &CellArgs) -> Result<()> {
    anyhow::ensure!(
        project.library.get(&args.workload).is_some(),
        "--workload {}: unknown workload; see `crtest workloads list`",
        args.workload
    );
    for (flag, engine) in [("--engine", &args.engine), ("--restore-engine", &args.restore_engine)] {
        // A path is checked when it is used (a missing binary is a skipped revision).
        if let Some(e) = engine.as_deref().filter(|e| !crtest::engine::is_path(e) && !project.formats.knows_engine(e)) {
            bail!("{flag} {e}: unknown engine; {ENGINE_RULE}");
        }
    }
    crtest::report::output::check_out(&args.out)
}

fn cell(args: CellArgs) -> Result<i32> {
    const SKIP: i32 = 125;
    let mut project = Project::load()?;
    check_cell_usage(&project, &args)?;
    let mut ids = Vec::new();
    for (flag, engine) in [("--engine", &args.engine), ("--restore-engine", &args.restore_engine)] {
        match engine_id(&mut project, engine.as_deref()) {
            Ok(id) => ids.push(id),
            // `git bisect run`: a build that produced no binary cannot be judged.
            Err(e @ LocalEngineError::Missing(_)) => {
                eprintln!("crtest cell: cannot test this revision: {flag} {e}");
                return Ok(SKIP);
            }
            // A CRIU that cannot even say its version is the system under test failing.
            Err(e @ LocalEngineError::Broken(..)) => {
                let id = crtest::plan::cell_id(&args.workload, &args.src_kernel, &args.dst_kernel);
                say!("{} {id}: {flag} {e}", Status::Fail);
                return Ok(1);
            }
            Err(e @ LocalEngineError::Invalid(..)) => bail!("{flag} {e}"),
        }
    }
    let args = CellArgs { restore_engine: ids.pop().flatten(), engine: ids.pop().flatten(), ..args };
    let mut resolve = |k: &str| project.catalog.resolve(k, args.modules.as_deref());
    let (src, dst) = match (resolve(&args.src_kernel), resolve(&args.dst_kernel)) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => {
            // A revision whose kernel is missing cannot be judged: skip it.
            eprintln!("crtest cell: cannot test this revision: {e}");
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
    let (status, id, reason) = match one_cell(
        &project,
        &args.workload,
        (&src, &dst),
        (args.engine.as_deref(), args.restore_engine.as_deref()),
        &opts,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("crtest cell: cannot test this revision: {e:#}");
            return Ok(SKIP);
        }
    };
    say!("{status} {id}{}", if reason.is_empty() { String::new() } else { format!(": {reason}") });
    Ok(match status {
        Status::Pass => 0,
        Status::Fail => 1,
        // A cell whose control failed too says nothing about this revision.
        Status::Error | Status::Skip | Status::ControlFail => SKIP,
    })
}

fn bisect_cmd(args: BisectArgs) -> Result<i32> {
    let mut project = Project::load()?;
    let engine = engine_id(&mut project, args.engine.as_deref()).context("--engine")?;
    if args.axis == Axis::Chain {
        let restore = engine_id(&mut project, args.restore_engine.as_deref()).context("--restore-engine")?;
        return bisect_chain(&project, &args, engine, restore);
    }
    anyhow::ensure!(args.restore_engine.is_none(), "--restore-engine is for --axis chain");
    let (Some(good), Some(bad)) = (args.good.as_deref(), args.bad.as_deref()) else {
        bail!("--axis kernel and --axis engine need --good and --bad");
    };
    // Kernel axis: the catalog's order, the cell moves. Engine axis: the
    // engines catalog's order (oldest first), on the kernel(s) of --fixed.
    let axis: Vec<String> = match args.axis {
        Axis::Kernel => project.catalog.kernels.iter().map(|k| k.id.clone()).collect(),
        Axis::Engine | Axis::Chain => crtest::engine::load_catalog(&project.root.join("kernels/engines.yaml"))?
            .into_iter()
            .map(|e| e.id)
            .collect(),
    };
    let on_engines = args.axis == Axis::Engine;
    if on_engines && args.fixed.is_none() {
        bail!("--axis engine needs --fixed KERNEL (the kernel both sides run)");
    }
    let pair = |k: &str| -> Result<(String, String)> {
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
    };
    pair(good)?;
    let mut probe = |k: &str| -> Probe {
        let Ok((src, dst)) = pair(k) else { return Probe::Skip("bad --side".into()) };
        let engine = if on_engines { Some(k) } else { engine.as_deref() };
        probe_cell(&project, &args, k, (&src, &dst), (engine, None))
    };
    let mut log = |line: &str| say!("bisect: {line}");
    match bisect::bisect(&axis, good, bad, &mut probe, &mut log) {
        Ok(found) => {
            say!("first bad: {}\n  evidence: {}\nlast good: {}", found.first_bad, found.evidence, found.last_good);
            if !found.skipped.is_empty() {
                say!("untestable in between: {}", found.skipped.join(", "));
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("crtest bisect: {e}");
            Ok(2)
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
        match one_cell(project, &args.workload, (src, dst), engines, &opts) {
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
fn bisect_chain(project: &Project, args: &BisectArgs, engine: Option<String>, restore: Option<String>) -> Result<i32> {
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
    let mut log = |line: &str| say!("bisect: {line}");
    let (good, bad) = (args.good.as_deref().unwrap_or(&from), args.bad.as_deref().unwrap_or(&to));
    match bisect::bisect(&axis, good, bad, &mut probe, &mut log) {
        Ok(found) => {
            let at = |f: &str| axis.iter().position(|a| a == f).unwrap_or(0);
            let (first, last) = (at(&found.first_bad), at(&found.last_good));
            say!("first bad step: {}", bisect::step_label(&steps, first));
            say!("  evidence: {}", found.evidence);
            match last {
                0 => say!("last good: {} (the dump restored as it is)", found.last_good),
                n => say!("last good: {} (after {})", found.last_good, bisect::step_label(&steps, n)),
            }
            if !found.skipped.is_empty() {
                // Any step after the last good one may be the first bad.
                say!("untestable in between: {} (no verdict there)", found.skipped.join(", "));
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("crtest bisect: {e}");
            Ok(2)
        }
    }
}

struct BenchArgs {
    kernel: String,
    workload: String,
    runs: u32,
    accel: Option<crtest::config::matrix::AccelChoice>,
    resume: bool,
    vs_virtme: bool,
}

fn bench(args: &BenchArgs) -> Result<i32> {
    use crtest::tools::bench::{line, ratio};
    let BenchArgs { kernel, workload, runs, .. } = args;
    let (kernel, runs) = (kernel.as_str(), *runs);
    let project = Project::load()?;
    anyhow::ensure!(project.catalog.get(kernel).is_some(), "unknown kernel `{kernel}`");
    let matrix =
        Matrix::for_pairs(&project.library, &project.formats, workload, vec![(kernel.to_string(), kernel.to_string())]);
    let plan = Plan::new(&matrix, &project.catalog, &project.library, &Filters::default());
    let quiet = Progress::new(false);
    let ready = session::prepare(&project, &matrix, &plan, args.accel, &quiet)?;
    let (k, image, engine, accel) =
        (&ready.kernels[kernel], &ready.images[kernel], &ready.engines[kernel], ready.accel);
    let cfg = session::vm_config(&matrix, accel);
    let cache = fsutil::cache_dir();
    say!(
        "crtest bench: kernel {kernel} ({}), {}, accel {accel:?}, {} MiB guests, {runs} runs each",
        k.release,
        engine.id,
        cfg.memory_mb
    );
    say!("{:<28} {:>8} {:>8} {:>8}", "", "min", "median", "max");
    let bz = crtest::tools::bench::boot_times(k, &k.vmlinuz, image, &cfg, runs)?;
    say!("{}", line("boot to ready (bzImage)", &bz));
    let pvh_image = crtest::kernel::pvh::vmlinux(&k.vmlinuz)?;
    let pvh = match &pvh_image {
        Some(p) => crtest::tools::bench::boot_times(k, p, image, &cfg, runs)?,
        None => vec![],
    };
    say!("{}", line("boot to ready (PVH)", &pvh));
    let resumed = match args.resume {
        true => {
            let store = crtest::vm::vmstate::Store::in_cache(&cache);
            let boot_image = pvh_image.as_deref().unwrap_or(&k.vmlinuz);
            crtest::tools::bench::resume_times(k, boot_image, image, &cfg, &store, runs)?
        }
        false => vec![],
    };
    if args.resume {
        say!("{}", line("ready (resumed)", &resumed));
    }
    let virtme = match args.vs_virtme {
        true => crtest::tools::bench::virtme_times(k, &cache, runs)?,
        false => vec![],
    };
    if args.vs_virtme {
        say!("{}", line("virtme-ng run (wall)", &virtme));
    }
    let (mut dump, mut restore, mut finish, mut cell) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let out = tempfile::tempdir()?;
        let opts = session::Options {
            jobs: 1,
            out: out.path().to_path_buf(),
            accel: Some(crtest::config::matrix::AccelChoice::Force(accel)),
            seed: Some(u64::from(run)),
            iters: 1,
            resume: args.resume,
        };
        let done = session::execute(&project, &matrix, &plan, &opts, &quiet)?;
        let c = done.cells.first().ok_or_else(|| anyhow::anyhow!("no cell"))?;
        anyhow::ensure!(c.status == Status::Pass, "bench cell did not pass: {:?}", c.reason);
        let secs = |s: crtest::verdict::Stage| c.stages.iter().find(|r| r.stage == s).map_or(f64::NAN, |r| r.secs);
        dump.push(secs(crtest::verdict::Stage::Dump));
        restore.push(secs(crtest::verdict::Stage::Restore));
        finish.push(secs(crtest::verdict::Stage::Finish));
        cell.push(done.wall_secs);
    }
    say!("{}", line("dump (wait + criu dump)", &dump));
    say!("{}", line("restore (criu restore)", &restore));
    say!("{}", line("finish (run to the end)", &finish));
    say!("{}", line(&format!("whole cell {workload} {kernel}->{kernel}"), &cell));
    say!("{}", ratio("PVH / bzImage boot", &pvh, &bz));
    if args.resume {
        say!("{}", ratio("resumed / PVH boot", &resumed, &pvh));
    }
    if args.vs_virtme {
        say!("{}", ratio("PVH boot / virtme-ng", &pvh, &virtme));
        if args.resume {
            say!("{}", ratio("resumed / virtme-ng", &resumed, &virtme));
        }
    }
    Ok(0)
}

fn merge(dirs: &[PathBuf], out: &std::path::Path, matrix: &std::path::Path) -> Result<i32> {
    let project = Project::load()?;
    let select = Select { matrix: matrix.to_path_buf(), ..Select::default() };
    let (matrix, plan) = load_plan(&project, &select, None)?;
    let expected: Vec<String> = plan.cells.iter().map(|c| c.id.clone()).collect();
    let docs = dirs.iter().map(|d| crtest::tools::merge::load_dir(d)).collect::<Result<Vec<_>>>()?;
    let merged = crtest::tools::merge::merge(&docs, Some((&expected, &matrix.path.display().to_string())))?;
    let cells: Vec<crtest::result::CellResult> = serde_json::from_value(merged["cells"].clone())?;
    let (table, body) = crtest::report::grid::parts(&cells, &matrix.kernels, &project.known);
    let staging = crtest::report::output::Staging::new(out)?;
    staging.write("grid.txt", format!("{table}\n{body}").as_bytes())?;
    staging.write("junit.xml", &crtest::report::junit::render(&cells)?)?;
    let mut json = serde_json::to_vec_pretty(&merged)?;
    json.push(b'\n');
    staging.write("report.html", merged_report(&json, dirs, out, &project.known)?.as_bytes())?;
    staging.write("results.json", &json)?;
    staging.commit(&["junit.xml", "results.json"])?;
    // With the merged run's properties (the shards' cell artifacts are not copied).
    crtest::report::junit::rewrite(out)?;
    let summary = crtest::report::Summary::of(&cells);
    say!("{body}\n{table}\nmerged {} shards: {summary}; results in {}", dirs.len(), out.display());
    Ok(summary.exit_code())
}

fn compare(
    baseline: &std::path::Path,
    new: &std::path::Path,
    allow: crtest::tools::compare::Allow,
    junit: Option<&std::path::Path>,
) -> Result<i32> {
    use crtest::tools::compare::{self, CompareError};
    let (base_path, base) = compare::load(baseline)?;
    let (new_path, new) = compare::load(new)?;
    // One file compared with itself always passes: that is a mistake.
    if std::fs::canonicalize(&base_path)? == std::fs::canonicalize(&new_path)? {
        return Err(CompareError::SameFile(base_path, new_path).into());
    }
    let cmp = compare::compare(&base, &new);
    if let Some(file) = junit {
        crtest::report::junit::write_readable(file, cmp.junit(allow).as_bytes())
            .with_context(|| format!("--junit {}", file.display()))?;
    }
    say!("{}", cmp.render());
    Ok(if cmp.regressed(allow) { 1 } else { 0 })
}

fn cache(command: CacheCommand) -> Result<i32> {
    use crtest::tools::cache;
    let dir = fsutil::cache_dir();
    match command {
        CacheCommand::Show => say!("{}", cache::render(&dir, &cache::scan(&dir)?).trim_end()),
        CacheCommand::Clean { older_than, kinds } => {
            let older_than = older_than.map(|d| std::time::Duration::from_secs(d.saturating_mul(86400)));
            let removed = cache::clean(&dir, &cache::Clean { older_than, kinds }, std::time::SystemTime::now())?;
            for e in &removed {
                say!("removed {} ({})", e.path.display(), cache::human(e.bytes));
            }
            let freed: u64 = removed.iter().map(|e| e.bytes).sum();
            say!("removed {} entries, {} freed", removed.len(), cache::human(freed));
        }
    }
    Ok(0)
}

fn export_kcidb(dir: &std::path::Path, out: Option<&std::path::Path>) -> Result<i32> {
    let (file, doc) = crtest::tools::compare::load(dir)?;
    let raw = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let kcidb = crtest::report::kcidb::export(&doc, &raw, file.parent())?;
    let mut text = serde_json::to_vec_pretty(&kcidb)?;
    text.push(b'\n');
    match out {
        Some(path) => crtest::report::junit::write_readable(path, &text)?,
        None => say_raw!("{}", String::from_utf8_lossy(&text)),
    }
    Ok(0)
}

fn plan(select: Select, format: PlanFormat) -> Result<i32> {
    let project = Project::load()?;
    let (_matrix, plan) = load_plan(&project, &select, None)?;
    match format {
        PlanFormat::Json => say!("{}", serde_json::to_string_pretty(&plan)?),
        PlanFormat::Text => {
            for c in &plan.cells {
                let chain: Vec<String> =
                    c.chain().iter().map(|s| format!("{} -> {} ({})", s.from, s.to, s.using.name())).collect();
                let via = if chain.is_empty() { String::new() } else { format!("  via {}", chain.join(", ")) };
                let role = match (&c.control, c.control_only) {
                    (_, true) => "  (control only)".to_string(),
                    (Some(ctl), _) => format!("  control {ctl}"),
                    (None, _) => String::new(),
                };
                let skip = c.skip.as_ref().map(|s| format!("  SKIP: {s}")).unwrap_or_default();
                say!("{}{via}{role}{skip}", c.id);
            }
            let runnable = plan.runnable().count();
            let sources: std::collections::BTreeSet<String> = plan.dumps().into_iter().map(|(_, k)| k).collect();
            let targets: std::collections::BTreeSet<String> = plan.runnable().map(|c| c.dst_kind()).collect();
            say!(
                "{} cells ({runnable} runnable, {} added as controls): {} source guests (references and dumps), \
{} target guests (restores; never the dumping guest), {} reference runs, {} dumps, {runnable} restores",
                plan.cells.len(),
                plan.cells.iter().filter(|c| c.control_only).count(),
                sources.len(),
                targets.len(),
                plan.dumps().len(),
                plan.dumps().len(),
            );
        }
    }
    Ok(0)
}

fn kernels_list() -> Result<i32> {
    let project = Project::load()?;
    let cache = fsutil::cache_dir();
    say!("{:<10} {:<8} {:<28} SOURCE", "ID", "VERSION", "CACHED RELEASE");
    for spec in &project.catalog.kernels {
        let cached = fetch::cached(&cache, spec).map(|k| k.release).unwrap_or_else(|| "(not cached)".into());
        let source = match &spec.source {
            crtest::kernel::Source::Debian { suite, packages } => format!("debian {suite}: {}", packages.join(" ")),
            crtest::kernel::Source::Local(l) => format!("local {}", l.bzimage.display()),
        };
        say!("{:<10} {:<8} {:<28} {source}", spec.id, spec.version.to_string(), cached);
    }
    Ok(0)
}

fn kernels_fetch(ids: Vec<String>) -> Result<i32> {
    let project = Project::load()?;
    let ids = if ids.is_empty() { project.catalog.kernels.iter().map(|k| k.id.clone()).collect() } else { ids };
    let progress = Progress::new(true);
    let kernels = prepare::kernels(&project, &ids, &fsutil::cache_dir(), &progress)?;
    for (id, k) in kernels {
        say!("{id}: {} ({})", k.release, k.vmlinuz.display());
    }
    Ok(0)
}

/// The project's formats, or those of `file`.
fn load_formats(project: &Project, file: Option<&std::path::Path>) -> Result<crtest::config::formats::Formats> {
    Ok(match file {
        None => project.formats.clone(),
        Some(f) => project.formats.reload(f)?,
    })
}

fn formats_list(file: Option<&std::path::Path>) -> Result<i32> {
    let project = Project::load()?;
    let formats = load_formats(&project, file)?;
    say!("formats (oldest first) from {}:", formats.path.display());
    for v in &formats.versions {
        let engines: Vec<&str> =
            formats.engine_formats.iter().filter(|(_, f)| *f == v).map(|(e, _)| e.as_str()).collect();
        say!("  {v:<12} written by {}", if engines.is_empty() { "-".into() } else { engines.join(", ") });
    }
    if let Some(host) = formats.of_engine(crtest::engine::HOST) {
        say!("  (the host's criu writes {host})");
    }
    say!("converters:");
    for s in &formats.steps {
        say!("  {:<12} -> {:<12} {}", s.from, s.to, s.using.name());
    }
    for pair in formats.versions.windows(2) {
        for (a, b) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])] {
            if !formats.steps.iter().any(|s| &s.from == a && &s.to == b) {
                say!("  {a:<12} -> {b:<12} (none: cells needing this step are skipped)");
            }
        }
    }
    Ok(0)
}

/// Runs the chain `from` -> `to` over `input` into `output` by hand.
fn convert(
    from: &str,
    to: &str,
    file: Option<&std::path::Path>,
    input: &std::path::Path,
    output: &std::path::Path,
) -> Result<i32> {
    use crtest::convert;
    let project = Project::load()?;
    let formats = load_formats(&project, file)?;
    convert::check_input_dir(input)?;
    anyhow::ensure!(
        std::fs::symlink_metadata(output).is_err(),
        "{}: already exists; crtest convert writes a new directory",
        output.display()
    );
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let (inside, outside) = (std::fs::canonicalize(input)?, std::fs::canonicalize(parent)?);
    anyhow::ensure!(
        !outside.starts_with(&inside),
        "{}: expected a directory outside the input {} (it would be converted into itself)",
        output.display(),
        input.display()
    );
    let specs = formats.chain(from, to).map_err(anyhow::Error::msg)?;
    let log = |m: &str| eprintln!("note: {m}");
    let needed = specs.iter().flat_map(|s| [s.from.clone(), s.to.clone()]);
    let crits = crtest::convert::crit::for_formats(needed, &project.engines, &crtest::util::fsutil::cache_dir(), &log)?;
    let steps = convert::steps(&specs, (from, to), Box::new(convert::Identity), &crits)?;
    // Ctrl-C or SIGTERM kills the converter and removes the scratch dir.
    crtest::vm::reaper::install();
    let scratch = tempfile::Builder::new().prefix(".crtest-convert-").tempdir_in(parent)?;
    crtest::vm::reaper::scratch(scratch.path());
    let records = convert::run_chain(&steps, input, scratch.path(), &scratch.path().join("out"));
    for (i, r) in records.iter().enumerate() {
        say!("{}", r.summary(i + 1, steps.len()));
        for line in r.note.iter().chain(r.message.iter()) {
            say!("    {line}");
        }
    }
    if records.len() == steps.len() && records.iter().all(|r| r.ok) {
        std::fs::rename(scratch.path().join("out"), output)
            .with_context(|| format!("moving the converted images to {}", output.display()))?;
        crtest::vm::reaper::unscratch(scratch.path());
        say!("converted {} ({from}) into {} ({to})", input.display(), output.display());
        return Ok(0);
    }
    Ok(if records.iter().any(|r| r.broken) { 2 } else { 1 })
}

fn workloads_list() -> Result<i32> {
    let project = Project::load()?;
    for w in &project.library.workloads {
        say!("{:<16} {}", w.name, w.summary);
        say!("{:<16} exercises: {}", "", w.exercises.join(", "));
        let mut needs = Vec::new();
        if let Some(k) = &w.min_kernel {
            needs.push(format!("kernel >= {k}"));
        }
        needs.extend(w.features.iter().map(|f| format!("criu feature {f}")));
        needs.extend(w.dump_opts.iter().map(|o| format!("dump {o}")));
        needs.extend(w.restore_opts.iter().map(|o| format!("restore {o}")));
        for g in &w.known_gaps {
            say!("{:<16} known gap of {}: {}", "", g.formats.join(", "), g.reason);
        }
        if !needs.is_empty() {
            say!("{:<16} needs: {}", "", needs.join(", "));
        }
    }
    say!("{} workloads", project.library.workloads.len());
    Ok(0)
}

/// The merged run's report.html: each cell's artifacts stay in its shard's
/// directory, linked relative to OUT.
fn merged_report(
    json: &[u8],
    dirs: &[PathBuf],
    out: &std::path::Path,
    known: &crtest::verdict::known::Known,
) -> Result<String> {
    use crtest::report::{html, load::Doc, story::Root};
    let doc = Doc::parse(json)?;
    let out_abs = std::path::absolute(out)?;
    let mut roots = html::Roots::single(out);
    for dir in dirs {
        let shard = Doc::load(dir)?;
        let href = html::relative_href(&out_abs, &std::path::absolute(dir)?);
        for c in shard.cells {
            roots.by_cell.insert(c.cell.id, Root { disk: dir, href: href.clone() });
        }
    }
    Ok(html::render(&doc, &roots, Some(known)))
}

/// The catalog of known incompatibilities when the project is at hand.
fn known_if_available() -> Option<crtest::verdict::known::Known> {
    crtest::verdict::known::Known::load(&prepare::project_root().join(crtest::verdict::known::FILE)).ok()
}

fn report_cmd(dir: &std::path::Path) -> Result<i32> {
    let known = known_if_available();
    let started = std::time::Instant::now();
    let page = crtest::report::html::rewrite(dir, known.as_ref())?;
    say!(
        "wrote {} ({} KiB in {:.2}s)",
        dir.join("report.html").display(),
        page.len() / 1024,
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}

fn show(id: &str, out: &std::path::Path, color: crtest::report::show::ColorChoice) -> Result<i32> {
    use crtest::report::{load::Doc, show, story};
    use std::io::IsTerminal;
    let doc = Doc::load(out)?;
    let Some(cell) = doc.cell(id) else {
        let close = show::suggestions(doc.cells.iter().map(|c| c.cell.id.as_str()), id);
        let hint = if close.is_empty() { String::new() } else { format!("; did you mean {}?", close.join(", ")) };
        bail!("no cell `{id}` in {}{hint}", out.join("results.json").display());
    };
    let known = known_if_available();
    let root = story::Root { disk: out, href: String::new() };
    let story = story::Story::of(cell, &root, known.as_ref(), story::Depth::Full);
    let colour = color.enabled(std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    say_raw!("{}", show::render(&story, out, colour));
    Ok(0)
}

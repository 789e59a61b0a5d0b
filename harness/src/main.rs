//! The `crtest` command: thin wiring from arguments to the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use crtest::engine::Engine;
use crtest::kernel::fetch;
use crtest::matrix::{AccelChoice, Matrix};
use crtest::plan::{Filters, Plan};
use crtest::prepare::{self, Project};
use crtest::report::{self, output::Staging, progress::Progress, Summary};
use crtest::runner::{self, Setup};
use crtest::vm::VmConfig;
use crtest::{convert, fsutil};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "crtest", version, about = "Checkpoint/restart compatibility across Linux kernels, in QEMU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a matrix of cells (workload x source kernel x target kernel).
    Run(RunArgs),
    /// Show the cells a matrix expands to.
    Plan {
        #[command(flatten)]
        select: Select,
        /// text or json
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// The kernel catalog.
    Kernels {
        #[command(subcommand)]
        command: KernelsCommand,
    },
    /// The workload library.
    Workloads {
        #[command(subcommand)]
        command: WorkloadsCommand,
    },
}

#[derive(clap::Args)]
struct Select {
    /// Matrix file.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_value = "matrix.yaml", default_missing_value = "matrix.yaml")]
    matrix: PathBuf,
    /// Only cells whose source and target are among these kernels (repeatable).
    #[arg(long = "kernel", value_name = "ID")]
    kernels: Vec<String>,
    /// Only these workloads (repeatable).
    #[arg(long = "workload", value_name = "NAME")]
    workloads: Vec<String>,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    select: Select,
    /// VMs running at once.
    #[arg(short = 'j', long, default_value_t = default_jobs())]
    jobs: usize,
    /// Output directory for results.json, junit.xml and artifacts.
    #[arg(long, default_value = "crtest-out")]
    out: PathBuf,
    /// auto (KVM only if a probe boot works), kvm or tcg; overrides the matrix.
    #[arg(long)]
    accel: Option<AccelChoice>,
    /// Print every guest operation.
    #[arg(short, long)]
    verbose: bool,
    /// Seed that moves each dump point (default: a new one per run, printed
    /// and recorded in results.json so a run can be repeated exactly).
    #[arg(long)]
    seed: Option<u64>,
    /// Dump/restore rounds per cell: after the cross-kernel restore, dump and
    /// restore again in place N-1 times, a few steps apart (like zdtm --iters).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    iters: u32,
}

#[derive(Subcommand)]
enum KernelsCommand {
    /// Id, release and whether each catalog kernel is cached.
    List,
    /// Download and extract kernels (all, or the ids given); no-op when cached.
    Fetch { ids: Vec<String> },
}

#[derive(Subcommand)]
enum WorkloadsCommand {
    /// Each workload with what it exercises and what it needs.
    List,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(2)
}

fn main() {
    let cli = Cli::parse();
    let code = match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crtest: error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Run(args) => run(args),
        Command::Plan { select, format } => plan(select, &format),
        Command::Kernels { command: KernelsCommand::List } => kernels_list(),
        Command::Kernels { command: KernelsCommand::Fetch { ids } } => kernels_fetch(ids),
        Command::Workloads { command: WorkloadsCommand::List } => workloads_list(),
    }
}

fn load_plan(project: &Project, select: &Select) -> Result<(Matrix, Plan)> {
    let path = if select.matrix.is_relative() && !select.matrix.exists() {
        project.root.join(&select.matrix)
    } else {
        select.matrix.clone()
    };
    let matrix = Matrix::load(&path, &project.catalog, &project.library)?;
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
    let filters = Filters { kernels: select.kernels.clone(), workloads: select.workloads.clone() };
    let plan = Plan::new(&matrix, &project.catalog, &matrix.library, &filters);
    Ok((matrix, plan))
}

fn run(args: RunArgs) -> Result<i32> {
    let started = Instant::now();
    crtest::reaper::install();
    let project = Project::load()?;
    let (matrix, plan) = load_plan(&project, &args.select)?;
    let progress = Progress::new(args.verbose);
    let cache = fsutil::cache_dir();
    let kernel_ids: Vec<String> = plan.kernels().into_iter().collect();
    let kernels = prepare::kernels(&project, &kernel_ids, &cache, &progress)?;
    let engine = Engine::host_criu()?;
    let images = prepare::images(&matrix.library, &plan, &kernels, &engine, &cache, &progress)?;
    let probe = kernel_ids.first().map(|k| (&kernels[k], &images[k]));
    let accel = prepare::accel(args.accel.unwrap_or(matrix.accel), probe, &cache, &progress);
    let setup = Setup {
        library: matrix.library.clone(),
        engine_id: engine.id.clone(),
        kernels,
        images,
        vm: VmConfig {
            accel,
            memory_mb: matrix.memory_mb,
            cpu: matrix.cpu.clone(),
            boot_timeout: matrix.timeouts.boot,
        },
        timeouts: matrix.timeouts.clone(),
        step_ms: matrix.step_ms,
        converter: match &matrix.converter {
            None => Box::new(convert::Identity),
            Some(command) => Box::new(convert::External { command: command.clone() }),
        },
        seed: args.seed.unwrap_or_else(fresh_seed),
        iters: args.iters,
    };
    eprintln!(
        "crtest: {} cells ({} runnable) on kernels {} with {}, {} VMs at once, accel {:?}, seed {}, iters {}",
        plan.cells.len(),
        plan.runnable().count(),
        kernel_ids.join(", "),
        engine.id,
        args.jobs,
        accel,
        setup.seed,
        setup.iters
    );
    let staging = Staging::new(&args.out)?;
    let work = tempfile::Builder::new().prefix("crtest-run-").tempdir().context("creating the run's scratch dir")?;
    crtest::reaper::scratch(work.path());
    let out = runner::run(&plan, &setup, args.jobs, work.path(), &staging.dir, &progress)?;
    if std::env::var_os("CRTEST_KEEP_WORK").is_some() {
        eprintln!("crtest: keeping the run's scratch dir {}", work.keep().display());
    }

    let summary = Summary::of(&out.cells);
    let vm_info = report::json::vm_info(&out.vms);
    for vm in &out.vms {
        staging.write(&format!("vms/{}.console.log", vm.kernel), vm.console.as_bytes())?;
    }
    let kernels_info = setup
        .kernels
        .iter()
        .map(|(id, k)| {
            let (boot_secs, console) = vm_info.get(id).cloned().map(|(b, c)| (b, Some(c))).unwrap_or((None, None));
            (
                id.clone(),
                report::json::KernelInfo {
                    release: k.release.clone(),
                    packages: k.packages.clone(),
                    boot_secs,
                    console,
                },
            )
        })
        .collect();
    let results = report::json::Results {
        schema: report::json::SCHEMA,
        crtest_version: env!("CARGO_PKG_VERSION"),
        matrix: matrix.path.display().to_string(),
        accel,
        engine: engine.id.clone(),
        seed: setup.seed,
        iters: setup.iters,
        kernels: kernels_info,
        wall_secs: started.elapsed().as_secs_f64(),
        summary,
        cells: &out.cells,
    };
    let shown: Vec<String> =
        matrix.kernels.iter().filter(|k| plan.cells.iter().any(|c| &c.src == *k || &c.dst == *k)).cloned().collect();
    let grid = report::grid::render(&out.cells, &shown);
    staging.write("grid.txt", grid.as_bytes())?;
    staging.write("junit.xml", &report::junit::render(&out.cells)?)?;
    staging.write("results.json", &report::json::render(&results)?)?;
    staging.commit(&["junit.xml", "results.json"])?;
    println!("\n{grid}\n{summary} in {:.1}s; results in {}", started.elapsed().as_secs_f64(), args.out.display());
    Ok(summary.exit_code())
}

/// A seed for runs that were given none.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

fn plan(select: Select, format: &str) -> Result<i32> {
    let project = Project::load()?;
    let (_, plan) = load_plan(&project, &select)?;
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&plan)?),
        "text" => {
            for c in &plan.cells {
                println!("{}{}", c.id, c.skip.as_ref().map(|s| format!("  SKIP: {s}")).unwrap_or_default());
            }
            println!("{} cells, {} dumps, {} kernels", plan.cells.len(), plan.dumps().len(), plan.kernels().len());
        }
        other => anyhow::bail!("--format expects text or json, got `{other}`"),
    }
    Ok(0)
}

fn kernels_list() -> Result<i32> {
    let project = Project::load()?;
    let cache = fsutil::cache_dir();
    println!("{:<10} {:<8} {:<28} SOURCE", "ID", "VERSION", "CACHED RELEASE");
    for spec in &project.catalog.kernels {
        let cached = fetch::cached(&cache, spec).map(|k| k.release).unwrap_or_else(|| "(not cached)".into());
        let source = match &spec.source {
            crtest::kernel::Source::Debian { suite, packages } => format!("debian {suite}: {}", packages.join(" ")),
            crtest::kernel::Source::Local(l) => format!("local {}", l.bzimage.display()),
        };
        println!("{:<10} {:<8} {:<28} {source}", spec.id, spec.version.to_string(), cached);
    }
    Ok(0)
}

fn kernels_fetch(ids: Vec<String>) -> Result<i32> {
    let project = Project::load()?;
    let ids = if ids.is_empty() { project.catalog.kernels.iter().map(|k| k.id.clone()).collect() } else { ids };
    let progress = Progress::new(true);
    let kernels = prepare::kernels(&project, &ids, &fsutil::cache_dir(), &progress)?;
    for (id, k) in kernels {
        println!("{id}: {} ({})", k.release, k.vmlinuz.display());
    }
    Ok(0)
}

fn workloads_list() -> Result<i32> {
    let project = Project::load()?;
    for w in &project.library.workloads {
        println!("{:<16} {}", w.name, w.summary);
        println!("{:<16} exercises: {}", "", w.exercises.join(", "));
        let mut needs = Vec::new();
        if let Some(k) = &w.min_kernel {
            needs.push(format!("kernel >= {k}"));
        }
        needs.extend(w.features.iter().map(|f| format!("criu feature {f}")));
        needs.extend(w.dump_opts.iter().map(|o| format!("dump {o}")));
        needs.extend(w.restore_opts.iter().map(|o| format!("restore {o}")));
        if !needs.is_empty() {
            println!("{:<16} needs: {}", "", needs.join(", "));
        }
    }
    println!("{} workloads", project.library.workloads.len());
    Ok(0)
}

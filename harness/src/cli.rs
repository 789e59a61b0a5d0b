//! The command line: argument types only (handlers live in the binary), so
//! tests and pipeline examples can be checked against the real parser.

use crate::config::matrix::AccelChoice;
use crate::vm::qemu::Accel;
use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Shown after `crtest --help`: what the environment changes and what the
/// exit status means, so CI scripts need not read the source.
const AFTER_HELP: &str = "\
Environment:
  CRTEST_CACHE      cache directory (default $XDG_CACHE_HOME/crtest or ~/.cache/crtest)
  CRTEST_ROOT       project root with kernels/, workloads/, converters/ (default: the nearest
                    ancestor of the working directory with workloads/workloads.yaml)
  CRTEST_KEEP_WORK  keep a run's scratch directory and print where it is
  NO_COLOR          no colour in help and usage errors (crtest's own output has none)

Exit status (run, merge):
  0  every cell passed or skipped
  1  some cell FAILed
  2  only ERRORs or CONTROL-FAILs, or bad input
  130  interrupted (Ctrl-C or SIGTERM): no results written
crtest cell: 0 PASS, 1 FAIL, 125 cannot be judged (for git bisect run), 2 usage error.
crtest compare: 0 no regression, 1 regression, 2 a document is not crtest results.";

#[derive(Parser)]
#[command(
    name = "crtest",
    version,
    about = "Checkpoint/restart compatibility across Linux kernels, in QEMU",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a matrix of cells (workload x source kernel x target kernel).
    Run(RunArgs),
    /// Show the cells a matrix expands to.
    Plan {
        #[command(flatten)]
        select: Select,
        /// How to print the plan.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// The kernel catalog.
    Kernels {
        #[command(subcommand)]
        command: KernelsCommand,
    },
    /// What the cache holds, by kind and size; `clean` deletes by age or kind.
    Cache {
        #[command(subcommand)]
        command: Option<CacheCommand>,
    },
    /// Writes a run's results in another format (KCIDB I/O JSON for kernel CI dashboards).
    Export {
        /// The output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write here (atomically) instead of to stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The run's output directory (or its results.json).
        dir: PathBuf,
    },
    /// Prints a shell completion script for crtest.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// The workload library.
    Workloads {
        #[command(subcommand)]
        command: WorkloadsCommand,
    },
    /// Run one cell; exit 0 PASS, 1 FAIL, 125 when the kernel cannot be tested, 2 on a usage error (for `git bisect run`).
    Cell(CellArgs),
    /// Find the first kernel where a cell goes bad.
    Bisect(BisectArgs),
    /// Time boots (PVH and bzImage), dump, restore and whole cells: min/median/max.
    Bench {
        /// The catalog kernel to time.
        #[arg(long, default_value = "6.1")]
        kernel: String,
        /// The workload of the whole-cell timings.
        #[arg(long, default_value = "counter")]
        workload: String,
        /// Runs of each measurement (1..=100).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        /// auto (KVM only if a probe boot works), kvm or tcg.
        #[arg(long, value_enum)]
        accel: Option<AccelChoice>,
        /// Skip the resumed-guest timings, and run the whole cells on booted guests.
        #[arg(long)]
        no_resume: bool,
        /// Also time virtme-ng booting the same kernel (installed into the cache from PyPI if needed).
        #[arg(long)]
        vs_virtme: bool,
    },
    /// Lists image format versions, which engine speaks each, and the converters between them.
    Formats {
        /// Another formats file than converters/formats.yaml.
        #[arg(long, value_name = "FILE")]
        formats: Option<PathBuf>,
    },
    /// Converts an image directory along the chain of converters from one format to another.
    Convert {
        /// The format version of the input images (see `crtest formats`).
        #[arg(long, value_name = "FORMAT")]
        from: String,
        /// The format version to convert to.
        #[arg(long, value_name = "FORMAT")]
        to: String,
        /// Another formats file than converters/formats.yaml.
        #[arg(long, value_name = "FILE")]
        formats: Option<PathBuf>,
        /// The image directory to convert.
        input: PathBuf,
        /// Where the converted images go (must not exist; written atomically).
        output: PathBuf,
    },
    /// Combine the results of several partitions into one report.
    Merge {
        /// Output directories of the shards (each with results.json).
        dirs: Vec<PathBuf>,
        /// Where the merged results.json, junit.xml and grid.txt go.
        #[arg(long, default_value = "crtest-out")]
        out: PathBuf,
        /// The matrix the shards ran; every one of its cells must be present.
        #[arg(long, value_name = "FILE", default_value = "matrix.yaml")]
        matrix: PathBuf,
    },
    /// Re-render DIR/report.html (the page to see why cells failed) from DIR/results.json.
    Report {
        /// A run's output directory.
        dir: PathBuf,
    },
    /// One cell's story: status, reason, control, stages, chain, transcript diff, logs, artifacts.
    Show {
        /// The cell id, e.g. `counter/6.1->6.12`.
        cell: String,
        /// The run's output directory.
        #[arg(long, default_value = "crtest-out")]
        out: PathBuf,
        /// Colour: auto (when stdout is a terminal and NO_COLOR is unset), always or never.
        #[arg(long, value_enum, default_value_t)]
        color: crate::report::show::ColorChoice,
    },
    /// New failures, new CONTROL-FAILs, new skips, fixed cells, changed reasons, added and removed
    /// cells, and engine or kernel package changes between two runs; exit 1 on a regression (a new
    /// failure, CONTROL-FAIL or skip, or a removed cell), 2 on a bad document.
    Compare {
        /// Baseline results (an output dir or a results.json).
        baseline: PathBuf,
        /// New results (an output dir or a results.json).
        new: PathBuf,
        /// Accept cells of the baseline that NEW lacks (e.g. NEW ran a smaller matrix).
        #[arg(long)]
        allow_removed: bool,
        /// Accept cells that ran in the baseline and SKIP in NEW.
        #[arg(long)]
        allow_skip: bool,
        /// Accept cells that became CONTROL-FAIL (their control failed too: not the pair's fault).
        #[arg(long)]
        allow_control_fail: bool,
        /// Also write the regressions as a JUnit report (one testcase per regressed cell).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct CellArgs {
    /// Source kernel: a catalog id or the path of a bzImage.
    #[arg(long)]
    pub src_kernel: String,
    /// Target kernel: a catalog id or the path of a bzImage.
    #[arg(long)]
    pub dst_kernel: String,
    /// The workload (see `crtest workloads list`).
    #[arg(long)]
    pub workload: String,
    /// Modules tree (lib/modules/RELEASE) for bzImage kernels, if they need modules.
    #[arg(long)]
    pub modules: Option<PathBuf>,
    /// The engine on both sides: `host`, an id from kernels/engines.yaml, or
    /// the path of a criu binary (any value with a `/`, e.g. ./criu/criu).
    #[arg(long)]
    pub engine: Option<String>,
    /// Restore with this engine instead (images go through the chain of
    /// converters between the two engines' formats); an id or a path.
    #[arg(long)]
    pub restore_engine: Option<String>,
    /// Output directory for the cell's results and artifacts.
    #[arg(long, default_value = "crtest-cell")]
    pub out: PathBuf,
    /// auto (KVM only if a probe boot works), kvm or tcg.
    #[arg(long, value_enum)]
    pub accel: Option<AccelChoice>,
    /// Seed that moves the dump point (default: a new one, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Boot every guest from its kernel instead of resuming a saved guest state.
    #[arg(long)]
    pub no_resume: bool,
}

#[derive(clap::Args)]
pub struct BisectArgs {
    /// The ordered axis: `kernel` (the catalog's order), `engine`
    /// (kernels/engines.yaml's order, on the kernel given with --fixed) or
    /// `chain` (the steps of the conversion chain --from -> --to).
    #[arg(long, value_enum, default_value_t = Axis::Kernel)]
    pub axis: Axis,
    /// The engine of every probe: `host`, an id from kernels/engines.yaml, or
    /// the path of a criu binary (a value with a `/`).
    #[arg(long)]
    pub engine: Option<String>,
    /// With --axis chain: restore with this engine at the chain's last
    /// format (default: the engine of that format); an id or a path.
    #[arg(long)]
    pub restore_engine: Option<String>,
    /// A kernel (or engine) where the cell passes (with --axis chain: a
    /// format, default --from).
    #[arg(long)]
    pub good: Option<String>,
    /// A later kernel (or engine) where the cell fails (with --axis chain:
    /// a format, default --to).
    #[arg(long)]
    pub bad: Option<String>,
    /// With --axis chain: the format the images are dumped in (default:
    /// --engine's format).
    #[arg(long, value_name = "FORMAT")]
    pub from: Option<String>,
    /// With --axis chain: the last format of the chain (default:
    /// --restore-engine's format).
    #[arg(long, value_name = "FORMAT")]
    pub to: Option<String>,
    /// The workload of the cell.
    #[arg(long)]
    pub workload: String,
    /// Which side of the pair moves: both (K->K), src (K->FIXED) or dst (FIXED->K).
    #[arg(long, value_enum, default_value_t = Side::Both)]
    pub side: Side,
    /// The kernel on the side that does not move (with --side src or dst).
    #[arg(long)]
    pub fixed: Option<String>,
    /// Runs per probe: any FAIL is bad, all PASS is good (1..=20).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
    /// Output directory: one subdirectory per probe run.
    #[arg(long, default_value = "crtest-bisect")]
    pub out: PathBuf,
    /// auto (KVM only if a probe boot works), kvm or tcg.
    #[arg(long, value_enum)]
    pub accel: Option<AccelChoice>,
}

#[derive(clap::Args, Default)]
pub struct Select {
    /// Matrix file.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_value = "matrix.yaml", default_missing_value = "matrix.yaml")]
    pub matrix: PathBuf,
    /// Only cells whose source and target are among these kernels (repeatable).
    #[arg(long = "kernel", value_name = "ID")]
    pub kernels: Vec<String>,
    /// Only these workloads (repeatable).
    #[arg(long = "workload", value_name = "NAME")]
    pub workloads: Vec<String>,
    /// Only slice K of N (`K/N` or `hash:K/N`); a cell's slice depends only on its id.
    #[arg(long, value_name = "K/N")]
    pub partition: Option<crate::plan::partition::Partition>,
    /// Also run workloads on engines they declare a known gap of (SKIP otherwise).
    #[arg(long)]
    pub run_known_gaps: bool,
    /// Only cells whose id (`workload/src->dst`) matches this glob (`*`, `?`; repeatable).
    #[arg(short = 't', long = "test", value_name = "GLOB")]
    pub tests: Vec<String>,
    /// Leave out cells whose id matches this glob (repeatable; controls of kept cells stay).
    #[arg(short = 'x', long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Only cells whose source is this kind (`6.12`, or `6.12@criu-4.2`; repeatable).
    #[arg(long = "src", value_name = "KIND")]
    pub srcs: Vec<String>,
    /// Only cells whose target is this kind (repeatable).
    #[arg(long = "dst", value_name = "KIND")]
    pub dsts: Vec<String>,
    /// Only the cells that were FAIL, ERROR or CONTROL-FAIL in DIR/results.json.
    #[arg(long, value_name = "DIR")]
    pub rerun_failed: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub select: Select,
    /// VMs running at once (1..=64).
    #[arg(short = 'j', long, default_value_t = default_jobs(), value_parser = jobs_in_range)]
    pub jobs: usize,
    /// Output directory for results.json, junit.xml and artifacts.
    #[arg(long, default_value = "crtest-out")]
    pub out: PathBuf,
    /// auto (KVM only if a probe boot works), kvm or tcg; overrides the matrix.
    #[arg(long, value_enum)]
    pub accel: Option<AccelChoice>,
    /// Print every guest operation.
    #[arg(short, long)]
    pub verbose: bool,
    /// Seed that moves each dump point (default: a new one per run, printed
    /// and recorded in results.json so a run can be repeated exactly).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Dump/restore rounds per cell: after the cross-kernel restore, dump and
    /// restore again in place N-1 times, a few steps apart (like zdtm --iters).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub iters: u32,
    /// Boot every guest from its kernel instead of resuming a saved guest
    /// state (states live in the cache, one per kernel, image and VM setup).
    #[arg(long)]
    pub no_resume: bool,
    /// Every kernel's engine, replacing the matrix's `engine` and
    /// `kernel_engines`: `host`, an id from kernels/engines.yaml, or the
    /// path of a criu binary (a value with a `/`).
    #[arg(long, value_name = "ENGINE")]
    pub engine: Option<String>,
}

#[derive(Subcommand)]
pub enum KernelsCommand {
    /// Id, release and whether each catalog kernel is cached.
    List,
    /// Download and extract kernels (all, or the ids given); no-op when cached.
    Fetch {
        /// Catalog ids (default: every kernel of the catalog).
        ids: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Each kind's entries and size (the default).
    Show,
    /// Deletes cache entries by age or kind (at least one of the two); not while a run uses the cache.
    Clean {
        /// Only entries not modified for this many days.
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u64>,
        /// Only entries of this kind (repeatable).
        #[arg(long = "kind", value_enum, value_name = "KIND")]
        kinds: Vec<crate::tools::cache::Kind>,
    },
}

/// `crtest plan --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// One line per cell, then what the run will do.
    Text,
    /// The plan's cells as JSON.
    Json,
}

/// `crtest export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// KCIDB I/O JSON (schema 5.3), for kernel CI dashboards.
    Kcidb,
}

/// `crtest bisect --axis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Axis {
    /// The catalog's kernels, in order.
    Kernel,
    /// kernels/engines.yaml's engines, in order, on the kernel of --fixed.
    Engine,
    /// The steps of the conversion chain --from -> --to, on the kernel of --fixed.
    Chain,
}

/// `crtest bisect --side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Side {
    /// K -> K.
    Both,
    /// K -> FIXED.
    Src,
    /// FIXED -> K.
    Dst,
}

impl ValueEnum for AccelChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &[AccelChoice::Auto, AccelChoice::Force(Accel::Kvm), AccelChoice::Force(Accel::Tcg)]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            AccelChoice::Auto => PossibleValue::new("auto").help("KVM if a probe boot works, else TCG"),
            AccelChoice::Force(Accel::Kvm) => PossibleValue::new("kvm").help("KVM, or fail"),
            AccelChoice::Force(Accel::Tcg) => PossibleValue::new("tcg").help("emulation (TCG)"),
        })
    }
}

#[derive(Subcommand)]
pub enum WorkloadsCommand {
    /// Each workload with what it exercises and what it needs.
    List,
}

/// Most VMs at once: each is a QEMU and a thread; more would only thrash.
pub const MAX_JOBS: usize = 64;

fn jobs_in_range(text: &str) -> Result<usize, String> {
    let n: usize = text.parse().map_err(|e| format!("{e}"))?;
    if (1..=MAX_JOBS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("expected 1..={MAX_JOBS} VMs at once"))
    }
}

/// VMs at once by default: guests under TCG spend most of a cell waiting on
/// the workloads' sleeps, so two per core keep the cores busy (measured: the
/// 27-cell matrix took 39.5 s with 3 VMs, 49.9 s with 2, on 2 cores), as
/// far as memory allows about 2.5 GiB per 2 GiB guest.
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_kib: usize = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("MemAvailable:")?.trim().split(' ').next()?.parse().ok()))
        .unwrap_or(4 << 20);
    (2 * cores).min(mem_kib / (2560 << 10)).clamp(1, MAX_JOBS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag and argument of every subcommand has help text.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if !matches!(id, "help" | "version") && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&clap::Command::new("x").arg(clap::Arg::new("bare").long("bare")), "x", &mut missing);
        assert_eq!(missing, ["x bare"], "the check sees an argument without help");
        missing.clear();
        walk(&Cli::command(), "crtest", &mut missing);
        assert!(missing.is_empty(), "no help for: {missing:?}");
        Cli::command().debug_assert();
    }

    #[test]
    fn closed_sets_parse_as_value_enums() {
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("crtest").chain(args.iter().copied()));
        let Ok(Cli { command: Command::Run(r) }) =
            parse(&["run", "--accel", "kvm", "-t", "counter/*", "-x", "*->5.10"])
        else {
            panic!("run does not parse");
        };
        assert_eq!(r.accel, Some(AccelChoice::Force(Accel::Kvm)));
        assert_eq!((r.select.tests, r.select.excludes), (vec!["counter/*".to_string()], vec!["*->5.10".to_string()]));
        assert!(parse(&["run", "--accel", "fast"]).is_err());
        assert!(parse(&["plan", "--format", "yaml"]).is_err());
        assert!(parse(&["bisect", "--good", "a", "--bad", "b", "--workload", "w", "--side", "up"]).is_err());
        let Ok(Cli { command: Command::Bisect(b) }) =
            parse(&["bisect", "--axis", "engine", "--side", "dst", "--good", "a", "--bad", "b", "--workload", "w"])
        else {
            panic!("bisect does not parse");
        };
        assert_eq!((b.axis, b.side), (Axis::Engine, Side::Dst));
        assert!(parse(&["cache", "clean", "--kind", "states", "--kind", "tools", "--older-than", "7"]).is_ok());
        assert!(parse(&["cache", "clean", "--kind", "everything"]).is_err());
        assert!(parse(&["export", "--format", "kcidb", "out"]).is_ok());
        assert!(parse(&["export", "--format", "csv", "out"]).is_err());
    }

    #[test]
    fn completions_know_the_flags() {
        let mut out = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut Cli::command(), "crtest", &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("--rerun-failed") && script.contains("completions"), "{script}");
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("CRTEST_CACHE") && help.contains("NO_COLOR") && help.contains("125"), "{help}");
    }
}

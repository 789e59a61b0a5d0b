//! The command line: argument types only (handlers live in the binary), so
//! tests and pipeline examples can be checked against the real parser.

use crate::matrix::AccelChoice;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "crtest", version, about = "Checkpoint/restart compatibility across Linux kernels, in QEMU")]
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
    /// Run one cell; exit 0 PASS, 1 FAIL, 125 when the kernel cannot be tested, 2 on a usage error (for `git bisect run`).
    Cell(CellArgs),
    /// Find the first kernel where a cell goes bad.
    Bisect(BisectArgs),
    /// Time boots (PVH and bzImage), dump, restore and whole cells: min/median/max.
    Bench {
        #[arg(long, default_value = "6.1")]
        kernel: String,
        #[arg(long, default_value = "counter")]
        workload: String,
        /// Runs of each measurement (1..=100).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        #[arg(long)]
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
        #[arg(long, value_name = "FORMAT")]
        from: String,
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
        #[arg(long, value_enum, default_value_t)]
        color: crate::report::show::ColorChoice,
    },
    /// New failures, new skips, fixed cells, changed reasons, added and removed cells between two
    /// runs; exit 1 on a new failure, a new skip or a removed cell, 2 on a bad document.
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
    #[arg(long)]
    pub workload: String,
    /// Modules tree (lib/modules/RELEASE) for bzImage kernels, if they need modules.
    #[arg(long)]
    pub modules: Option<PathBuf>,
    /// The engine on both sides: `host` or an id from kernels/engines.yaml.
    #[arg(long)]
    pub engine: Option<String>,
    /// Restore with this engine instead (images go through the chain of
    /// converters between the two engines' formats).
    #[arg(long)]
    pub restore_engine: Option<String>,
    #[arg(long, default_value = "crtest-cell")]
    pub out: PathBuf,
    #[arg(long)]
    pub accel: Option<AccelChoice>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Boot every guest from its kernel instead of resuming a saved guest state.
    #[arg(long)]
    pub no_resume: bool,
}

#[derive(clap::Args)]
pub struct BisectArgs {
    /// The ordered axis: `kernel` (the catalog's order) or `engine`
    /// (kernels/engines.yaml's order, on the kernel given with --fixed).
    #[arg(long, default_value = "kernel")]
    pub axis: String,
    /// The engine of every probe: `host` or an id from kernels/engines.yaml.
    #[arg(long)]
    pub engine: Option<String>,
    #[arg(long)]
    pub good: String,
    #[arg(long)]
    pub bad: String,
    #[arg(long)]
    pub workload: String,
    /// Which side of the pair moves: both (K->K), src (K->FIXED) or dst (FIXED->K).
    #[arg(long, default_value = "both")]
    pub side: String,
    /// The kernel on the side that does not move (with --side src or dst).
    #[arg(long)]
    pub fixed: Option<String>,
    /// Runs per probe: any FAIL is bad, all PASS is good (1..=20).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
    #[arg(long, default_value = "crtest-bisect")]
    pub out: PathBuf,
    #[arg(long)]
    pub accel: Option<AccelChoice>,
}

#[derive(clap::Args)]
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
    pub partition: Option<crate::partition::Partition>,
    /// Also run workloads on engines they declare a known gap of (SKIP otherwise).
    #[arg(long)]
    pub run_known_gaps: bool,
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
    #[arg(long)]
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
}

#[derive(Subcommand)]
pub enum KernelsCommand {
    /// Id, release and whether each catalog kernel is cached.
    List,
    /// Download and extract kernels (all, or the ids given); no-op when cached.
    Fetch { ids: Vec<String> },
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

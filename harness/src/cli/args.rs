//! The argument groups of the larger subcommands: `run` (with the
//! selection it shares with `plan`), `cell` and `bisect`.

use super::{Axis, Side};
use crate::config::matrix::AccelChoice;
use std::path::PathBuf;

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
    /// How the memory travels: dump (default), predump, page-server or lazy.
    #[arg(long, default_value = "dump", value_parser = parse_mode)]
    pub mode: crate::config::mode::Mode,
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

/// A `--mode` value.
fn parse_mode(s: &str) -> Result<crate::config::mode::Mode, String> {
    crate::config::mode::Mode::parse(s)
        .ok_or_else(|| format!("unknown mode `{s}`: expected one of {}", crate::config::mode::Mode::names()))
}

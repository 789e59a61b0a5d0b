//! `crtest bench`: how long the parts of a cell take on this machine, over
//! several runs, reported as min / median / max (machines are noisy; the
//! median and ratios are what to compare).

use crate::config::matrix::{AccelChoice, Matrix};
use crate::guest::image::GuestImage;
use crate::kernel::Kernel;
use crate::plan::{Filters, Plan};
use crate::prepare::Project;
use crate::report::progress::Progress;
use crate::session;
use crate::util::fsutil;
use crate::verdict::{Stage, Status};
use crate::vm::qemu::{Accel, BootSpec, Start, Vm, VmConfig, VmError};
use crate::vm::vmstate::{self, Store};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// An error of the session, the top layer a bench run goes through (its
/// errors are anyhow's), kept whole with its chain.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why `crtest bench` stopped; a cause speaks for itself unless a step is named.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("unknown kernel `{0}`")]
    UnknownKernel(String),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("the guest was not resumed but {0:?}")]
    NotResumed(Start),
    #[error(transparent)]
    Pvh(#[from] crate::kernel::pvh::PvhError),
    #[error(transparent)]
    Virtme(#[from] crate::guest::virtme::VirtmeError),
    #[error("timing virtme-ng")]
    VirtmeTiming(#[source] crate::guest::virtme::VirtmeError),
    /// Preparing the one-cell run's kernels, images and engines.
    #[error(transparent)]
    Prepare(Cause),
    #[error(transparent)]
    Execute(Cause),
    #[error("no cell")]
    NoCell,
    #[error("bench cell did not pass: {0:?}")]
    CellFailed(Option<String>),
    /// A scratch directory or the table's output.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

type Result<T, E = BenchError> = std::result::Result<T, E>;

/// min, median and max of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Option<Stats> {
        let mut s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
        Some(Stats { min: s[0], median, max: s[n - 1] })
    }
}

/// One line of the report: `name  min  median  max  (n runs)`.
pub fn line(name: &str, samples: &[f64]) -> String {
    match Stats::of(samples) {
        Some(s) => format!("{name:<28} {:>7.2}s {:>7.2}s {:>7.2}s   ({} runs)", s.min, s.median, s.max, samples.len()),
        None => format!("{name:<28} (no successful run)"),
    }
}

/// Seconds from QEMU start to the guest's ready line, booting `image`
/// (a bzImage or a PVH vmlinux) `runs` times.
pub fn boot_times(kernel: &Kernel, image: &Path, guest: &GuestImage, cfg: &VmConfig, runs: u32) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for _ in 0..runs {
        let share = tempfile::tempdir()?;
        let spec = BootSpec {
            kernel_id: kernel.id.clone(),
            kernel_image: image.to_path_buf(),
            initrd: guest.initrd.clone(),
            share: share.path().to_path_buf(),
        };
        let started = Instant::now();
        let vm = Vm::boot(&spec, cfg)?;
        out.push(started.elapsed().as_secs_f64());
        vm.shutdown();
    }
    Ok(out)
}

/// Seconds from QEMU start to the ready line of guests resumed from the
/// saved state in `store` (saved first, untimed, if there is none).
pub fn resume_times(
    kernel: &Kernel,
    image: &Path,
    guest: &GuestImage,
    cfg: &VmConfig,
    store: &Store,
    runs: u32,
) -> Result<Vec<f64>> {
    let spec = |share: &Path| BootSpec {
        kernel_id: kernel.id.clone(),
        kernel_image: image.to_path_buf(),
        initrd: guest.initrd.clone(),
        share: share.to_path_buf(),
    };
    let notice = |msg: String| eprintln!("crtest bench: {msg}");
    let first = tempfile::tempdir()?;
    vmstate::start(&spec(first.path()), cfg, Some(store), &notice)?.shutdown();
    let mut out = Vec::new();
    for _ in 0..runs {
        let share = tempfile::tempdir()?;
        let started = Instant::now();
        let vm = vmstate::start(&spec(share.path()), cfg, Some(store), &notice)?;
        let secs = started.elapsed().as_secs_f64();
        if vm.start != Start::Resumed {
            return Err(BenchError::NotResumed(vm.start));
        }
        out.push(secs);
        vm.shutdown();
    }
    Ok(out)
}

/// Wall seconds of virtme-ng booting `kernel` and running `uname -r`.
pub fn virtme_times(kernel: &Kernel, cache: &Path, runs: u32) -> Result<Vec<f64>> {
    let virtme_run = crate::guest::virtme::ensure_installed(cache)?;
    let image = crate::guest::virtme::kernel_tree(cache, kernel)?;
    (0..runs)
        .map(|_| {
            crate::guest::virtme::time_once(&virtme_run, &image, &kernel.release).map_err(BenchError::VirtmeTiming)
        })
        .collect()
}

/// `a / b` of the medians, as text.
pub fn ratio(name: &str, a: &[f64], b: &[f64]) -> String {
    match (Stats::of(a), Stats::of(b)) {
        (Some(a), Some(b)) => format!("{name}, medians: {:.2}x", a.median / b.median),
        _ => format!("{name}: (no successful runs)"),
    }
}

/// What `crtest bench` times.
pub struct BenchArgs {
    pub kernel: String,
    pub workload: String,
    pub runs: u32,
    pub accel: Option<AccelChoice>,
    /// Also time resumed guests, and run the whole cells on them.
    pub resume: bool,
    pub vs_virtme: bool,
}

/// Boot timings of one kernel, in seconds per run.
struct Boots {
    bz: Vec<f64>,
    pvh: Vec<f64>,
    resumed: Vec<f64>,
    virtme: Vec<f64>,
}

/// `crtest bench`: boots, then whole cells of `args.workload` on
/// `args.kernel` -> `args.kernel`, `args.runs` times each, as a table on `out`.
pub fn run(project: &Project, args: &BenchArgs, out: &mut dyn Write) -> Result<i32> {
    let (kernel, runs) = (args.kernel.as_str(), args.runs);
    if project.catalog.get(kernel).is_none() {
        return Err(BenchError::UnknownKernel(kernel.into()));
    }
    let matrix = Matrix::for_pairs(
        &project.library,
        &project.formats,
        &args.workload,
        vec![(kernel.to_string(), kernel.to_string())],
    );
    let plan = Plan::new(&matrix, &project.catalog, &project.library, &Filters::default());
    let quiet = Progress::new(false);
    let ready =
        session::prepare(project, &matrix, &plan, args.accel, &quiet).map_err(|e| BenchError::Prepare(e.into()))?;
    let (k, image, engine, accel) =
        (&ready.kernels[kernel], &ready.images[kernel], &ready.engines[kernel], ready.accel);
    let cfg = session::vm_config(&matrix, accel);
    writeln!(
        out,
        "crtest bench: kernel {kernel} ({}), {}, accel {accel:?}, {} MiB guests, {runs} runs each",
        k.release, engine.id, cfg.memory_mb
    )?;
    writeln!(out, "{:<28} {:>8} {:>8} {:>8}", "", "min", "median", "max")?;
    let boots = boots(args, k, image, &cfg, out)?;
    let cells = CellRuns { project, matrix: &matrix, plan: &plan, accel, reporter: &quiet };
    cells.time(args, out)?;
    writeln!(out, "{}", ratio("PVH / bzImage boot", &boots.pvh, &boots.bz))?;
    if args.resume {
        writeln!(out, "{}", ratio("resumed / PVH boot", &boots.resumed, &boots.pvh))?;
    }
    if args.vs_virtme {
        writeln!(out, "{}", ratio("PVH boot / virtme-ng", &boots.pvh, &boots.virtme))?;
        if args.resume {
            writeln!(out, "{}", ratio("resumed / virtme-ng", &boots.resumed, &boots.virtme))?;
        }
    }
    Ok(0)
}

/// Times the boots `args` asks for, a line each as soon as it is known.
fn boots(args: &BenchArgs, k: &Kernel, image: &GuestImage, cfg: &VmConfig, out: &mut dyn Write) -> Result<Boots> {
    let (runs, cache) = (args.runs, fsutil::cache_dir());
    let bz = boot_times(k, &k.vmlinuz, image, cfg, runs)?;
    writeln!(out, "{}", line("boot to ready (bzImage)", &bz))?;
    let pvh_image = crate::kernel::pvh::vmlinux(&k.vmlinuz)?;
    let pvh = match &pvh_image {
        Some(p) => boot_times(k, p, image, cfg, runs)?,
        None => vec![],
    };
    writeln!(out, "{}", line("boot to ready (PVH)", &pvh))?;
    let mut resumed = vec![];
    if args.resume {
        let store = Store::in_cache(&cache);
        let boot_image = pvh_image.as_deref().unwrap_or(&k.vmlinuz);
        resumed = resume_times(k, boot_image, image, cfg, &store, runs)?;
        writeln!(out, "{}", line("ready (resumed)", &resumed))?;
    }
    let mut virtme = vec![];
    if args.vs_virtme {
        virtme = virtme_times(k, &cache, runs)?;
        writeln!(out, "{}", line("virtme-ng run (wall)", &virtme))?;
    }
    Ok(Boots { bz, pvh, resumed, virtme })
}

/// The bench's one-cell run, prepared once.
struct CellRuns<'a> {
    project: &'a Project,
    matrix: &'a Matrix,
    plan: &'a Plan,
    accel: Accel,
    reporter: &'a Progress,
}

impl CellRuns<'_> {
    /// Runs the cell `args.runs` times (it must pass): the dump, restore,
    /// finish and whole-cell lines.
    fn time(&self, args: &BenchArgs, out: &mut dyn Write) -> Result<()> {
        let (mut dump, mut restore, mut finish, mut cell) = (vec![], vec![], vec![], vec![]);
        for run in 0..args.runs {
            let dir = tempfile::tempdir()?;
            let opts = session::Options {
                jobs: 1,
                out: dir.path().to_path_buf(),
                accel: Some(AccelChoice::Force(self.accel)),
                seed: Some(u64::from(run)),
                iters: 1,
                resume: args.resume,
            };
            let done = session::execute(self.project, self.matrix, self.plan, &opts, self.reporter)
                .map_err(|e| BenchError::Execute(e.into()))?;
            let c = done.cells.first().ok_or(BenchError::NoCell)?;
            if c.status != Status::Pass {
                return Err(BenchError::CellFailed(c.reason.clone()));
            }
            let secs = |s: Stage| c.stages.iter().find(|r| r.stage == s).map_or(f64::NAN, |r| r.secs);
            dump.push(secs(Stage::Dump));
            restore.push(secs(Stage::Restore));
            finish.push(secs(Stage::Finish));
            cell.push(done.wall_secs);
        }
        writeln!(out, "{}", line("dump (wait + criu dump)", &dump))?;
        writeln!(out, "{}", line("restore (criu restore)", &restore))?;
        writeln!(out, "{}", line("finish (run to the end)", &finish))?;
        let (workload, kernel) = (&args.workload, &args.kernel);
        writeln!(out, "{}", line(&format!("whole cell {workload} {kernel}->{kernel}"), &cell))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_middle() {
        assert_eq!(Stats::of(&[3.0, 1.0, 2.0]), Some(Stats { min: 1.0, median: 2.0, max: 3.0 }));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Stats::of(&[]), None);
        assert!(line("boot", &[1.0]).contains("1.00s"));
        assert_eq!(ratio("a / b", &[1.0, 2.0, 9.0], &[8.0]), "a / b, medians: 0.25x");
        assert!(ratio("a / b", &[], &[1.0]).contains("no successful"));
    }
}

//! One execution of a plan, end to end: prepare kernels, images and the
//! accelerator, run the cells, and write the reports atomically. Shared by
//! `crtest run`, `crtest cell` and `crtest bisect`.

use crate::config::matrix::{AccelChoice, Matrix};
use crate::engine::Engine;
use crate::event::Reporter;
use crate::guest::image::GuestImage;
use crate::kernel::Kernel;
use crate::plan::GuestKind;
use crate::plan::Plan;
use crate::prepare::{self, Project};
use crate::report::{self, output::Staging, Summary};
use crate::result::CellResult;
use crate::run::guest::{KindImage, Qemu};
use crate::run::{self, Setup};
use crate::util::fsutil;
use crate::vm::qemu::{Accel, VmConfig};
use crate::vm::reaper;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    pub out: PathBuf,
    pub accel: Option<AccelChoice>,
    pub seed: Option<u64>,
    pub iters: u32,
    /// Start VMs from saved guest states (saving them on first use).
    pub resume: bool,
}

pub struct Finished {
    pub cells: Vec<CellResult>,
    pub summary: Summary,
    pub grid: String,
    pub wall_secs: f64,
}

/// A seed for runs that were given none.
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// What a plan needs before any VM of the run starts.
pub struct Prepared {
    /// Per guest kind (a kernel, or `KERNEL@ENGINE`): its kernel, engine and image.
    pub kernels: BTreeMap<String, Kernel>,
    pub engines: BTreeMap<String, Engine>,
    pub images: BTreeMap<String, GuestImage>,
    /// Every image format's crit that a chain of the plan needs.
    pub crits: BTreeMap<String, crate::convert::crit::Crit>,
    pub accel: Accel,
}

/// Fetches the plan's kernels and engines, builds the guest images and picks
/// the accelerator (`accel`, else the matrix's choice).
pub fn prepare(
    project: &Project,
    matrix: &Matrix,
    plan: &Plan,
    accel: Option<AccelChoice>,
    reporter: &dyn Reporter,
) -> Result<Prepared> {
    let cache = fsutil::cache_dir();
    let kernel_ids: Vec<String> = plan.kernels().into_iter().collect();
    let fetched = prepare::kernels(project, &kernel_ids, &cache, reporter)?;
    let kinds: Vec<String> = plan.kinds().into_iter().collect();
    let kernels = kinds.iter().map(|k| (k.clone(), fetched[crate::plan::kernel_of(k)].clone())).collect();
    let engines = prepare::engines(project, matrix, &kinds, &cache, reporter)?;
    let images = prepare::images(&matrix.library, plan, &kernels, &engines, &cache, reporter)?;
    let crits = prepare::crits(project, plan, &cache, reporter)?;
    let probe = kinds.first().map(|k| (&kernels[k], &images[k]));
    let accel = prepare::accel(accel.unwrap_or(matrix.accel), probe, &cache, reporter);
    Ok(Prepared { kernels, engines, images, crits, accel })
}

/// The grid's rows and columns: each kernel of the matrix the plan uses,
/// followed by its `KERNEL@ENGINE` kinds.
fn shown_kinds(matrix: &Matrix, plan: &Plan) -> Vec<String> {
    let used: std::collections::BTreeSet<String> =
        plan.cells.iter().flat_map(|c| [c.src_kind(), c.dst_kind()]).collect();
    matrix.kernels.iter().flat_map(|k| used.iter().filter(move |u| crate::plan::kernel_of(u) == k).cloned()).collect()
}

/// Marks every FAIL that a known incompatibility explains.
fn explain_known(cells: &mut [CellResult], project: &Project, matrix: &Matrix) {
    let version = |k: &str| project.catalog.get(k).map(|s| s.version.clone());
    let format = |kind: &str| matrix.formats.of_engine(crate::plan::engine_of(matrix, kind));
    for c in cells.iter_mut().filter(|c| c.status == crate::verdict::Status::Fail) {
        let (Some(src), Some(dst), Some(reason)) = (version(&c.cell.src), version(&c.cell.dst), c.reason.as_deref())
        else {
            continue;
        };
        let (df, rf) = (format(&c.cell.src_kind()), format(&c.cell.dst_kind()));
        let seen = crate::verdict::known::Observed {
            reason,
            src_version: &src,
            dst_version: &dst,
            dump_format: df.as_deref(),
            restore_format: rf.as_deref(),
        };
        c.known = project.known.explain(&seen).map(|e| e.id.clone());
    }
}

/// The VM settings of a matrix under `accel`.
pub fn vm_config(matrix: &Matrix, accel: Accel) -> VmConfig {
    VmConfig { accel, memory_mb: matrix.memory_mb, cpu: matrix.cpu.clone(), boot_timeout: matrix.timeouts.boot }
}

/// Runs `plan` and writes `results.json`, `junit.xml`, `grid.txt`, cell
/// artifacts and console logs into `opts.out`.
pub fn execute(
    project: &Project,
    matrix: &Matrix,
    plan: &Plan,
    opts: &Options,
    reporter: &dyn Reporter,
) -> Result<Finished> {
    let started = Instant::now();
    reaper::install();
    report::output::check_out(&opts.out)?; // before anything runs
    let kernel_ids: Vec<String> = plan.kinds().into_iter().collect();
    let Prepared { kernels, engines, images, crits, accel } = prepare(project, matrix, plan, opts.accel, reporter)?;
    let engine_ids: std::collections::BTreeMap<String, String> =
        engines.iter().map(|(k, e)| (k.clone(), e.id.clone())).collect();
    let mut distinct: Vec<&String> = engine_ids.values().collect();
    distinct.sort();
    distinct.dedup();
    let engine_names = distinct.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let boot_images = prepare::boot_images(&project.catalog, &kernels, matrix.pvh, reporter)?;
    let seed = opts.seed.unwrap_or_else(fresh_seed);
    let plan = &plan.clone().seeded(seed, &matrix.library);
    let setup = Setup {
        restore_in_dumping_guest: matrix.restore_in_dumping_guest,
        library: matrix.library.clone(),
        engines: engine_ids.iter().map(|(k, e)| (GuestKind::parse(k), e.clone())).collect(),
        timeouts: matrix.timeouts.clone(),
        step_ms: matrix.step_ms,
        converter_command: matrix.converter.clone(),
        crits,
        iters: opts.iters,
        interrupted: Box::new(reaper::interrupted),
    };
    let qemu = Qemu {
        kinds: kernels
            .iter()
            .map(|(id, k)| {
                let boot_image = boot_images.get(id).cloned().unwrap_or_else(|| k.vmlinuz.clone());
                (GuestKind::parse(id), KindImage { kernel: k.clone(), boot_image, image: images[id].clone() })
            })
            .collect(),
        vm: vm_config(matrix, accel),
        states: opts.resume.then(|| crate::vm::vmstate::Store::in_cache(&fsutil::cache_dir())),
    };
    eprintln!(
        "crtest: {} cells ({} runnable) on kernels {} with {}, {} VMs at once, accel {:?}, seed {}, iters {}",
        plan.cells.len(),
        plan.runnable().count(),
        kernel_ids.join(", "),
        engine_names,
        opts.jobs,
        accel,
        seed,
        setup.iters
    );
    let staging = Staging::new(&opts.out)?;
    let work = tempfile::Builder::new().prefix("crtest-run-").tempdir().context("creating the run's scratch dir")?;
    reaper::scratch(work.path());
    let mut out = run::run(plan, &setup, &qemu, opts.jobs, work.path(), &staging.dir, reporter)?;
    // Cells cut short by Ctrl-C are not results: only those judged before it
    // are written, marked interrupted (the signal handler gives the run a
    // few seconds to do so). With none, scratch and staging go on drop.
    let interrupted = reaper::interrupted();
    let _finishing = interrupted.then(reaper::finishing);
    out.cells.retain(|c| !interrupted || !out.cut_short.contains(&c.cell.id));
    anyhow::ensure!(!interrupted || !out.cells.is_empty(), "interrupted: no cell had finished, no results written");
    let done: std::collections::BTreeSet<&str> = out.cells.iter().map(|c| c.cell.id.as_str()).collect();
    let not_run: Vec<String> =
        plan.cells.iter().filter(|c| !done.contains(c.id.as_str())).map(|c| c.id.clone()).collect();
    if std::env::var_os("CRTEST_KEEP_WORK").is_some() {
        eprintln!("crtest: keeping the run's scratch dir {}", work.keep().display());
    }

    explain_known(&mut out.cells, project, matrix);
    let summary = Summary::of(&out.cells);
    let vm_info = report::json::vm_info(&out.vms);
    for vm in &out.vms {
        staging.write(&format!("vms/{}.console.log", vm.kernel), vm.console.as_bytes())?;
    }
    let kernels_info = kernels
        .iter()
        .map(|(id, k)| {
            // The kind's source guest, else its target guest.
            let vm = vm_info.get(id).or_else(|| vm_info.get(&crate::result::target_vm(id, false)));
            let info = report::json::KernelInfo {
                release: k.release.clone(),
                packages: k.packages.clone(),
                engine: engine_ids.get(id).cloned().unwrap_or_default(),
                engine_env: engines.get(id).map(|e| e.env.clone()).unwrap_or_default(),
                boot_secs: vm.and_then(|v| v.boot_secs),
                start: vm.and_then(|v| v.start),
                console: vm.map(|v| v.console.clone()),
            };
            (id.clone(), info)
        })
        .collect();
    let wall_secs = started.elapsed().as_secs_f64();
    let results = report::json::Results {
        schema: report::json::SCHEMA,
        crtest_version: env!("CARGO_PKG_VERSION"),
        matrix: matrix.path.display().to_string(),
        accel,
        engine: engine_names.clone(),
        seed,
        iters: setup.iters,
        kernels: kernels_info,
        vms: vm_info,
        wall_secs,
        interrupted,
        not_run,
        summary,
        cells: &out.cells,
    };
    let shown = shown_kinds(matrix, plan);
    let (table, grid) = report::grid::parts(&out.cells, &shown, &project.known);
    staging.write("grid.txt", format!("{table}\n{grid}").as_bytes())?;
    let json = report::json::render(&results)?;
    // JUnit with the run's properties and the log tails of the staged artifacts.
    let ctx = report::junit::Context {
        properties: report::junit::properties(&serde_json::from_slice(&json)?),
        out_dir: Some(staging.dir.clone()),
    };
    staging.write("junit.xml", report::junit::render_with(&out.cells, &ctx).as_bytes())?;
    staging.write("report.html", report::html::from_json(&json, &staging.dir, &project.known)?.as_bytes())?;
    staging.write("results.json", &json)?;
    staging.commit(&["junit.xml", "results.json"])?;
    // The terminal ends with the summary table, the file starts with it.
    Ok(Finished { cells: out.cells, summary, grid: format!("{grid}\n{table}"), wall_secs })
}

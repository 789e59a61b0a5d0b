//! Executes a plan. Each guest kind has two VMs: a source guest, which runs
//! the uninterrupted reference runs and dumps each (workload, source) once
//! (`source.rs`), and a target guest, which restores every image set moved
//! to that kind (`cell.rs`, one state machine per cell). No image set is
//! restored in the guest that dumped it (unless the matrix asks for that),
//! so the diagonal `W/K->K` crosses guests like every other cell and serves
//! as the control of the kind's cross cells (`gate.rs`).
//!
//! The run drives guests through the [`guest`] seam and only emits events;
//! reporters render them.

pub mod artifacts;
pub mod cell;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod flow_tests;
pub mod gate;
pub mod guest;
pub mod linked;
pub mod modes;
pub mod pool;
pub mod source;

use crate::config::matrix::Timeouts;
use crate::config::mode::Mode;
use crate::config::workload::{Library, Workload};
use crate::convert::crit::Crit;
use crate::engine::{GuestOp, OpPaths};
use crate::event::{Event, Reporter};
use crate::plan::{Cell, GuestKind, Plan};
use crate::result::{kind_of_vm, target_vm, CellResult, VmRecord};
use crate::verdict::{Outcome, Stage, StageRecord, Status};
use gate::ControlGate;
use guest::Launcher;
use pool::{first_line, Pool};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How much longer than a script's own timeout the host waits for it, so a
/// script's own report wins over a VM-level timeout.
const GUEST_GRACE: Duration = Duration::from_secs(60);

/// Everything a run needs besides its guests, prepared before any VM starts.
pub struct Setup {
    pub library: Library,
    /// The engine each guest kind runs, by id (`criu-4.1.1`).
    pub engines: BTreeMap<GuestKind, String>,
    pub timeouts: Timeouts,
    pub step_ms: u32,
    /// The converter command used between images of one format (identity
    /// when None).
    pub converter_command: Option<PathBuf>,
    /// Each format's crit, for the conversion chains.
    pub crits: BTreeMap<String, Crit>,
    /// Dump/restore rounds per cell (1 = the cross-kernel one only).
    pub iters: u32,
    /// Restore in the guest that dumped (the matrix's `vm.restore_in:
    /// dumping-guest`) instead of another guest of the target kind.
    pub restore_in_dumping_guest: bool,
    /// Whether the run was interrupted (Ctrl-C, SIGTERM): from then on no
    /// guest work starts and nothing is written. `reaper::interrupted` in
    /// real runs.
    pub interrupted: Box<dyn Fn() -> bool + Send + Sync>,
}

pub struct RunOutput {
    pub cells: Vec<CellResult>,
    pub vms: Vec<VmRecord>,
    /// Cells judged after Ctrl-C/SIGTERM: cut short, not results.
    pub cut_short: BTreeSet<String>,
}

/// A guest operation's record: outcome, time, and where its files landed.
#[derive(Debug, Clone)]
pub struct OpRecord {
    pub outcome: Outcome,
    pub secs: f64,
    /// Host path of the op's share dir (`out/ID`).
    pub out: Option<PathBuf>,
    pub op: Option<OpPaths>,
    pub pid: Option<u32>,
    /// For dumps: the step after which the tree was dumped.
    pub step: Option<u32>,
}

impl OpRecord {
    fn broken(msg: String) -> Self {
        OpRecord { outcome: Outcome::Broken(msg), secs: 0.0, out: None, op: None, pid: None, step: None }
    }
    /// A dump's record: the op and where it left its results, the dumped
    /// tree's root PID and the step it was dumped after.
    fn dumped(ctx: &Ctx, vm: &str, op: OpPaths, outcome: Outcome, started: Instant, after: u32) -> Self {
        let out = ctx.pool.outbox(vm, &op);
        OpRecord {
            outcome,
            secs: started.elapsed().as_secs_f64(),
            pid: read_pid(&out),
            out: Some(out),
            op: Some(op),
            step: Some(after),
        }
    }
    fn record(&self, stage: Stage) -> StageRecord {
        StageRecord { stage, outcome: self.outcome.clone(), secs: self.secs }
    }
}

/// What the run's phases share: its settings, its VMs and its counters.
pub struct Ctx<'a> {
    pub setup: &'a Setup,
    pub pool: Pool<'a>,
    /// Where judged cells keep their artifacts.
    pub artifacts: &'a Path,
    /// Per VM: engine features `criu check --feature` found, probed once.
    features: Mutex<BTreeMap<String, BTreeMap<String, bool>>>,
    next_op: AtomicU32,
}

impl Ctx<'_> {
    fn notice(&self, msg: String) {
        self.pool.notice(msg);
    }

    fn op_id(&self, kind: char) -> OpPaths {
        OpPaths::new(&format!("{kind}{}", self.next_op.fetch_add(1, Ordering::SeqCst)))
    }

    fn workload(&self, name: &str) -> &Workload {
        self.setup.library.get(name).expect("plan validated")
    }

    /// Runs `op` on VM `vm` and maps its exit to the op's outcome; a VM
    /// fault is crtest's.
    fn run_op(&self, vm: &str, op: &GuestOp) -> Outcome {
        let out = op.out.as_ref().map(|o| self.pool.outbox(vm, o)).unwrap_or_default();
        match self.pool.exec(vm, op) {
            Err(e) => Outcome::Broken(e.0),
            Ok(r) => op.outcome(crate::engine::ScriptExit::from_rc(r.rc), &out, &r.output),
        }
    }

    /// The seconds a script may take (its own timeout).
    fn op_timeout(&self) -> u32 {
        self.setup.timeouts.operation.as_secs() as u32
    }

    /// Why `w` cannot run on VM `vm` (an engine feature it needs is
    /// missing), probing every feature of the library once per VM.
    fn unsupported(&self, vm: &str, w: &Workload, mode: Mode) -> Option<String> {
        let needed: Vec<&str> = w.features.iter().map(String::as_str).chain(mode.features().iter().copied()).collect();
        if needed.is_empty() {
            return None;
        }
        if !self.features.lock().unwrap().contains_key(vm) {
            let modes = Mode::ALL.into_iter().flat_map(|m| m.features().iter().copied());
            let all: BTreeSet<&str> = self
                .setup
                .library
                .workloads
                .iter()
                .flat_map(|w| &w.features)
                .map(String::as_str)
                .chain(modes)
                .collect();
            let names: Vec<&str> = all.into_iter().collect();
            let found = match self.pool.exec(vm, &GuestOp::features(&names)) {
                Ok(r) => crate::engine::scripts::parse_features(&r.output),
                Err(e) => return Some(format!("could not probe engine features: {}", first_line(&e.0))),
            };
            self.features.lock().unwrap().insert(vm.to_string(), found);
        }
        let have = &self.features.lock().unwrap()[vm];
        let missing: Vec<&str> = needed.into_iter().filter(|f| have.get(*f) != Some(&true)).collect();
        let engine = self.setup.engines.get(&GuestKind::parse(kind_of_vm(vm))).cloned().unwrap_or_default();
        (!missing.is_empty())
            .then(|| format!("`criu check --feature {}` fails on kernel {vm} ({engine})", missing.join(", ")))
    }
}

/// Why a run could not start; once started, every fault is a cell's reason.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Threads(#[from] rayon::ThreadPoolBuildError),
}

/// Runs every runnable cell of `plan` on guests from `launcher`, emitting
/// events to `reporter`; returns the judged cells in plan order.
pub fn run(
    plan: &Plan,
    setup: &Setup,
    launcher: &dyn Launcher,
    jobs: usize,
    work: &Path,
    artifacts: &Path,
    reporter: &dyn Reporter,
) -> Result<RunOutput, RunError> {
    let threads = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build()?;
    let timeout = setup.timeouts.operation + GUEST_GRACE;
    let ctx = Ctx {
        setup,
        pool: Pool::new(launcher, reporter, work, timeout, &*setup.interrupted),
        artifacts,
        features: Mutex::new(BTreeMap::new()),
        next_op: AtomicU32::new(0),
    };
    let dumped = threads.install(|| source::all(&ctx, plan));

    let restores: Vec<&Cell> = plan.runnable().filter(|c| !c.mode.is_linked()).collect();
    let targets: BTreeSet<String> = restores.iter().map(|c| c.dst_kind()).collect();
    let total = plan.cells.len();
    let done = AtomicUsize::new(0);
    let gate = ControlGate::new(plan);
    let cut_short = Mutex::new(BTreeSet::new());
    let emit = |ready: Vec<CellResult>| {
        for r in ready {
            // A cell judged after an interrupt may carry the interrupt's damage.
            if (setup.interrupted)() {
                cut_short.lock().unwrap().insert(r.cell.id.clone());
                continue;
            }
            let n = done.fetch_add(1, Ordering::SeqCst) + 1;
            reporter.event(&Event::CellDone { result: Box::new(r), done: n, total });
        }
    };
    threads.install(|| {
        targets.par_iter().for_each(|k| {
            let mine: Vec<&Cell> = restores.iter().copied().filter(|c| &c.dst_kind() == k).collect();
            let vm = target_vm(k, setup.restore_in_dumping_guest);
            for wave in cell::waves(&mine) {
                for r in cell::restore_wave(&ctx, &vm, &wave, &dumped) {
                    emit(gate.finished(r));
                }
            }
        })
    });
    // Cells whose pages travel between two running guests, after every other restore.
    threads.install(|| linked::all(&ctx, plan, &dumped, &|r| emit(gate.finished(r))));
    for cell in plan.cells.iter().filter(|c| c.skip.is_some()) {
        emit(gate.finished(CellResult::unrun(cell.clone(), Status::Skip, cell.skip.clone())));
    }
    let mut results = gate.into_results();
    // Report in plan order whatever finished first.
    let order: BTreeMap<&str, usize> = plan.cells.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
    results.sort_by_key(|r| order[r.cell.id.as_str()]);
    let vms = ctx.pool.shutdown_all();
    Ok(RunOutput { cells: results, vms, cut_short: cut_short.into_inner().unwrap() })
}

fn read_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()
}

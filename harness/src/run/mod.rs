//! Executes a plan. Each guest kind has two VMs: a source guest, which runs
//! the uninterrupted reference runs and dumps each (workload, source) once
//! (phase A), and a target guest, which restores every image set moved to
//! that kind (phase B). No image set is restored in the guest that dumped it
//! (unless the matrix asks for that), so the diagonal `W/K->K` crosses
//! guests like every other cell and serves as their control. Between the
//! phases the host transfers and converts the image sets. Verdicts come
//! last, from the records, each cross cell judged against its control.
//!
//! The runner only emits events; reporters render them.

use crate::config::matrix::Timeouts;
use crate::config::workload::Library;
use crate::convert::{self, Converter, StepRecord};
use crate::engine::{self, rc, OpPaths};
use crate::event::{Event, Reporter};
use crate::guest::image::GuestImage;
use crate::kernel::Kernel;
use crate::plan::{Cell, Plan};
use crate::result::{kind_of_vm, target_vm, CellResult, VmRecord};
use crate::verdict::{self, Outcome, Stage, StageRecord, Status};
use crate::vm::qemu::{BootSpec, Vm, VmConfig};
use crate::vm::vmstate;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The largest dump image set kept with a cell that did not pass.
const IMAGES_KEPT_MAX: u64 = 32 << 20;

/// How much longer than a script's own timeout the host waits for it.
const GUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// First PID of the range given to dump number `i` (see init.sh `tune`).
fn pid_base(i: usize) -> u32 {
    200_000 + 10_000 * i as u32
}

/// Everything a run needs, prepared before any VM starts.
pub struct Setup {
    pub library: Library,
    /// The engine each kernel's guest runs, e.g. `criu-4.1.1`.
    pub engines: BTreeMap<String, String>,
    pub kernels: BTreeMap<String, Kernel>,
    /// What QEMU's `-kernel` gets per kernel (a PVH vmlinux when there is one).
    pub boot_images: BTreeMap<String, PathBuf>,
    pub images: BTreeMap<String, GuestImage>,
    pub vm: VmConfig,
    /// Saved guest states to start VMs from (None: always boot from the kernel).
    pub states: Option<vmstate::Store>,
    pub timeouts: Timeouts,
    pub step_ms: u32,
    /// The converter command used between images of one format (identity
    /// when None).
    pub converter_command: Option<PathBuf>,
    /// The engine each guest kind runs as the matrix names it (`host`,
    /// `criu-4.1`), which decides its image format.
    pub engine_names: BTreeMap<String, String>,
    /// Chains between formats, and each format's crit they need.
    pub formats: crate::config::formats::Formats,
    pub crits: BTreeMap<String, crate::convert::crit::Crit>,
    /// Moves each dump point (see `plan::dump_point`); recorded in results.
    pub seed: u64,
    /// Dump/restore rounds per cell (1 = the cross-kernel one only).
    pub iters: u32,
    /// Restore in the guest that dumped (the matrix's `vm.restore_in:
    /// dumping-guest`) instead of another guest of the target kind.
    pub restore_in_dumping_guest: bool,
}

pub struct RunOutput {
    pub cells: Vec<CellResult>,
    pub vms: Vec<VmRecord>,
    /// Cells judged after Ctrl-C/SIGTERM: cut short, not results.
    pub cut_short: std::collections::BTreeSet<String>,
}

/// A guest operation's record: outcome, time, and where its files landed.
#[derive(Debug, Clone)]
struct OpRecord {
    outcome: Outcome,
    secs: f64,
    /// Host path of the op's share dir (`out/ID`).
    out: Option<PathBuf>,
    op: Option<OpPaths>,
    pid: Option<u32>,
    /// For dumps: the step after which the tree was dumped.
    step: Option<u32>,
}

impl OpRecord {
    fn broken(msg: String) -> Self {
        OpRecord { outcome: Outcome::Broken(msg), secs: 0.0, out: None, op: None, pid: None, step: None }
    }
    fn record(&self, stage: Stage) -> StageRecord {
        StageRecord { stage, outcome: self.outcome.clone(), secs: self.secs }
    }
}

/// A VM slot: booted, failed to boot, or broken by a later fault.
enum Slot {
    Up(Box<Vm>),
    Down(String),
}

type VmHandle = Arc<Mutex<Option<(Slot, f64)>>>;

struct Runner<'a> {
    setup: &'a Setup,
    work: &'a Path,
    reporter: &'a dyn Reporter,
    /// One lock per VM, so VMs run their commands in parallel.
    vms: Mutex<BTreeMap<String, VmHandle>>,
    /// Console logs of VMs that are gone, by kernel.
    consoles: Mutex<BTreeMap<String, VmRecord>>,
    boot_times: Mutex<BTreeMap<String, f64>>,
    /// Per kernel: engine features found missing by `criu check --feature`.
    features: Mutex<BTreeMap<String, BTreeMap<String, bool>>>,
    next_op: AtomicU32,
}

pub fn run(
    plan: &Plan,
    setup: &Setup,
    jobs: usize,
    work: &Path,
    artifacts: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<RunOutput> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build()?;
    let runner = Runner {
        setup,
        work,
        reporter,
        vms: Mutex::new(BTreeMap::new()),
        consoles: Mutex::new(BTreeMap::new()),
        boot_times: Mutex::new(BTreeMap::new()),
        features: Mutex::new(BTreeMap::new()),
        next_op: AtomicU32::new(0),
    };
    let dumps: Vec<(String, String)> = plan.dumps().into_iter().collect();
    let setup = runner.setup;
    let sources: Vec<String> =
        dumps.iter().map(|(_, s)| s.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();

    // Phase A: references and dumps on every source kind, in its source guest.
    let src_records: BTreeMap<(String, String), (OpRecord, OpRecord)> = pool.install(|| {
        sources
            .par_iter()
            .flat_map_iter(|k| {
                let mine: Vec<(usize, &str)> = dumps
                    .iter()
                    .filter(|(_, s)| s == k)
                    .map(|(w, s)| (plan.slots[&(w.clone(), crate::plan::kernel_of(s).to_string())], w.as_str()))
                    .collect();
                let records = runner.source_phase(k, &mine);
                // Its dumps are done and the dumped trees gone: free the memory for target guests.
                if !setup.restore_in_dumping_guest {
                    runner.shutdown(k);
                }
                records.into_iter().map(|(w, recs)| ((w, k.clone()), recs))
            })
            .collect()
    });

    // Transfer and convert, then Phase B: restores in every target kind's target guest.
    let restores: Vec<&Cell> = plan.runnable().collect();
    let targets: Vec<String> =
        plan.kinds().into_iter().filter(|k| restores.iter().any(|c| &c.dst_kind() == k)).collect();
    let total = plan.cells.len();
    let done = AtomicUsize::new(0);
    let gate = ControlGate::new(plan);
    let cut_short = Mutex::new(std::collections::BTreeSet::new());
    let emit = |ready: Vec<CellResult>| {
        for r in ready {
            // A cell judged after an interrupt may carry the interrupt's damage.
            if crate::vm::reaper::interrupted() {
                cut_short.lock().unwrap().insert(r.cell.id.clone());
                continue;
            }
            let n = done.fetch_add(1, Ordering::SeqCst) + 1;
            reporter.event(&Event::CellDone { result: Box::new(r), done: n, total });
        }
    };
    pool.install(|| {
        targets.par_iter().for_each(|k| {
            let mine: Vec<&Cell> = restores.iter().copied().filter(|c| &c.dst_kind() == k).collect();
            let vm = target_vm(k, setup.restore_in_dumping_guest);
            for r in runner.target_phase(&vm, &mine, &src_records, artifacts) {
                emit(gate.finished(r));
            }
        })
    });
    for cell in plan.cells.iter().filter(|c| c.skip.is_some()) {
        emit(gate.finished(CellResult::unrun(cell.clone(), Status::Skip, cell.skip.clone())));
    }
    let mut results = gate.into_results();
    // Report in plan order whatever finished first.
    let order: BTreeMap<&str, usize> = plan.cells.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
    results.sort_by_key(|r| order[r.cell.id.as_str()]);
    let vms = runner.shutdown_all();
    Ok(RunOutput { cells: results, vms, cut_short: cut_short.into_inner().unwrap() })
}

/// Holds back each finished cell until its control has finished too, then
/// judges it against the control (see `verdict::against_control`), so every
/// reported verdict is final.
struct ControlGate {
    /// Ids of cells that are some cell's control.
    controls: std::collections::BTreeSet<String>,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    /// Finished controls' statuses.
    verdicts: BTreeMap<String, Status>,
    waiting: Vec<CellResult>,
    done: Vec<CellResult>,
}

impl ControlGate {
    fn new(plan: &Plan) -> Self {
        let controls = plan.cells.iter().filter_map(|c| c.control.clone()).collect();
        ControlGate { controls, state: Mutex::new(GateState::default()) }
    }

    /// Takes a finished cell; returns the cells whose verdicts are now final.
    fn finished(&self, r: CellResult) -> Vec<CellResult> {
        let mut st = self.state.lock().unwrap();
        let mut ready = Vec::new();
        if self.controls.contains(&r.cell.id) {
            st.verdicts.insert(r.cell.id.clone(), r.status);
        }
        st.waiting.push(r);
        let waiting = std::mem::take(&mut st.waiting);
        for mut r in waiting {
            let control = r.cell.control.clone();
            match control.map(|id| (st.verdicts.get(&id).cloned(), id)) {
                None => ready.push(r),
                Some((Some(status), id)) => {
                    r.control_status = Some(status);
                    let ctl = verdict::ControlVerdict { id, status };
                    (r.status, r.reason) = verdict::against_control((r.status, r.reason.take()), &ctl);
                    ready.push(r);
                }
                Some((None, _)) => st.waiting.push(r),
            }
        }
        st.done.extend(ready.iter().cloned());
        ready
    }

    /// Every judged cell; cells whose control never finished keep their own verdict.
    fn into_results(self) -> Vec<CellResult> {
        let st = self.state.into_inner().unwrap();
        st.done.into_iter().chain(st.waiting).collect()
    }
}

impl Runner<'_> {
    fn op_id(&self, kind: char) -> OpPaths {
        OpPaths::new(&format!("{kind}{}", self.next_op.fetch_add(1, Ordering::SeqCst)))
    }

    fn slot(&self, kernel: &str) -> VmHandle {
        self.vms.lock().unwrap().entry(kernel.to_string()).or_default().clone()
    }

    /// Boots (once) the VM named `vm` (see [`target_vm`]); returns its boot
    /// time or why it is down.
    fn ensure_vm(&self, vm: &str) -> Result<f64, String> {
        let kernel = vm;
        let kind = kind_of_vm(vm);
        let slot = self.slot(vm);
        let mut guard = slot.lock().unwrap();
        if let Some((slot, secs)) = guard.as_ref() {
            return match slot {
                Slot::Up(_) => Ok(*secs),
                Slot::Down(why) => Err(why.clone()),
            };
        }
        if crate::vm::reaper::interrupted() {
            return Err("crtest was interrupted".into());
        }
        self.reporter.event(&Event::Booting { kernel: kernel.into() });
        let k = &self.setup.kernels[kind];
        // Both guests of a kind share its saved state: the spec names the kind, not the VM.
        let spec = BootSpec {
            kernel_id: kind.into(),
            kernel_image: self.setup.boot_images.get(kind).cloned().unwrap_or_else(|| k.vmlinuz.clone()),
            initrd: self.setup.images[kind].initrd.clone(),
            share: self.work.join(format!("vm-{vm}")),
        };
        let notice = |msg: String| self.reporter.event(&Event::Notice(msg));
        let (slot, secs, result) = match vmstate::start(&spec, &self.setup.vm, self.setup.states.as_ref(), &notice) {
            Ok(vm) => {
                self.reporter.event(&Event::Booted {
                    kernel: kernel.into(),
                    release: vm.release.clone(),
                    secs: vm.boot_secs,
                    start: vm.start,
                });
                let secs = vm.boot_secs;
                self.boot_times.lock().unwrap().insert(kernel.into(), secs);
                (Slot::Up(Box::new(vm)), secs, Ok(secs))
            }
            Err(e) => {
                let msg = e.to_string();
                self.reporter.event(&Event::BootFailed { kernel: kernel.into(), error: msg.clone() });
                let record = VmRecord {
                    kernel: kernel.into(),
                    release: k.release.clone(),
                    boot_secs: None,
                    start: None,
                    console: msg.clone(),
                };
                self.consoles.lock().unwrap().insert(kernel.into(), record);
                (Slot::Down(msg.clone()), 0.0, Err(msg))
            }
        };
        *guard = Some((slot, secs));
        result
    }

    /// Runs a script on `kernel`'s VM. A VM-level fault marks the VM down.
    fn guest(&self, kernel: &str, label: &str, script: &str) -> Result<crate::vm::qemu::CmdResult, String> {
        let handle = self.slot(kernel);
        let mut guard = handle.lock().unwrap();
        let (slot, _) = guard.as_mut().ok_or("VM not booted")?;
        if crate::vm::reaper::interrupted() {
            return Err("crtest was interrupted".into());
        }
        let vm = match slot {
            Slot::Up(vm) => vm,
            Slot::Down(why) => return Err(format!("VM unusable: {}", first_line(why))),
        };
        // One command at a time per VM; other VMs run in parallel meanwhile.
        // Scripts time out on their own after `operation`; the host waits a
        // little longer so a script's own report wins over a VM-level timeout.
        let result = vm.run(label, script, self.setup.timeouts.operation + GUEST_GRACE);
        match result {
            Ok(r) => {
                self.reporter.event(&Event::Op {
                    kernel: kernel.into(),
                    label: label.into(),
                    ok: r.rc == 0,
                    secs: r.secs,
                });
                Ok(r)
            }
            Err(e) => {
                let msg = e.to_string();
                if let Slot::Up(vm) = std::mem::replace(slot, Slot::Down(msg.clone())) {
                    self.keep_console(kernel, *vm);
                }
                Err(msg)
            }
        }
    }

    /// Powers off VM `name` (when up) and keeps its console log for the report.
    fn shutdown(&self, name: &str) {
        let taken = self.vms.lock().unwrap().remove(name).and_then(|h| h.lock().unwrap().take());
        if let Some((Slot::Up(vm), _)) = taken {
            self.keep_console(name, *vm);
        }
    }

    /// Powers a VM off and keeps its console log for the report.
    fn keep_console(&self, name: &str, vm: Vm) {
        let kernel = name.to_string();
        let record = VmRecord {
            kernel: kernel.clone(),
            release: vm.release.clone(),
            boot_secs: Some(vm.boot_secs),
            start: Some(vm.start),
            console: String::new(),
        };
        let console = vm.shutdown();
        self.consoles.lock().unwrap().insert(kernel, VmRecord { console, ..record });
    }

    fn share_out(&self, kernel: &str, op: &OpPaths) -> PathBuf {
        self.work.join(format!("vm-{kernel}")).join("out").join(&op.id)
    }

    /// References and dumps of `workloads` (dump index, name) on `kernel`.
    fn source_phase(&self, kernel: &str, workloads: &[(usize, &str)]) -> Vec<(String, (OpRecord, OpRecord))> {
        if let Err(why) = self.ensure_vm(kernel) {
            let broken = OpRecord::broken(format!("VM for {kernel} did not boot: {}", first_line(&why)));
            return workloads.iter().map(|(_, w)| (w.to_string(), (broken.clone(), broken.clone()))).collect();
        }
        let lib = &self.setup.library;
        let step_ms = self.setup.step_ms;
        let (unsupported, workloads): (Vec<_>, Vec<_>) = workloads
            .iter()
            .partition(|(_, w)| self.unsupported(kernel, lib.get(w).expect("plan validated")).is_some());
        let mut out: Vec<(String, (OpRecord, OpRecord))> = unsupported
            .iter()
            .map(|(_, w)| {
                let why = self.unsupported(kernel, lib.get(w).expect("plan validated")).unwrap_or_default();
                let rec = OpRecord { outcome: Outcome::Unsupported(why), ..OpRecord::broken(String::new()) };
                (w.to_string(), (rec.clone(), rec))
            })
            .collect();
        // Start every reference run first: they sleep most of the time and run alongside the dumps.
        let refs: Vec<(OpPaths, Result<(), String>)> = workloads
            .iter()
            .map(|(_, w)| {
                let wl = lib.get(w).expect("plan validated");
                let op = self.op_id('r');
                let started = self.guest(
                    kernel,
                    &format!("start reference {w}"),
                    &engine::start_script(&op, wl, wl.steps, step_ms, None),
                );
                (
                    op,
                    started.and_then(|r| {
                        if r.rc == 0 {
                            Ok(())
                        } else {
                            Err(format!("starting the reference run failed: {}", r.output.trim()))
                        }
                    }),
                )
            })
            .collect();
        let dumps: Vec<OpRecord> = workloads.iter().map(|(i, w)| self.dump(kernel, *i, w)).collect();
        let timeout = self.setup.timeouts.operation.as_secs() as u32;
        for ((op, started), ((_, w), dump)) in refs.into_iter().zip(workloads.iter().zip(dumps)) {
            let reference = match started {
                Err(e) => OpRecord::broken(e),
                Ok(()) => {
                    let pid = read_pid(&self.share_out(kernel, &op));
                    let t = Instant::now();
                    let r = pid.ok_or("reference run wrote no pid".to_string()).and_then(|pid| {
                        self.guest(
                            kernel,
                            &format!("finish reference {w}"),
                            &engine::wait_script(&op, &op, lib.get(w).expect("plan validated"), pid, timeout),
                        )
                    });
                    let outcome = match r {
                        Err(e) => Outcome::Broken(e),
                        Ok(r) if r.rc == rc::OK => {
                            let transcript = self.share_out(kernel, &op).join("transcript");
                            verdict::reference_problem(&std::fs::read_to_string(transcript).unwrap_or_default())
                                .map_or(Outcome::Ok, Outcome::Broken)
                        }
                        Ok(r) => Outcome::Broken(format!(
                            "the uninterrupted reference run did not finish (script rc {}): {}",
                            r.rc,
                            last_line(&self.share_out(kernel, &op).join("transcript"))
                        )),
                    };
                    OpRecord {
                        outcome,
                        secs: t.elapsed().as_secs_f64(),
                        out: Some(self.share_out(kernel, &op)),
                        op: Some(op),
                        pid: None,
                        step: None,
                    }
                }
            };
            out.push((w.to_string(), (reference, dump)));
        }
        out
    }

    fn dump(&self, kernel: &str, index: usize, w: &str) -> OpRecord {
        let wl = self.setup.library.get(w).expect("plan validated");
        let op = self.op_id('d');
        let out = self.share_out(kernel, &op);
        let timeout = self.setup.timeouts.operation.as_secs() as u32;
        let started = Instant::now();
        let after = crate::plan::dump_point(self.setup.seed, w, kernel, wl.dump_after, wl.steps);
        let start = engine::start_script(&op, wl, wl.steps, self.setup.step_ms, Some(pid_base(index)));
        let result = self.guest(kernel, &format!("start {w} for dump"), &start).and_then(|r| {
            if r.rc != 0 {
                return Err(format!("starting the workload failed: {}", r.output.trim()));
            }
            self.guest(kernel, &format!("dump {w} after step {after}"), &engine::dump_script(&op, wl, after, timeout))
        });
        let outcome = match result {
            Err(e) => Outcome::Broken(e),
            Ok(r) => match r.rc {
                rc::OK => Outcome::Ok,
                rc::DUMP_FAILED => Outcome::Failed(criu_error(&out.join("dump.log"), "criu dump")),
                _ => Outcome::Broken(format!("dump script rc {}: {}", r.rc, r.output.trim())),
            },
        };
        OpRecord {
            outcome,
            secs: started.elapsed().as_secs_f64(),
            pid: read_pid(&out),
            out: Some(out),
            op: Some(op),
            step: Some(after),
        }
    }

    /// Restores every cell's image set on `kernel` and judges the cells.
    fn target_phase(
        &self,
        kernel: &str,
        cells: &[&Cell],
        src: &BTreeMap<(String, String), (OpRecord, OpRecord)>,
        artifacts: &Path,
    ) -> Vec<CellResult> {
        waves(cells).iter().flat_map(|wave| self.restore_wave(kernel, wave, src, artifacts)).collect()
    }

    /// Restores and finishes one wave of cells on `kernel`.
    fn restore_wave(
        &self,
        kernel: &str,
        cells: &[&Cell],
        src: &BTreeMap<(String, String), (OpRecord, OpRecord)>,
        artifacts: &Path,
    ) -> Vec<CellResult> {
        let boot = self.ensure_vm(kernel);
        let timeout = self.setup.timeouts.operation.as_secs() as u32;
        // Restore all first (PIDs stay free), then wait for all.
        let mut pending = Vec::new();
        for cell in cells {
            let (reference, dump) = &src[&(cell.workload.clone(), cell.src_kind())];
            let mut stages = vec![
                StageRecord { stage: Stage::BootSrc, outcome: Outcome::Ok, secs: self.boot_secs(&cell.src_kind()) },
                reference.record(Stage::Reference),
                dump.record(Stage::Dump),
            ];
            let mut conversion = Vec::new();
            let ready = reference.outcome == Outcome::Ok && dump.outcome == Outcome::Ok;
            let restore_op = self.op_id('x');
            if ready {
                let (transfer, convert) = self.transfer(kernel, &cell.src_kind(), dump, &restore_op);
                stages.push(transfer);
                let convert_ok = convert.as_ref().map(|(stage, _)| stage.outcome == Outcome::Ok);
                if let Some((stage, steps)) = convert {
                    stages.push(stage);
                    conversion = steps;
                }
                let wl = self.setup.library.get(&cell.workload).expect("plan validated");
                stages.push(StageRecord {
                    stage: Stage::BootDst,
                    outcome: match &boot {
                        Ok(_) => self.unsupported(kernel, wl).map_or(Outcome::Ok, Outcome::Unsupported),
                        Err(e) => Outcome::Broken(format!("VM for {kernel} did not boot: {}", first_line(e))),
                    },
                    secs: *boot.as_ref().unwrap_or(&0.0),
                });
                if stages.iter().all(|s| s.outcome == Outcome::Ok) && convert_ok == Some(true) {
                    stages.push(self.restore(kernel, cell, &restore_op, dump));
                    // Further rounds right away, while the restored program is still mid-run.
                    if self.setup.iters > 1 && stages.last().is_some_and(|s| s.outcome == Outcome::Ok) {
                        stages.push(self.iterate(kernel, cell, dump));
                    }
                }
            }
            pending.push((cell, stages, conversion, restore_op, Instant::now()));
        }
        pending
            .into_iter()
            .map(|(cell, mut stages, conversion, restore_op, restored_at)| {
                let (reference, dump) = &src[&(cell.workload.clone(), cell.src_kind())];
                let restored = stages.iter().any(|s| s.stage == Stage::Restore && s.outcome == Outcome::Ok);
                if restored && stages.last().is_some_and(|s| s.outcome == Outcome::Ok) {
                    // The restored programs all run at once: the deadline counts from each
                    // restore, so several hung programs cost one timeout, not one each.
                    let left = timeout.saturating_sub(restored_at.elapsed().as_secs() as u32).max(5);
                    stages.push(self.finish(kernel, cell, dump, &restore_op, left));
                }
                let expected = reference.out.as_ref().and_then(|d| std::fs::read_to_string(d.join("transcript")).ok());
                let actual = std::fs::read_to_string(self.share_out(kernel, &restore_op).join("transcript")).ok();
                let (status, reason) = if stages
                    .last()
                    .is_some_and(|s| s.stage == Stage::Finish && s.outcome == Outcome::Ok)
                {
                    let t = Instant::now();
                    let before = dump.out.as_ref().and_then(|d| std::fs::read_to_string(d.join("before.snap")).ok());
                    let after = std::fs::read_to_string(self.share_out(kernel, &restore_op).join("after.snap")).ok();
                    let (e, a) = (expected.as_deref(), actual.as_deref());
                    let mem = crate::verdict::memcheck::Digests::load(
                        dump.out.as_deref(),
                        &self.share_out(kernel, &restore_op),
                    );
                    let v = verdict::judge_with_state(&stages, e, a, before.as_deref(), after.as_deref(), &mem);
                    stages.push(StageRecord {
                        stage: Stage::Compare,
                        outcome: Outcome::Ok,
                        secs: t.elapsed().as_secs_f64(),
                    });
                    v
                } else {
                    verdict::judge(&stages, None, None)
                };
                let dir =
                    self.save_artifacts(cell, status, artifacts, reference, dump, &self.share_out(kernel, &restore_op));
                CellResult {
                    cell: (*cell).clone(),
                    status,
                    reason,
                    stages,
                    conversion,
                    artifacts: dir,
                    dump_after: dump.step,
                    control_status: None,
                    known: None,
                }
            })
            .collect()
    }

    /// Why `w` cannot run on `kernel` (an engine feature it needs is missing),
    /// probing every feature of the library once per kernel.
    fn unsupported(&self, kernel: &str, w: &crate::config::workload::Workload) -> Option<String> {
        if w.features.is_empty() {
            return None;
        }
        if !self.features.lock().unwrap().contains_key(kernel) {
            let mut all: Vec<&String> = self.setup.library.workloads.iter().flat_map(|w| &w.features).collect();
            all.sort();
            all.dedup();
            let names: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
            let found = match self.guest(kernel, "criu check --feature", &engine::feature_script(&names)) {
                Ok(r) => engine::parse_features(&r.output),
                Err(e) => return Some(format!("could not probe engine features: {}", first_line(&e))),
            };
            self.features.lock().unwrap().insert(kernel.to_string(), found);
        }
        let have = &self.features.lock().unwrap()[kernel];
        let missing: Vec<&str> =
            w.features.iter().filter(|f| have.get(*f) != Some(&true)).map(String::as_str).collect();
        (!missing.is_empty()).then(|| {
            format!(
                "`criu check --feature {}` fails on kernel {kernel} ({})",
                missing.join(", "),
                self.setup.engines[kind_of_vm(kernel)]
            )
        })
    }

    fn boot_secs(&self, kernel: &str) -> f64 {
        self.boot_times.lock().unwrap().get(kernel).copied().unwrap_or(0.0)
    }

    /// Copies the workload's files to the target's share and converts the
    /// images into it: the convert stage and every step it ran.
    fn transfer(
        &self,
        kernel: &str,
        dump_kind: &str,
        dump: &OpRecord,
        restore_op: &OpPaths,
    ) -> (StageRecord, Option<(StageRecord, Vec<StepRecord>)>) {
        let src = dump.out.as_ref().expect("ok dump has a dir");
        let dst = self.work.join(format!("vm-{kernel}")).join("in").join(&restore_op.id);
        let t = Instant::now();
        // An interrupted run's scratch is being removed: do not recreate it.
        let copied = match crate::vm::reaper::interrupted() {
            true => Err(std::io::Error::other("crtest was interrupted")),
            false => {
                std::fs::create_dir_all(&dst).and_then(|_| std::fs::copy(src.join("files.tar"), dst.join("files.tar")))
            }
        };
        let secs = t.elapsed().as_secs_f64();
        if let Err(e) = copied {
            let rec = StageRecord {
                stage: Stage::Transfer,
                outcome: Outcome::Broken(format!("copying the workload's files: {e}")),
                secs,
            };
            return (rec, None);
        }
        let t = Instant::now();
        let (steps, under_test) = match self.chain(dump_kind, kind_of_vm(kernel)) {
            Ok(chain) => {
                let under_test = chain.iter().any(|s| s.converter.under_test());
                let scratch = dst.join("steps");
                (convert::run_chain(&chain, &src.join("img"), &scratch, &dst.join("img")), under_test)
            }
            Err(e) => {
                let outcome = Outcome::Broken(format!("{e:#}"));
                let rec = StageRecord { stage: Stage::Convert, outcome, secs: 0.0 };
                return (StageRecord { stage: Stage::Transfer, outcome: Outcome::Ok, secs }, Some((rec, vec![])));
            }
        };
        let _ = std::fs::remove_dir_all(dst.join("steps"));
        let n = steps.len();
        let outcome = match steps.iter().enumerate().find(|(_, s)| !s.ok) {
            None => Outcome::Ok,
            Some((i, s)) => {
                let m = format!("step {}/{n} {}: {}", i + 1, s.label(), s.message.as_deref().unwrap_or(""));
                // A converter is part of what is tested; a failed copy or a
                // tool that could not run is crtest's fault.
                if under_test && !s.broken {
                    Outcome::Failed(m)
                } else {
                    Outcome::Broken(m)
                }
            }
        };
        let convert = StageRecord { stage: Stage::Convert, outcome, secs: t.elapsed().as_secs_f64() };
        (StageRecord { stage: Stage::Transfer, outcome: Outcome::Ok, secs }, Some((convert, steps)))
    }

    /// The conversion steps from the format of `dump_kind`'s engine to that
    /// of `restore_kind`'s: the chain between formats, or one step (the
    /// matrix's converter, else identity) within one format.
    fn chain(&self, dump_kind: &str, restore_kind: &str) -> anyhow::Result<Vec<convert::Step>> {
        let formats = &self.setup.formats;
        let engines = (&self.setup.engine_names[dump_kind], &self.setup.engine_names[restore_kind]);
        let format = |engine: &String| {
            formats.of_engine(engine).ok_or_else(|| anyhow::anyhow!("engine {engine} has no known image format"))
        };
        // One engine on both sides needs no chain, whatever its format is called.
        let (from, to) = match engines {
            (a, b) if a == b => (format(a).unwrap_or_else(|_| a.clone()), format(b).unwrap_or_else(|_| b.clone())),
            (a, b) => (format(a)?, format(b)?),
        };
        let specs = formats.chain(&from, &to).map_err(anyhow::Error::msg)?;
        let within: Box<dyn Converter> = match &self.setup.converter_command {
            None => Box::new(convert::Identity),
            Some(c) => Box::new(convert::External::new(c.clone())),
        };
        convert::steps(&specs, (&from, &to), within, &self.setup.crits)
    }

    fn restore(&self, kernel: &str, cell: &Cell, op: &OpPaths, dump: &OpRecord) -> StageRecord {
        let wl = self.setup.library.get(&cell.workload).expect("plan validated");
        let (Some(dump_op), Some(pid)) = (&dump.op, dump.pid) else {
            return StageRecord {
                stage: Stage::Restore,
                outcome: Outcome::Broken("dump left no pid".into()),
                secs: 0.0,
            };
        };
        let t = Instant::now();
        let outcome =
            match self.guest(kernel, &format!("restore {}", cell.id), &engine::restore_script(op, dump_op, wl, pid)) {
                Err(e) => Outcome::Broken(e),
                Ok(r) if r.rc == rc::OK => Outcome::Ok,
                Ok(r) if r.rc == rc::RESTORE_FAILED => {
                    Outcome::Failed(criu_error(&self.share_out(kernel, op).join("restore.log"), "criu restore"))
                }
                Ok(r) => Outcome::Broken(format!("restore script rc {}: {}", r.rc, r.output.trim())),
            };
        StageRecord { stage: Stage::Restore, outcome, secs: t.elapsed().as_secs_f64() }
    }

    /// Rounds 2..=iters: dump and restore again in place, a few steps apart,
    /// each required to keep every fd and mapping.
    fn iterate(&self, kernel: &str, cell: &Cell, dump: &OpRecord) -> StageRecord {
        const STEPS_APART: u32 = 3;
        let wl = self.setup.library.get(&cell.workload).expect("plan validated");
        let timeout = self.setup.timeouts.operation.as_secs() as u32;
        let t = Instant::now();
        let (Some(dir_op), Some(pid)) = (&dump.op, dump.pid) else {
            return StageRecord {
                stage: Stage::Iterate,
                outcome: Outcome::Broken("dump left no pid".into()),
                secs: 0.0,
            };
        };
        let mut outcome = Outcome::Ok;
        for round in 2..=self.setup.iters {
            let op = self.op_id('i');
            let out = self.share_out(kernel, &op);
            let script = engine::iterate_script(&op, dir_op, wl, pid, STEPS_APART, wl.steps, timeout);
            outcome = match self.guest(kernel, &format!("iteration {round} of {}", cell.id), &script) {
                Err(e) => Outcome::Broken(e),
                Ok(r) => match r.rc {
                    rc::OK => match (
                        std::fs::read_to_string(out.join("before.snap")),
                        std::fs::read_to_string(out.join("after.snap")),
                    ) {
                        (Ok(b), Ok(a)) => match crate::verdict::snapshot::compare(&b, &a) {
                            None => {
                                verdict::round_memory(&crate::verdict::memcheck::Digests::load(Some(&out), &out), round)
                            }
                            Some(d) => Outcome::Failed(format!("round {round}: process state: {d}")),
                        },
                        _ => Outcome::Broken(format!("round {round}: no state snapshot")),
                    },
                    rc::DUMP_FAILED => {
                        Outcome::Failed(format!("round {round}: {}", criu_error(&out.join("dump.log"), "criu dump")))
                    }
                    rc::RESTORE_FAILED => Outcome::Failed(format!(
                        "round {round}: {}",
                        criu_error(&out.join("restore.log"), "criu restore")
                    )),
                    // The workload is too close to its end for another round.
                    rc::NO_ROOM => break,
                    rc::EXITED_BEFORE_DUMP => {
                        Outcome::Failed(format!("round {round}: restored program exited early: {}", r.output.trim()))
                    }
                    rc::DUMP_POINT_TIMEOUT => {
                        Outcome::Failed(format!("round {round}: restored program stalled: {}", r.output.trim()))
                    }
                    other => {
                        Outcome::Broken(format!("round {round}: iteration script rc {other}: {}", r.output.trim()))
                    }
                },
            };
            if outcome != Outcome::Ok {
                break;
            }
        }
        StageRecord { stage: Stage::Iterate, outcome, secs: t.elapsed().as_secs_f64() }
    }

    fn finish(&self, kernel: &str, cell: &Cell, dump: &OpRecord, op: &OpPaths, timeout: u32) -> StageRecord {
        let t = Instant::now();
        let (Some(dump_op), Some(pid)) = (&dump.op, dump.pid) else {
            return StageRecord {
                stage: Stage::Finish,
                outcome: Outcome::Broken("dump left no pid".into()),
                secs: 0.0,
            };
        };
        let wl = self.setup.library.get(&cell.workload).expect("plan validated");
        let script = engine::wait_script(op, dump_op, wl, pid, timeout);
        let last = || last_line(&self.share_out(kernel, op).join("transcript"));
        let outcome = match self.guest(kernel, &format!("finish {}", cell.id), &script) {
            Err(e) => Outcome::Broken(e),
            Ok(r) => match r.rc {
                rc::OK => Outcome::Ok,
                rc::DIED => {
                    Outcome::Failed(format!("restored program exited before `done`; last transcript line `{}`", last()))
                }
                rc::FINISH_TIMEOUT => Outcome::Failed(format!(
                    "restored program did not finish within {timeout}s; last transcript line `{}`",
                    last()
                )),
                other => Outcome::Broken(format!("wait script rc {other}: {}", r.output.trim())),
            },
        };
        StageRecord { stage: Stage::Finish, outcome, secs: t.elapsed().as_secs_f64() }
    }

    /// Keeps transcripts and engine logs of every cell, and the images of
    /// cells that did not pass.
    fn save_artifacts(
        &self,
        cell: &Cell,
        status: Status,
        root: &Path,
        reference: &OpRecord,
        dump: &OpRecord,
        restored: &Path,
    ) -> Option<String> {
        if crate::vm::reaper::interrupted() {
            return None;
        }
        let rel = format!("cells/{}/{}--{}", cell.workload, cell.src_kind(), cell.dst_kind());
        let dir = root.join(&rel);
        std::fs::create_dir_all(&dir).ok()?;
        let copy = |from: Option<PathBuf>, name: &str| {
            if let Some(f) = from.filter(|f| f.is_file()) {
                let _ = std::fs::copy(f, dir.join(name));
            }
        };
        copy(reference.out.as_ref().map(|d| d.join("transcript")), "reference.transcript");
        copy(dump.out.as_ref().map(|d| d.join("dump.log")), "dump.log");
        copy(Some(restored.join("restore.log")), "restore.log");
        copy(Some(restored.join("transcript")), "restored.transcript");
        copy(Some(restored.join("stdout")), "restored.stdout");
        copy(Some(restored.join("dmesg")), "restore.dmesg");
        copy(dump.out.as_ref().map(|d| d.join("dmesg")), "dump.dmesg");
        copy(dump.out.as_ref().map(|d| d.join("before.snap")), "dump.state");
        copy(Some(restored.join("after.snap")), "restore.state");
        crate::verdict::memcheck::keep(dump.out.as_deref(), restored, &dir, status == Status::Pass);
        if status != Status::Pass {
            if let Some(img) = dump.out.as_ref().map(|d| d.join("img")).filter(|d| d.is_dir()) {
                // Big memory images would swamp the results; say where they were instead.
                let size = crate::util::fsutil::dir_size(&img);
                if size <= IMAGES_KEPT_MAX {
                    let _ = crate::util::fsutil::copy_dir(&img, &dir.join("images"));
                } else {
                    let note = format!("images not kept: {} MiB (limit {} MiB)\n", size >> 20, IMAGES_KEPT_MAX >> 20);
                    let _ = std::fs::write(dir.join("images.txt"), note);
                }
            }
        }
        Some(rel)
    }

    /// Powers every VM off and returns their console logs.
    fn shutdown_all(&self) -> Vec<VmRecord> {
        let vms = std::mem::take(&mut *self.vms.lock().unwrap());
        for (name, handle) in vms {
            let taken = handle.lock().unwrap().take();
            if let Some((Slot::Up(vm), _)) = taken {
                self.keep_console(&name, *vm);
            }
        }
        std::mem::take(&mut *self.consoles.lock().unwrap()).into_values().collect()
    }
}

/// Splits a target's cells into waves holding at most one cell per workload.
/// Two restored copies of one workload would share a guest and clash over
/// what the workload owns there (loopback ports, pty indexes, IPC keys), a
/// harness artefact that must never read as a failure; different workloads
/// run side by side.
fn waves<'c>(cells: &[&'c Cell]) -> Vec<Vec<&'c Cell>> {
    let mut waves: Vec<Vec<&Cell>> = Vec::new();
    for cell in cells {
        match waves.iter_mut().find(|w| w.iter().all(|c| c.workload != cell.workload)) {
            Some(wave) => wave.push(cell),
            None => waves.push(vec![cell]),
        }
    }
    waves
}

fn read_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()
}

fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().last().map(str::to_string))
        .unwrap_or_else(|| "(no transcript)".into())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// The engine's error line from its log, or a note that it left none.
fn criu_error(log: &Path, what: &str) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            engine::error_line(&text).unwrap_or_else(|| format!("{what} failed without an Error line in its log"))
        }
        Err(_) => format!("{what} failed and left no log"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_never_hold_one_workload_twice() {
        let mk = |w: &str, s: &str| Cell {
            id: format!("{w}/{s}->6.1"),
            workload: w.into(),
            src: s.into(),
            dst: "6.1".into(),
            src_engine: None,
            dst_engine: None,
            skip: None,
            control: None,
            control_only: false,
        };
        let cells = [mk("tcp", "5.10"), mk("pty", "5.10"), mk("tcp", "6.1"), mk("tcp", "6.12"), mk("pty", "6.1")];
        let refs: Vec<&Cell> = cells.iter().collect();
        let w = waves(&refs);
        assert_eq!(w.len(), 3);
        assert_eq!(w.iter().map(Vec::len).sum::<usize>(), 5);
        for wave in &w {
            let mut names: Vec<&str> = wave.iter().map(|c| c.workload.as_str()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), wave.len());
        }
    }

    fn result(id: &str, control: Option<&str>, status: Status) -> CellResult {
        let (w, pair) = id.split_once('/').unwrap();
        let (src, dst) = pair.split_once("->").unwrap();
        let mut r = crate::result::fixture(w, src, dst, status);
        r.cell.control = control.map(str::to_string);
        r.reason = Some(format!("{id} reason"));
        r
    }

    #[test]
    fn gate_holds_a_cell_until_its_control_is_judged() {
        let cells = [result("w/6.1->6.12", Some("w/6.1->6.1"), Status::Fail), result("w/6.1->6.1", None, Status::Fail)];
        let plan = Plan { cells: cells.iter().map(|c| c.cell.clone()).collect(), slots: Default::default() };
        let gate = ControlGate::new(&plan);
        assert!(gate.finished(cells[0].clone()).is_empty(), "the cross cell waits for its control");
        let ready = gate.finished(cells[1].clone());
        let ids: Vec<&str> = ready.iter().map(|r| r.cell.id.as_str()).collect();
        assert_eq!(ids, ["w/6.1->6.12", "w/6.1->6.1"]);
        assert_eq!((ready[0].status, ready[0].control_status), (Status::ControlFail, Some(Status::Fail)));
        assert_eq!(ready[1].status, Status::Fail, "a control is judged on its own");
        assert_eq!(gate.into_results().len(), 2);
        // With a passing control the FAIL stands.
        let gate = ControlGate::new(&plan);
        let ready = gate.finished(result("w/6.1->6.1", None, Status::Pass));
        assert_eq!(ready.len(), 1);
        let ready = gate.finished(cells[0].clone());
        assert_eq!((ready[0].status, ready[0].control_status), (Status::Fail, Some(Status::Pass)));
    }
}

//! The source phase: on each source kind's guest, start every reference run,
//! then dump each workload once at its dump point, then wait for the
//! references to finish. The guest is powered off when its dumps are done.

use super::{read_pid, Ctx, OpRecord};
use crate::config::mode::Mode;
use crate::engine::{GuestOp, OpPaths};
use crate::plan::Plan;
use crate::verdict::{self, Outcome};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// A (workload, source kind)'s reference run and dump.
#[derive(Debug, Clone)]
pub struct Dumped {
    pub reference: OpRecord,
    pub dump: OpRecord,
}

/// Every dump, by (workload in its mode, source kind): see `Cell::label`.
pub type Dumps = BTreeMap<(String, String), Dumped>;

/// One dump to do on a source guest.
struct Job<'p> {
    /// The workload in its mode (`Cell::label`).
    label: String,
    workload: &'p str,
    mode: Mode,
    pid_slot: usize,
    after: u32,
}

/// Starts `w` for a dump in its PID range: the first op of every dump.
pub fn start_for_dump(ctx: &Ctx, vm: &str, op: &OpPaths, w: &str, pid_slot: usize) -> Outcome {
    ctx.run_op(vm, &GuestOp::start_dump(op, ctx.workload(w), ctx.setup.step_ms, pid_base(pid_slot)))
}

/// First PID of the range given to PID slot `i` (see init.sh `tune`).
fn pid_base(i: usize) -> u32 {
    200_000 + 10_000 * i as u32
}

/// Runs the source phase of every source kind of `plan`, in parallel.
pub fn all(ctx: &Ctx, plan: &Plan) -> Dumps {
    let sources: BTreeSet<String> = plan.runnable().map(|c| c.src_kind()).collect();
    let sources: Vec<String> = sources.into_iter().collect();
    sources
        .par_iter()
        .flat_map_iter(|kind| {
            let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
            for c in plan.runnable().filter(|c| &c.src_kind() == kind) {
                let route = c.route();
                let after = route.dump_after.expect("the run's plan is seeded");
                let (label, workload, mode, pid_slot) = (c.label(), c.workload.as_str(), c.mode, route.pid_slot);
                jobs.entry(label.clone()).or_insert(Job { label, workload, mode, pid_slot, after });
            }
            let jobs: Vec<Job> = jobs.into_values().collect();
            let records = phase(ctx, kind, &jobs);
            // Its dumps are done and the dumped trees gone: free the memory for target guests.
            if !ctx.setup.restore_in_dumping_guest {
                ctx.pool.shutdown(kind);
            }
            records.into_iter().map(|(w, d)| ((w, kind.clone()), d))
        })
        .collect()
}

/// References and dumps of `jobs` on source VM `vm`: one reference run per
/// workload, whatever its modes, and one dump per job.
fn phase(ctx: &Ctx, vm: &str, jobs: &[Job]) -> Vec<(String, Dumped)> {
    let both = |r: OpRecord| Dumped { reference: r.clone(), dump: r };
    if let Err(why) = ctx.pool.ensure(vm) {
        let broken = OpRecord::broken(format!("VM for {vm} did not boot: {}", super::first_line(&why.0)));
        return jobs.iter().map(|j| (j.label.clone(), both(broken.clone()))).collect();
    }
    let unsupported = |j: &Job| ctx.unsupported(vm, ctx.workload(j.workload), j.mode);
    let (skipped, jobs): (Vec<&Job>, Vec<&Job>) = jobs.iter().partition(|j| unsupported(j).is_some());
    let mut out: Vec<(String, Dumped)> = skipped
        .iter()
        .map(|j| {
            let rec = OpRecord {
                outcome: Outcome::Unsupported(unsupported(j).unwrap_or_default()),
                ..OpRecord::broken(String::new())
            };
            (j.label.clone(), both(rec))
        })
        .collect();
    // Start every reference run first: they sleep most of the time and run alongside the dumps.
    let workloads: BTreeSet<&str> = jobs.iter().map(|j| j.workload).collect();
    let refs: BTreeMap<&str, (OpPaths, Outcome)> =
        workloads.into_iter().map(|w| (w, start_reference(ctx, vm, w))).collect();
    // Linked modes dump later, with the target guest up (`linked.rs`): here only their reference.
    let dumps: Vec<OpRecord> = jobs
        .iter()
        .map(|j| match j.mode.is_linked() {
            true => OpRecord::broken(format!("mode {} dumps in the linked phase", j.mode)),
            false => dump(ctx, vm, j),
        })
        .collect();
    let references: BTreeMap<&str, OpRecord> = refs
        .into_iter()
        .map(|(w, (op, started))| {
            let rec = match started {
                Outcome::Ok => finish_reference(ctx, vm, w, op),
                other => OpRecord { outcome: other, ..OpRecord::broken(String::new()) },
            };
            (w, rec)
        })
        .collect();
    for (j, dump) in jobs.iter().zip(dumps) {
        out.push((j.label.clone(), Dumped { reference: references[j.workload].clone(), dump }));
    }
    out
}

fn start_reference(ctx: &Ctx, vm: &str, w: &str) -> (OpPaths, Outcome) {
    let op = ctx.op_id('r');
    let started = ctx.run_op(vm, &GuestOp::start_reference(&op, ctx.workload(w), ctx.setup.step_ms));
    (op, started)
}

fn finish_reference(ctx: &Ctx, vm: &str, w: &str, op: OpPaths) -> OpRecord {
    let out = ctx.pool.outbox(vm, &op);
    let t = Instant::now();
    let outcome = match read_pid(&out) {
        None => Outcome::Broken("reference run wrote no pid".into()),
        Some(pid) => match ctx.run_op(vm, &GuestOp::wait_reference(&op, ctx.workload(w), pid, ctx.op_timeout())) {
            Outcome::Ok => {
                let transcript = std::fs::read_to_string(out.join("transcript")).unwrap_or_default();
                verdict::reference_problem(&transcript).map_or(Outcome::Ok, Outcome::Broken)
            }
            other => other,
        },
    };
    OpRecord { outcome, secs: t.elapsed().as_secs_f64(), out: Some(out), op: Some(op), pid: None, step: None }
}

fn dump(ctx: &Ctx, vm: &str, job: &Job) -> OpRecord {
    let wl = ctx.workload(job.workload);
    let op = ctx.op_id('d');
    let started = Instant::now();
    let dump = super::modes::source_dump(job.mode, &op, wl, job.after, ctx.op_timeout());
    let outcome = match start_for_dump(ctx, vm, &op, job.workload, job.pid_slot) {
        Outcome::Ok => ctx.run_op(vm, &dump),
        other => other,
    };
    OpRecord::dumped(ctx, vm, op, outcome, started, job.after)
}

//! One cell on its target guest, as a state machine:
//! transfer -> convert -> boot target -> restore -> iterate -> (wait for the
//! wave) -> finish -> judge. Each state runs one stage and records it; a
//! stage that does not end Ok sends the cell to judge.

use super::artifacts;
use super::modes::{self, Pages};
use super::pool::GuestError;
use super::source::{Dumped, Dumps};
use super::{first_line, Ctx, OpRecord};
use crate::convert::{self, Converter, StepRecord};
use crate::engine::{GuestOp, OpPaths, ScriptExit};
use crate::plan::Cell;
use crate::result::CellResult;
use crate::util::error;
use crate::verdict::{self, Outcome, Stage, StageRecord, Status};
use crate::verdict::{memcheck::Digests, snapshot};
use std::path::Path;
use std::time::Instant;

/// Where a cell is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Transfer,
    Convert,
    BootTarget,
    Restore,
    Iterate,
    /// Restored and running: the wave's other cells restore before any
    /// finishes, so their programs run side by side.
    Restored,
    Finish,
    Judge,
    Done,
}

/// A cell on its way through the states.
pub struct CellRun<'c> {
    pub cell: &'c Cell,
    vm: String,
    src: &'c Dumped,
    pub state: State,
    pub stages: Vec<StageRecord>,
    conversion: Vec<StepRecord>,
    /// The restore's op: its share dirs hold what the target guest left.
    op: OpPaths,
    restored_at: Option<Instant>,
    boot: Result<f64, GuestError>,
    result: Option<CellResult>,
    /// Where the cell's pages are, as its mode left them (`modes`).
    pages: Box<dyn Pages>,
}

impl<'c> CellRun<'c> {
    /// A cell whose source side is `src`; it starts with the source's
    /// stages, and goes straight to judge when they did not pass.
    pub fn new(ctx: &Ctx, cell: &'c Cell, vm: &str, src: &'c Dumped, boot: Result<f64, GuestError>) -> Self {
        let stages = vec![
            StageRecord { stage: Stage::BootSrc, outcome: Outcome::Ok, secs: ctx.pool.boot_secs(&cell.src_kind()) },
            src.reference.record(Stage::Reference),
            src.dump.record(Stage::Dump),
        ];
        let ready = src.reference.outcome == Outcome::Ok && src.dump.outcome == Outcome::Ok;
        CellRun {
            cell,
            vm: vm.to_string(),
            src,
            state: if ready { State::Transfer } else { State::Judge },
            stages,
            conversion: vec![],
            op: ctx.op_id('x'),
            restored_at: None,
            boot,
            result: None,
            pages: modes::of_source_phase(cell.mode),
        }
    }

    /// The cell's pages are where its linked dump left them.
    pub fn with_pages(mut self, pages: Box<dyn Pages>) -> Self {
        self.pages = pages;
        self
    }

    /// Runs states until the cell is restored (and waits for its wave) or done.
    pub fn advance(&mut self, ctx: &Ctx) {
        while !matches!(self.state, State::Restored | State::Done) {
            self.state = self.step(ctx);
        }
    }

    /// Lets a restored cell go on to finish and judge.
    pub fn resume(&mut self, ctx: &Ctx) {
        if self.state == State::Restored {
            self.state = State::Finish;
        }
        self.advance(ctx);
    }

    pub fn into_result(self) -> CellResult {
        self.result.expect("a done cell has its result")
    }

    /// Runs the current state's stage; returns the next state.
    fn step(&mut self, ctx: &Ctx) -> State {
        match self.state {
            State::Transfer => match self.transfer(ctx) {
                // A failed copy still records the target's boot (the cell's guest exists either way).
                Outcome::Ok => State::Convert,
                _ => State::BootTarget,
            },
            State::Convert => {
                self.convert(ctx);
                State::BootTarget
            }
            State::BootTarget => {
                let outcome = self.boot_target(ctx);
                let secs = *self.boot.as_ref().unwrap_or(&0.0);
                self.push(Stage::BootDst, outcome, secs);
                match self.stages.iter().all(|s| s.outcome == Outcome::Ok) {
                    true => State::Restore,
                    false => State::Judge,
                }
            }
            State::Restore => match self.restore(ctx) {
                Outcome::Ok if ctx.setup.iters > 1 => State::Iterate,
                Outcome::Ok => State::Restored,
                _ => State::Judge,
            },
            State::Iterate => match self.iterate(ctx) {
                Outcome::Ok => State::Restored,
                _ => State::Judge,
            },
            State::Restored => State::Restored,
            State::Finish => {
                self.finish(ctx);
                State::Judge
            }
            State::Judge => {
                self.judge(ctx);
                State::Done
            }
            State::Done => State::Done,
        }
    }

    fn push(&mut self, stage: Stage, outcome: Outcome, secs: f64) -> Outcome {
        self.stages.push(StageRecord { stage, outcome: outcome.clone(), secs });
        outcome
    }

    fn dump(&self) -> &OpRecord {
        &self.src.dump
    }

    /// Copies the workload's files into the target's share.
    fn transfer(&mut self, ctx: &Ctx) -> Outcome {
        let src = self.dump().out.clone().expect("an ok dump has a dir");
        let dst = ctx.pool.inbox(&self.vm, &self.op);
        let t = Instant::now();
        // An interrupted run's scratch is being removed: do not recreate it.
        let copied = match (ctx.setup.interrupted)() {
            true => Err(std::io::Error::other("crtest was interrupted")),
            false => {
                std::fs::create_dir_all(&dst).and_then(|_| std::fs::copy(src.join("files.tar"), dst.join("files.tar")))
            }
        };
        let outcome = match copied {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Broken(format!("copying the workload's files: {e}")),
        };
        self.push(Stage::Transfer, outcome, t.elapsed().as_secs_f64())
    }

    /// Converts the images along the cell's route into the target's share.
    fn convert(&mut self, ctx: &Ctx) -> Outcome {
        let route = self.cell.route();
        let src = self.dump().out.clone().expect("an ok dump has a dir");
        let dst = ctx.pool.inbox(&self.vm, &self.op);
        let t = Instant::now();
        let within: Box<dyn Converter> = match &ctx.setup.converter_command {
            None => Box::new(convert::Identity),
            Some(c) => Box::new(convert::External::new(c.clone())),
        };
        let formats = (route.from_format.as_str(), route.to_format.as_str());
        let chain = match convert::steps(&route.chain, formats, within, &ctx.setup.crits) {
            Ok(chain) => chain,
            Err(e) => return self.push(Stage::Convert, Outcome::Broken(error::chain(&e)), 0.0),
        };
        let under_test = chain.iter().any(|s| s.converter.under_test());
        let src = match self.pages.images(&src, &dst) {
            Ok(src) => src,
            Err(e) => return self.push(Stage::Convert, Outcome::Broken(error::chain(&e)), 0.0),
        };
        // Each image dir (pre-dumps first, the final dump last) goes through the chain on its own.
        let dirs = self.pages.image_dirs(&src);
        for dir in &dirs {
            let records = convert::run_chain(&chain, &src.join(dir), &dst.join("steps").join(dir), &dst.join(dir));
            let ok = records.iter().all(|s| s.ok);
            self.conversion.extend(records);
            if !ok {
                break;
            }
        }
        let _ = std::fs::remove_dir_all(dst.join("steps"));
        let _ = std::fs::remove_dir_all(dst.join("joined"));
        if let Err(e) = self.pages.relink(&dst, &dirs) {
            return self.push(Stage::Convert, Outcome::Broken(error::chain(&e)), 0.0);
        }
        let n = self.conversion.len();
        let outcome = match self.conversion.iter().enumerate().find(|(_, s)| !s.ok) {
            None => Outcome::Ok,
            Some((i, s)) => {
                let m = format!("step {}/{n} {}: {}", i + 1, s.label(), s.message.as_deref().unwrap_or(""));
                // A converter is part of what is tested; a failed copy or a
                // tool that could not run is crtest's fault.
                match under_test && !s.broken {
                    true => Outcome::Failed(m),
                    false => Outcome::Broken(m),
                }
            }
        };
        self.push(Stage::Convert, outcome, t.elapsed().as_secs_f64())
    }

    /// Whether the target guest is up and its engine supports the workload.
    fn boot_target(&self, ctx: &Ctx) -> Outcome {
        match &self.boot {
            Ok(_) => ctx
                .unsupported(&self.vm, ctx.workload(&self.cell.workload), self.cell.mode)
                .map_or(Outcome::Ok, Outcome::Unsupported),
            Err(e) => Outcome::Broken(format!("VM for {} did not boot: {}", self.vm, first_line(&e.0))),
        }
    }

    /// The dump's op and the dumped tree's root PID, which restores need.
    /// With the stage it is asked for recorded as broken when the dump left
    /// none.
    fn dumped_tree(&mut self, stage: Stage) -> Result<(&'c OpPaths, u32), Outcome> {
        let src: &'c Dumped = self.src;
        match (src.dump.op.as_ref(), src.dump.pid) {
            (Some(op), Some(pid)) => Ok((op, pid)),
            _ => Err(self.push(stage, Outcome::Broken("dump left no pid".into()), 0.0)),
        }
    }

    fn restore(&mut self, ctx: &Ctx) -> Outcome {
        let (dump_op, pid) = match self.dumped_tree(Stage::Restore) {
            Ok(tree) => tree,
            Err(broken) => return broken,
        };
        let t = Instant::now();
        let w = ctx.workload(&self.cell.workload);
        let op = self.pages.restore(&self.op, dump_op, w, pid, &self.cell.id);
        let outcome = ctx.run_op(&self.vm, &op);
        self.restored_at = Some(Instant::now());
        self.push(Stage::Restore, outcome, t.elapsed().as_secs_f64())
    }

    /// Rounds 2..=iters: dump and restore again in place, a few steps apart,
    /// each required to keep every fd and mapping.
    fn iterate(&mut self, ctx: &Ctx) -> Outcome {
        let (dump_op, pid) = match self.dumped_tree(Stage::Iterate) {
            Ok(tree) => tree,
            Err(broken) => return broken,
        };
        let t = Instant::now();
        let wl = ctx.workload(&self.cell.workload);
        let mut outcome = Outcome::Ok;
        for round in 2..=ctx.setup.iters {
            let op = ctx.op_id('i');
            let out = ctx.pool.outbox(&self.vm, &op);
            let guest_op = GuestOp::iterate(&op, dump_op, wl, pid, round, &self.cell.id, ctx.op_timeout());
            outcome = match ctx.pool.exec(&self.vm, &guest_op) {
                Err(e) => Outcome::Broken(e.0),
                Ok(r) => match ScriptExit::from_rc(r.rc) {
                    // The workload is too close to its end for another round.
                    ScriptExit::NoRoom => break,
                    ScriptExit::Ok => round_state(&out, round),
                    exit => prefixed(guest_op.outcome(exit, &out, &r.output), round),
                },
            };
            if outcome != Outcome::Ok {
                break;
            }
        }
        self.push(Stage::Iterate, outcome, t.elapsed().as_secs_f64())
    }

    fn finish(&mut self, ctx: &Ctx) -> Outcome {
        let (dump_op, pid) = match self.dumped_tree(Stage::Finish) {
            Ok(tree) => tree,
            Err(broken) => return broken,
        };
        // The restored programs all run at once: the deadline counts from each
        // restore, so several hung programs cost one timeout, not one each.
        let since = self.restored_at.map_or(0, |t| t.elapsed().as_secs() as u32);
        let left = ctx.op_timeout().saturating_sub(since).max(5);
        let t = Instant::now();
        let op = GuestOp::finish(&self.op, dump_op, ctx.workload(&self.cell.workload), pid, &self.cell.id, left);
        let outcome = match ctx.run_op(&self.vm, &op) {
            Outcome::Failed(m) => Outcome::Failed(self.pages.explain_failure(&ctx.pool.outbox(&self.vm, &self.op), &m)),
            outcome => outcome,
        };
        let outcome = self.push(Stage::Finish, outcome, t.elapsed().as_secs_f64());
        self.source_end(ctx);
        outcome
    }

    /// Where the source side ends only after the restored program (a lazy
    /// dump serving pages), a bad end is recorded as a second dump stage.
    fn source_end(&mut self, ctx: &Ctx) {
        let t = Instant::now();
        match self.pages.after_finish(ctx) {
            None | Some(Outcome::Ok) => {}
            Some(outcome) => {
                self.push(Stage::Dump, outcome, t.elapsed().as_secs_f64());
            }
        }
    }

    /// The verdict from the stages and, for a finished program, from its
    /// transcript, process state and memory against the reference's.
    fn judge(&mut self, ctx: &Ctx) {
        let restored = ctx.pool.outbox(&self.vm, &self.op);
        let finished = self.stages.last().is_some_and(|s| s.stage == Stage::Finish && s.outcome == Outcome::Ok);
        let (status, reason) = match finished {
            true => self.compare(&restored),
            false => verdict::judge_unfinished(&self.stages, &Digests::load(self.dump().out.as_deref(), &restored)),
        };
        let dir = artifacts::save(ctx, self.cell, status, &self.src.reference, self.dump(), &restored);
        if let Some(rel) = &dir {
            self.pages.keep(&ctx.artifacts.join(rel));
        }
        let mut r = CellResult::unrun(self.cell.clone(), status, reason);
        r.stages = std::mem::take(&mut self.stages);
        r.conversion = std::mem::take(&mut self.conversion);
        r.artifacts = dir;
        r.dump_after = self.dump().step;
        self.result = Some(r);
    }

    fn compare(&mut self, restored: &Path) -> (Status, Option<String>) {
        let t = Instant::now();
        let read = |p: Option<std::path::PathBuf>| p.and_then(|p| std::fs::read_to_string(p).ok());
        let dump_out = self.dump().out.clone();
        let expected = read(self.src.reference.out.as_ref().map(|d| d.join("transcript")));
        let actual = read(Some(restored.join("transcript")));
        let before = read(dump_out.as_ref().map(|d| d.join("before.snap")));
        let after = read(Some(restored.join("after.snap")));
        let mem = Digests::load(dump_out.as_deref(), restored);
        let (e, a) = (expected.as_deref(), actual.as_deref());
        // Say which side left none and where, rather than the verdict's generic line.
        let missing = match (e, a) {
            (None, _) => Some(format!(
                "the reference run left no transcript in {}",
                self.src.reference.out.as_ref().map_or("(no dir)".into(), |d| d.display().to_string())
            )),
            (_, None) => Some(format!("the restored program left no transcript in {}", restored.display())),
            _ => None,
        };
        if let Some(why) = missing {
            self.push(Stage::Compare, Outcome::Ok, t.elapsed().as_secs_f64());
            return (Status::Error, Some(format!("compare: {why}")));
        }
        let v = verdict::judge_with_state(&self.stages, e, a, before.as_deref(), after.as_deref(), &mem);
        self.push(Stage::Compare, Outcome::Ok, t.elapsed().as_secs_f64());
        v
    }
}

/// An iteration round that ran: its process state and memory, before the
/// dump against after the restore.
fn round_state(out: &Path, round: u32) -> Outcome {
    match (std::fs::read_to_string(out.join("before.snap")), std::fs::read_to_string(out.join("after.snap"))) {
        (Ok(b), Ok(a)) => match snapshot::compare(&b, &a) {
            None => verdict::round_memory(&Digests::load(Some(out), out), round),
            Some(d) => Outcome::Failed(format!("round {round}: process state: {d}")),
        },
        _ => Outcome::Broken(format!("round {round}: no state snapshot")),
    }
}

/// Names the round in an iteration's outcome.
fn prefixed(outcome: Outcome, round: u32) -> Outcome {
    match outcome {
        Outcome::Failed(m) => Outcome::Failed(format!("round {round}: {m}")),
        Outcome::Broken(m) => Outcome::Broken(format!("round {round}: {m}")),
        other => other,
    }
}

/// Restores then finishes one wave of cells on target VM `vm`: all restore
/// first (their PIDs are free), then all finish.
pub fn restore_wave(ctx: &Ctx, vm: &str, cells: &[&Cell], dumped: &Dumps) -> Vec<CellResult> {
    let boot = ctx.pool.ensure(vm);
    let mut runs: Vec<CellRun> = cells
        .iter()
        .map(|cell| {
            let mut run = CellRun::new(ctx, cell, vm, &dumped[&(cell.label(), cell.src_kind())], boot.clone());
            run.advance(ctx);
            run
        })
        .collect();
    for run in &mut runs {
        run.resume(ctx);
    }
    runs.into_iter().map(CellRun::into_result).collect()
}

/// Splits a target's cells into waves holding at most one cell per workload.
/// Two restored copies of one workload would share a guest and clash over
/// what the workload owns there (loopback ports, pty indexes, IPC keys), a
/// harness artefact that must never read as a failure; different workloads
/// run side by side.
pub fn waves<'c>(cells: &[&'c Cell]) -> Vec<Vec<&'c Cell>> {
    let mut waves: Vec<Vec<&Cell>> = Vec::new();
    for cell in cells {
        match waves.iter_mut().find(|w| w.iter().all(|c| c.workload != cell.workload)) {
            Some(wave) => wave.push(cell),
            None => waves.push(vec![cell]),
        }
    }
    waves
}

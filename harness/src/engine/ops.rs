//! Guest operations as types: each has its label, its script and the
//! mapping of its script's exit to a stage outcome. The run drives guests
//! with these; a new kind of operation is added here (the C/R modes' own
//! operations are built beside their scripts, in `scripts/modes.rs`).

use super::exit::ScriptExit;
use super::log::error_line;
use super::scripts::{self, OpPaths};
use crate::config::workload::Workload;
use crate::verdict::Outcome;
use std::path::Path;

/// What an operation does, which decides what its exit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    /// Start the uninterrupted reference run.
    StartReference,
    /// Start the workload that will be dumped.
    StartDump,
    Dump,
    Restore,
    /// One more dump and restore in place (`--iters`).
    Iterate,
    /// Wait for the reference run to finish.
    WaitReference,
    /// Wait for the restored program to finish.
    Finish,
    /// `criu check --feature` for every feature of the library.
    Features,
    /// Start `criu page-server` on the target (mode `page-server`).
    PageServer,
    /// Wait for the page server to end and collect what it received.
    CollectPages,
    /// Wait for a lazy dump to serve its last page (mode `lazy`).
    LazyDone,
}

/// One operation for a guest to run.
#[derive(Debug, Clone)]
pub struct GuestOp {
    pub kind: OpKind,
    pub label: String,
    pub script: String,
    /// The op whose share dir (`out/ID`) this op writes its results to.
    pub out: Option<OpPaths>,
    /// The op whose workload dir it works on (a dump's, for a restore).
    pub dir: Option<OpPaths>,
    /// Seconds the script waits at most (wait scripts; 0 elsewhere).
    pub timeout: u32,
}

impl GuestOp {
    pub fn start_reference(op: &OpPaths, w: &Workload, step_ms: u32) -> Self {
        let script = scripts::start_script(op, w, w.steps, step_ms, None);
        GuestOp::new(OpKind::StartReference, format!("start reference {}", w.name), script, op, op, 0)
    }

    pub fn start_dump(op: &OpPaths, w: &Workload, step_ms: u32, pid_base: u32) -> Self {
        let script = scripts::start_script(op, w, w.steps, step_ms, Some(pid_base));
        GuestOp::new(OpKind::StartDump, format!("start {} for dump", w.name), script, op, op, 0)
    }

    pub fn dump(op: &OpPaths, w: &Workload, after: u32, timeout: u32) -> Self {
        let script = scripts::dump_script(op, w, after, timeout);
        GuestOp::new(OpKind::Dump, format!("dump {} after step {after}", w.name), script, op, op, timeout)
    }

    pub fn wait_reference(op: &OpPaths, w: &Workload, pid: u32, timeout: u32) -> Self {
        let script = scripts::wait_script(op, op, w, pid, timeout);
        GuestOp::new(OpKind::WaitReference, format!("finish reference {}", w.name), script, op, op, timeout)
    }

    pub fn restore(op: &OpPaths, dump: &OpPaths, w: &Workload, pid: u32, cell: &str) -> Self {
        let script = scripts::restore_script(op, dump, w, pid);
        GuestOp::new(OpKind::Restore, format!("restore {cell}"), script, op, dump, 0)
    }

    pub fn iterate(op: &OpPaths, dump: &OpPaths, w: &Workload, pid: u32, round: u32, cell: &str, timeout: u32) -> Self {
        const STEPS_APART: u32 = 3;
        let script = scripts::iterate_script(op, dump, w, pid, STEPS_APART, w.steps, timeout);
        GuestOp::new(OpKind::Iterate, format!("iteration {round} of {cell}"), script, op, dump, timeout)
    }

    pub fn finish(op: &OpPaths, dump: &OpPaths, w: &Workload, pid: u32, cell: &str, timeout: u32) -> Self {
        let script = scripts::wait_script(op, dump, w, pid, timeout);
        GuestOp::new(OpKind::Finish, format!("finish {cell}"), script, op, dump, timeout)
    }

    pub fn features(features: &[&str]) -> Self {
        let script = scripts::feature_script(features);
        GuestOp {
            kind: OpKind::Features,
            label: "criu check --feature".into(),
            script,
            out: None,
            dir: None,
            timeout: 0,
        }
    }

    /// An op of `kind` writing to `out`'s share dir and working in `dir`'s.
    pub(in crate::engine) fn new(
        kind: OpKind,
        label: String,
        script: String,
        out: &OpPaths,
        dir: &OpPaths,
        timeout: u32,
    ) -> Self {
        GuestOp { kind, label, script, out: Some(out.clone()), dir: Some(dir.clone()), timeout }
    }

    /// What the script's exit means for this op's stage. `out` is the host
    /// side of the op's share dir, `output` what the script printed. An
    /// `Ok` exit is `Ok` here: checks of what the op left (transcripts,
    /// snapshots) belong to the caller.
    pub fn outcome(&self, exit: ScriptExit, out: &Path, output: &str) -> Outcome {
        let output = output.trim();
        let code = exit.rc();
        match (self.kind, exit) {
            (_, ScriptExit::Ok) => Outcome::Ok,
            (OpKind::StartReference, _) => Outcome::Broken(format!("starting the reference run failed: {output}")),
            (OpKind::StartDump, _) => Outcome::Broken(format!("starting the workload failed: {output}")),
            (OpKind::WaitReference, ScriptExit::CopyFailed) => Outcome::Broken(format!("reference run: {output}")),
            (OpKind::WaitReference, _) => Outcome::Broken(format!(
                "the uninterrupted reference run did not finish (script rc {code}): {}",
                last_line(&out.join("transcript"))
            )),
            (OpKind::Dump, ScriptExit::DumpFailed) => Outcome::Failed(engine_error(&out.join("dump.log"), "criu dump")),
            (OpKind::Dump, _) => Outcome::Broken(format!("dump script rc {code}: {output}")),
            (OpKind::Restore, ScriptExit::RestoreFailed) => {
                Outcome::Failed(engine_error(&out.join("restore.log"), "criu restore"))
            }
            (OpKind::Restore, _) => Outcome::Broken(format!("restore script rc {code}: {output}")),
            (OpKind::Iterate, ScriptExit::DumpFailed) => {
                Outcome::Failed(engine_error(&out.join("dump.log"), "criu dump"))
            }
            (OpKind::Iterate, ScriptExit::RestoreFailed) => {
                Outcome::Failed(engine_error(&out.join("restore.log"), "criu restore"))
            }
            (OpKind::Iterate, ScriptExit::ExitedBeforeDump) => {
                Outcome::Failed(format!("restored program exited early: {output}"))
            }
            (OpKind::Iterate, ScriptExit::DumpPointTimeout) => {
                Outcome::Failed(format!("restored program stalled: {output}"))
            }
            (OpKind::Iterate, _) => Outcome::Broken(format!("iteration script rc {code}: {output}")),
            (OpKind::Finish, ScriptExit::Died) => Outcome::Failed(format!(
                "restored program exited before `done`; last transcript line `{}`",
                last_line(&out.join("transcript"))
            )),
            (OpKind::Finish, ScriptExit::FinishTimeout) => Outcome::Failed(format!(
                "restored program did not finish within {}s; last transcript line `{}`",
                self.timeout,
                last_line(&out.join("transcript"))
            )),
            (OpKind::Finish, _) => Outcome::Broken(format!("wait script rc {code}: {output}")),
            (OpKind::Features, _) => Outcome::Broken(format!("feature probe rc {code}: {output}")),
            (OpKind::PageServer, ScriptExit::DumpFailed) => {
                Outcome::Failed(engine_error(&out.join("page-server.log"), "criu page-server"))
            }
            (OpKind::PageServer, _) => Outcome::Broken(format!("page server script rc {code}: {output}")),
            (OpKind::CollectPages, _) => {
                Outcome::Broken(format!("collecting the page server's pages (rc {code}): {output}"))
            }
            (OpKind::LazyDone, ScriptExit::DumpFailed) => {
                Outcome::Failed(engine_error(&out.join("dump.log"), "criu dump --lazy-pages"))
            }
            (OpKind::LazyDone, ScriptExit::FinishTimeout) => Outcome::Failed(output.to_string()),
            (OpKind::LazyDone, _) => Outcome::Broken(format!("lazy dump wait rc {code}: {output}")),
        }
    }
}

/// The last line of a transcript, or a note that there is none.
pub fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().last().map(str::to_string))
        .unwrap_or_else(|| "(no transcript)".into())
}

/// The engine's error line from its log, or a note that it left none.
pub fn engine_error(log: &Path, what: &str) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => error_line(&text).unwrap_or_else(|| format!("{what} failed without an Error line in its log")),
        Err(_) => format!("{what} failed and left no log"),
    }
}

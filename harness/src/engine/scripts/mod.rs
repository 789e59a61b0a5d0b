//! The guest scripts that drive the engine: start a workload, dump, restore,
//! iterate, wait for the end, probe features. Plain busybox `sh`, written
//! into the VM's share and run by the guest init. Their exit codes
//! (`ScriptExit`) are the contract; they never decide verdicts, they only
//! report what happened.
//!
//! The shell lives in `harness/assets/scripts/`: `lib.sh` (the shared
//! functions) and one `NAME.sh` body per operation. A script is a
//! [`Header`] of variables, each value quoted by [`quote`], then `lib.sh`,
//! then the body; Rust only builds the header and picks the body.

use crate::config::workload::Workload;
use crate::guest::layout::{MEMDIGEST, WORKLOAD_BIN_DIR};
use crate::util::shell::{quote, quote_with_var};

mod header;
mod modes;
pub use header::Header;
pub use modes::*;

/// The functions every script shares.
const LIB: &str = include_str!("../../../assets/scripts/lib.sh");
const START: &str = include_str!("../../../assets/scripts/start.sh");
const DUMP: &str = include_str!("../../../assets/scripts/dump.sh");
const RESTORE: &str = include_str!("../../../assets/scripts/restore.sh");
const ITERATE: &str = include_str!("../../../assets/scripts/iterate.sh");
const WAIT: &str = include_str!("../../../assets/scripts/wait.sh");
const FEATURES: &str = include_str!("../../../assets/scripts/features.sh");

/// Paths one guest operation uses.
#[derive(Debug, Clone)]
pub struct OpPaths {
    /// Unique per operation within a run; names dirs in the guest and share.
    pub id: String,
}

impl OpPaths {
    pub fn new(id: &str) -> Self {
        OpPaths { id: id.to_string() }
    }
    /// The workload's own directory in the guest (tmpfs).
    fn dir(&self) -> String {
        format!("/run/crtest/{}", self.id)
    }
    /// Where the op leaves results in the share (`out/ID` on the host side).
    fn out(&self) -> String {
        format!("/mnt/xfer/out/{}", self.id)
    }
}

/// The script run in the guest: `header`, the library, then `body`.
fn compose(header: &Header, body: &str) -> String {
    format!("{}{LIB}{body}", header.render())
}

/// The variables of an operation `op`: its id (`ID`, naming its files in
/// `/tmp`) and its share dir (`OUT`).
fn op_header(op: &OpPaths) -> Header {
    Header::new().var("ID", &op.id).var("OUT", op.out())
}

/// [`op_header`] with the workload `w` of `dir_op`: its directory (`D`),
/// how it shows progress (`T` its transcript, `PAT` what counts as a step
/// line, `ENDS`: `done` when a library workload writes `done`, `exit` when
/// a user's program ends), the process to dump (`DUMP_ROOT`, empty for the
/// started one) and its engine options.
fn workload_header(op: &OpPaths, dir_op: &OpPaths, w: &Workload) -> Header {
    let (pat, ends) = if w.path.is_some() { ("", "exit") } else { ("^step ", "done") };
    op_header(op)
        .var("DIR_ID", &dir_op.id)
        .var("D", dir_op.dir())
        .var("T", format!("{}/{}", dir_op.dir(), w.transcript_file()))
        .var("PAT", pat)
        .var("ENDS", ends)
        .var("DUMP_ROOT", w.dump_root.as_deref().unwrap_or(""))
        .words("DUMP_OPTS", options(&w.dump_opts))
        .words("RESTORE_OPTS", options(&w.restore_opts))
        .var("MEMDIGEST", MEMDIGEST)
}

/// Engine options, one shell word each; `{dir}` stands for the workload's
/// directory (`$D` in the scripts), e.g. `--root={dir}`. Only `$D` is
/// spliced in: the rest of each option stays single-quoted.
fn options(opts: &[String]) -> Vec<String> {
    opts.iter().map(|o| quote_with_var(o, "{dir}", "D")).collect()
}

/// The header of [`start_script`].
fn start_header(op: &OpPaths, w: &Workload, steps: u32, step_ms: u32, pid_base: Option<u32>) -> Header {
    // `env` takes each assignment as one word, so the key is quoted too.
    let env = w.environment().iter().map(|(k, v)| quote(&format!("{k}={v}"))).collect();
    let args = match &w.path {
        Some(_) => w.args.iter().map(|a| quote(a)).collect(),
        None => vec![quote(&op.dir()), quote(&steps.to_string())],
    };
    let stdout = if w.path.is_some() && w.transcript_file() == "transcript" {
        format!("{}/transcript", op.dir())
    } else {
        format!("/run/crtest/{}.stdout", op.id)
    };
    op_header(op)
        .var("D", op.dir())
        .var("NS_LAST_PID", pid_base.map(|p| (p - 1).to_string()).unwrap_or_default())
        .var("STEP_MS", step_ms)
        .words("WORKLOAD_ENV", env)
        .var("PROG", format!("{WORKLOAD_BIN_DIR}/{}", w.program()))
        .words("ARGS", args)
        .var("STDOUT", stdout)
}

/// Starts `w` in the background in its own session; `pid_base` pins its PID
/// (the dumped tree keeps its PIDs on restore, so each dump gets a range).
pub fn start_script(op: &OpPaths, w: &Workload, steps: u32, step_ms: u32, pid_base: Option<u32>) -> String {
    compose(&start_header(op, w, steps, step_ms, pid_base), START)
}

/// The header of the dumps of `op`'s workload after step `after`.
fn dump_header(op: &OpPaths, w: &Workload, after: u32, timeout_s: u32) -> Header {
    workload_header(op, op, w).var("AFTER", after).var("TIMEOUT", timeout_s)
}

/// Waits until `after` step lines exist, dumps the tree with CRIU and leaves
/// the images and the workload's files in the share.
pub fn dump_script(op: &OpPaths, w: &Workload, after: u32, timeout_s: u32) -> String {
    compose(&dump_header(op, w, after, timeout_s), DUMP)
}

/// The header of the restores by `op` of `dir_op`'s dump (`IN`, `PID`).
fn restore_header(op: &OpPaths, dir_op: &OpPaths, w: &Workload, pid: u32) -> Header {
    workload_header(op, dir_op, w).var("IN", format!("/mnt/xfer/in/{}", op.id)).var("PID", pid)
}

/// Puts the dumped workload's files back at their paths and restores the
/// tree detached; its PIDs are those of the dump (`pid` is the root).
pub fn restore_script(op: &OpPaths, dir_op: &OpPaths, w: &Workload, pid: u32) -> String {
    compose(&restore_header(op, dir_op, w, pid), RESTORE)
}

/// The header of [`iterate_script`].
fn iterate_header(op: &OpPaths, dir_op: &OpPaths, w: &Workload, pid: u32, apart: u32, steps: u32, t: u32) -> Header {
    workload_header(op, dir_op, w)
        .var("PID", pid)
        .var("APART", apart)
        .var("LAST", steps.saturating_sub(2))
        .var("TIMEOUT", t)
}

/// One more C/R iteration in place (like zdtm's `--iters`): `apart` steps
/// after where the restored workload in `dir_op`'s directory is now, dump it
/// again and restore it on the same kernel, recording both states. Exits
/// NO_ROOM when the workload is too near its last step for another round.
pub fn iterate_script(
    op: &OpPaths,
    dir_op: &OpPaths,
    w: &Workload,
    pid: u32,
    apart: u32,
    steps: u32,
    timeout_s: u32,
) -> String {
    compose(&iterate_header(op, dir_op, w, pid, apart, steps, timeout_s), ITERATE)
}

/// Waits for the workload in `dir_op`'s directory (process `pid`) to write
/// `done`, then copies its transcript to `op`'s share dir.
pub fn wait_script(op: &OpPaths, dir_op: &OpPaths, w: &Workload, pid: u32, timeout_s: u32) -> String {
    compose(&workload_header(op, dir_op, w).var("PID", pid).var("TIMEOUT", timeout_s), WAIT)
}

/// Asks the engine which of `features` this kernel supports, one
/// `NAME RC` line each.
pub fn feature_script(features: &[&str]) -> String {
    compose(&Header::new().words("FEATURES", features.iter().map(|f| quote(f)).collect()), FEATURES)
}

/// Reads the answer of [`feature_script`]: feature -> supported.
pub fn parse_features(output: &str) -> std::collections::BTreeMap<String, bool> {
    output.lines().filter_map(|l| l.rsplit_once(' ')).map(|(f, rc)| (f.to_string(), rc.trim() == "0")).collect()
}

#[cfg(test)]
mod tests;

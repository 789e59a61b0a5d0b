//! Mode `lazy`: the source's `--lazy-pages` dump serves its pages on the
//! link while the target restores with `--lazy-pages` and `criu lazy-pages`
//! fetches them on demand. The source dump must then end well too.

use super::Pages;
use crate::config::workload::Workload;
use crate::engine::{GuestOp, OpPaths};
use crate::plan::Cell;
use crate::run::Ctx;
use crate::verdict::Outcome;
use crate::vm::link::ADDRS;
use std::path::Path;

/// Dumps `cell` lazily on `src`, serving its pages at `port`.
pub fn dump(ctx: &Ctx, cell: &Cell, src: &str, op: &OpPaths, after: u32, port: u16) -> (Outcome, Box<dyn Pages>) {
    let addr = ADDRS[0].to_string();
    let wl = ctx.workload(&cell.workload);
    let outcome = ctx.run_op(src, &GuestOp::lazy_dump(op, wl, after, ctx.op_timeout(), &addr, port));
    (outcome, Box::new(OnDemand { vm: src.to_string(), op: op.clone(), addr, port }))
}

/// Pages served by the source's lazy dump (`op` on VM `vm`) at `addr:port`.
pub struct OnDemand {
    vm: String,
    op: OpPaths,
    addr: String,
    port: u16,
}

impl Pages for OnDemand {
    fn restore(&self, op: &OpPaths, dump: &OpPaths, w: &Workload, pid: u32, cell: &str) -> GuestOp {
        GuestOp::restore_lazy(op, dump, w, pid, cell, &self.addr, self.port)
    }

    /// What went wrong fetching the pages is the cause to read first.
    fn explain_failure(&self, restored: &Path, why: &str) -> String {
        let log = std::fs::read_to_string(restored.join("lazy-pages.log")).ok();
        match log.as_deref().and_then(crate::engine::error_line) {
            Some(line) => format!("{why}; criu lazy-pages: {line}"),
            None => why.to_string(),
        }
    }

    /// The source dump ends once the restored tree has every page.
    fn after_finish(&self, ctx: &Ctx) -> Option<Outcome> {
        Some(ctx.run_op(&self.vm, &GuestOp::lazy_done(&self.op, ctx.op_timeout())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_lazy_pages_daemons_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let pages = OnDemand { vm: "v".into(), op: OpPaths::new("d1"), addr: "10.77.0.1".into(), port: 1 };
        assert_eq!(pages.explain_failure(dir.path(), "died"), "died");
        std::fs::write(
            dir.path().join("lazy-pages.log"),
            "(00.1) uffd: fine\n(00.2) Error (criu/page-xfer.c:1614): Can't read pages\n",
        )
        .unwrap();
        let why = pages.explain_failure(dir.path(), "died");
        assert!(why.starts_with("died; criu lazy-pages: ") && why.contains("page-xfer.c:1614"), "{why}");
    }
}

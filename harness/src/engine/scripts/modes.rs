//! The guest operations of the C/R modes beyond a plain dump, with their
//! scripts: pre-dump rounds, a page server on the target, a lazy dump and a
//! lazy restore. A new mode's operations go here.

use super::*;
use crate::engine::ops::{GuestOp, OpKind};

const PREDUMP: &str = include_str!("../../../assets/scripts/predump.sh");
const DUMP_TO_PAGE_SERVER: &str = include_str!("../../../assets/scripts/dump_to_page_server.sh");
const PAGE_SERVER: &str = include_str!("../../../assets/scripts/page_server.sh");
const COLLECT_PAGES: &str = include_str!("../../../assets/scripts/collect_pages.sh");
const LAZY_DUMP: &str = include_str!("../../../assets/scripts/lazy_dump.sh");
const LAZY_DUMP_WAIT: &str = include_str!("../../../assets/scripts/lazy_dump_wait.sh");
const RESTORE_LAZY: &str = include_str!("../../../assets/scripts/restore_lazy.sh");

/// The steps at which the pre-dump rounds of a dump after step `after` run:
/// one step apart, just before it (never before step 1).
pub fn predump_steps(after: u32, rounds: u32) -> Vec<u32> {
    (1..=rounds).map(|r| after.saturating_sub(rounds + 1 - r).max(1)).collect()
}

/// The header of [`predump_script`]: the steps of the rounds, in order.
fn predump_header(op: &OpPaths, w: &Workload, after: u32, rounds: u32, timeout_s: u32) -> Header {
    let steps: Vec<String> = predump_steps(after, rounds).iter().map(u32::to_string).collect();
    dump_header(op, w, after, timeout_s).var("PREDUMP_STEPS", steps.join(" "))
}

/// Like [`dump_script`], with `rounds` `criu pre-dump` rounds (memory
/// tracking, each the parent of the next) while the workload runs, then the
/// final dump of what changed since the last. Pre-dump dirs land in
/// `$OUT/pre/N` and the final dump in `$OUT/img`, without their `parent`
/// links (the host links the converted dirs again).
pub fn predump_script(op: &OpPaths, w: &Workload, after: u32, rounds: u32, timeout_s: u32) -> String {
    compose(&predump_header(op, w, after, rounds, timeout_s), PREDUMP)
}

/// Like [`dump_script`], sending the pages to the page server at
/// `addr:port` instead of writing them (mode `page-server`).
pub fn dump_to_page_server_script(
    op: &OpPaths,
    w: &Workload,
    after: u32,
    timeout_s: u32,
    addr: &str,
    port: u16,
) -> String {
    compose(&dump_header(op, w, after, timeout_s).var("ADDR", addr).var("PORT", port), DUMP_TO_PAGE_SERVER)
}

/// Starts `criu page-server` on `addr:port`, detached, writing what it
/// receives into `/tmp/ps-ID` (mode `page-server`, on the target).
pub fn page_server_script(op: &OpPaths, addr: &str, port: u16) -> String {
    compose(&op_header(op).var("ADDR", addr).var("PORT", port), PAGE_SERVER)
}

/// Waits for the page server of `op` to end (the dump closed its
/// connection) and moves what it received to `$OUT/ps`.
pub fn page_server_collect_script(op: &OpPaths, timeout_s: u32) -> String {
    compose(&op_header(op).var("TIMEOUT", timeout_s), COLLECT_PAGES)
}

/// Dumps the workload with `--lazy-pages` (mode `lazy`, on the source): the
/// dump leaves its images without memory and then serves the pages on
/// `addr:port` until the restored tree has them all, in the background. The
/// script returns once the images are there (CRIU's `--status-fd`).
pub fn lazy_dump_script(op: &OpPaths, w: &Workload, after: u32, timeout_s: u32, addr: &str, port: u16) -> String {
    compose(&dump_header(op, w, after, timeout_s).var("ADDR", addr).var("PORT", port), LAZY_DUMP)
}

/// Waits for the lazy dump of `op` to end (every page served) and reports
/// how it ended, with its whole log.
pub fn lazy_dump_wait_script(op: &OpPaths, timeout_s: u32) -> String {
    compose(&op_header(op).var("TIMEOUT", timeout_s), LAZY_DUMP_WAIT)
}

/// Like [`restore_script`], restoring with `--lazy-pages`: a `criu
/// lazy-pages` daemon fetches the memory from the source's dump at
/// `addr:port` as the restored tree touches it (mode `lazy`).
pub fn restore_lazy_script(op: &OpPaths, dir_op: &OpPaths, w: &Workload, pid: u32, addr: &str, port: u16) -> String {
    compose(&restore_header(op, dir_op, w, pid).var("ADDR", addr).var("PORT", port), RESTORE_LAZY)
}

impl GuestOp {
    /// A dump after `rounds` pre-dump rounds (mode `predump`).
    pub fn predump(op: &OpPaths, w: &Workload, after: u32, rounds: u32, timeout: u32) -> Self {
        let script = predump_script(op, w, after, rounds, timeout);
        let label = format!("dump {} after step {after}, {rounds} pre-dumps before", w.name);
        GuestOp::new(OpKind::Dump, label, script, op, op, timeout)
    }

    /// A dump whose pages go to the page server at `addr:port`.
    pub fn dump_to_page_server(op: &OpPaths, w: &Workload, after: u32, timeout: u32, addr: &str, port: u16) -> Self {
        let script = dump_to_page_server_script(op, w, after, timeout, addr, port);
        let label = format!("dump {} after step {after} to the page server at {addr}:{port}", w.name);
        GuestOp::new(OpKind::Dump, label, script, op, op, timeout)
    }

    /// A `--lazy-pages` dump that then serves its pages on `addr:port`.
    pub fn lazy_dump(op: &OpPaths, w: &Workload, after: u32, timeout: u32, addr: &str, port: u16) -> Self {
        let script = lazy_dump_script(op, w, after, timeout, addr, port);
        let label = format!("lazy dump {} after step {after}, serving pages at {addr}:{port}", w.name);
        GuestOp::new(OpKind::Dump, label, script, op, op, timeout)
    }

    pub fn page_server(op: &OpPaths, addr: &str, port: u16) -> Self {
        let script = page_server_script(op, addr, port);
        GuestOp::new(OpKind::PageServer, format!("page server at {addr}:{port}"), script, op, op, 0)
    }

    pub fn collect_pages(op: &OpPaths, timeout: u32) -> Self {
        let script = page_server_collect_script(op, timeout);
        GuestOp::new(OpKind::CollectPages, "collect the page server's pages".into(), script, op, op, timeout)
    }

    pub fn lazy_done(op: &OpPaths, timeout: u32) -> Self {
        let script = lazy_dump_wait_script(op, timeout);
        GuestOp::new(OpKind::LazyDone, "wait for the lazy dump to serve every page".into(), script, op, op, timeout)
    }

    pub fn restore_lazy(
        op: &OpPaths,
        dump: &OpPaths,
        w: &Workload,
        pid: u32,
        cell: &str,
        addr: &str,
        port: u16,
    ) -> Self {
        let script = restore_lazy_script(op, dump, w, pid, addr, port);
        GuestOp::new(OpKind::Restore, format!("restore {cell} with lazy pages from {addr}:{port}"), script, op, dump, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predump_rounds_come_just_before_the_dump_and_never_before_step_1() {
        assert_eq!(predump_steps(10, 2), [8, 9]);
        assert_eq!(predump_steps(2, 2), [1, 1]);
        assert_eq!(predump_steps(5, 3), [2, 3, 4]);
    }

    #[test]
    fn mode_headers_carry_the_rounds_and_the_peer() {
        let (op, w) = (OpPaths::new("d3"), super::super::tests::w());
        assert_eq!(predump_header(&op, &w, 10, 2, 60).get("PREDUMP_STEPS"), Some("8 9"));
        let s = lazy_dump_script(&op, &w, 10, 60, "10.77.0.1", 27001);
        assert!(s.contains("\nADDR='10.77.0.1'\nPORT='27001'\n") && s.ends_with(LAZY_DUMP), "{s}");
        for body in [PREDUMP, DUMP_TO_PAGE_SERVER, PAGE_SERVER, COLLECT_PAGES, LAZY_DUMP, LAZY_DUMP_WAIT, RESTORE_LAZY]
        {
            super::super::tests::assert_codes_from_header(body);
        }
    }
}

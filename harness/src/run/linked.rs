//! The linked phase: cells whose pages travel between two running guests
//! (modes `page-server` and `lazy`). For each (source kind, target kind)
//! the source guest (started again from its saved state) and the target
//! guest get a link of their own (`vm::link`: a NIC in each, joined over
//! loopback, nothing else); then, cell by cell, the source dumps while the
//! target takes the pages, and the cell goes on as any other
//! (`cell.rs`). Groups run one after another: a guest has one link at a
//! time. Reference runs come from the source phase.

use super::cell::CellRun;
use super::modes::{self, Pages, WithImages};
use super::source::{start_for_dump, Dumped, Dumps};
use super::{Ctx, OpRecord};
use crate::plan::{Cell, Plan};
use crate::result::{target_vm, CellResult};
use crate::util::error::chain;
use crate::verdict::Outcome;
use std::collections::BTreeMap;
use std::time::Instant;

/// Runs every linked cell of `plan`; `emit` gets each judged cell.
pub fn all(ctx: &Ctx, plan: &Plan, dumped: &Dumps, emit: &dyn Fn(CellResult)) {
    let mut groups: BTreeMap<(String, String), Vec<&Cell>> = BTreeMap::new();
    for c in plan.runnable().filter(|c| c.mode.is_linked()) {
        groups.entry((c.src_kind(), c.dst_kind())).or_default().push(c);
    }
    for ((src, dst), cells) in groups {
        let target = target_vm(&dst, false);
        let boot = ctx.pool.ensure(&target);
        let link = ctx.pool.ensure(&src).and_then(|_| boot.clone()).and_then(|_| ctx.pool.link(&src, &target));
        for cell in &cells {
            let reference = dumped[&(cell.label(), src.clone())].reference.clone();
            let (dump, pages) = match (&link, reference.outcome == Outcome::Ok) {
                (_, false) => (reference.clone(), Box::new(WithImages) as Box<dyn Pages>),
                (Err(e), _) => {
                    (OpRecord::broken(format!("linking {src} and {target}: {e}")), Box::new(WithImages) as _)
                }
                (Ok(_), true) => dump(ctx, cell, &src, &target),
            };
            let side = Dumped { reference, dump };
            let mut run = CellRun::new(ctx, cell, &target, &side, boot.clone()).with_pages(pages);
            run.advance(ctx);
            run.resume(ctx);
            emit(run.into_result());
        }
        if let Ok(link) = link {
            if let Err(e) = link.close() {
                ctx.notice(format!("unlinking {src} and {target}: {}", chain(&e)));
            }
        }
    }
}

/// Dumps `cell`'s workload on `src` with its pages going to `target` as the
/// cell's mode says (`modes`).
fn dump(ctx: &Ctx, cell: &Cell, src: &str, target: &str) -> (OpRecord, Box<dyn Pages>) {
    let route = cell.route();
    let after = route.dump_after.expect("the run's plan is seeded");
    let op = ctx.op_id('d');
    let t = Instant::now();
    let (outcome, pages) = match start_for_dump(ctx, src, &op, &cell.workload, route.pid_slot) {
        Outcome::Ok => modes::linked_dump(ctx, cell, src, target, &op),
        other => (other, Box::new(WithImages) as Box<dyn Pages>),
    };
    (OpRecord::dumped(ctx, src, op, outcome, t, after), pages)
}

//! The linked phase: cells whose pages travel between two running guests
//! (modes `page-server` and `lazy`). For each (source kind, target kind)
//! the source guest (started again from its saved state) and the target
//! guest get a link of their own (`vm::link`: a NIC in each, joined over
//! loopback, nothing else); then, cell by cell, the source dumps while the
//! target takes the pages, and the cell goes on as any other
//! (`cell.rs`). Groups run one after another: a guest has one link at a
//! time. Reference runs come from the source phase.

use super::cell::{CellRun, Net};
use super::source::{start_for_dump, Dumped, Dumps};
use super::{Ctx, OpRecord};
use crate::config::mode::Mode;
use crate::engine::GuestOp;
use crate::plan::{Cell, Plan};
use crate::result::{target_vm, CellResult};
use crate::util::error::chain;
use crate::verdict::Outcome;
use crate::vm::link::ADDRS;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant;

/// Ports for page servers, one per cell (on the link only).
static NEXT_PORT: AtomicU16 = AtomicU16::new(27000);

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
            let (dump, net) = match (&link, reference.outcome == Outcome::Ok) {
                (_, false) => (reference.clone(), Net::None),
                (Err(e), _) => (OpRecord::broken(format!("linking {src} and {target}: {e}")), Net::None),
                (Ok(_), true) => dump(ctx, cell, &src, &target),
            };
            let side = Dumped { reference, dump };
            let mut run = CellRun::new(ctx, cell, &target, &side, boot.clone()).with_net(net);
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
/// cell's mode says.
fn dump(ctx: &Ctx, cell: &Cell, src: &str, target: &str) -> (OpRecord, Net) {
    let route = cell.route();
    let after = route.dump_after.expect("the run's plan is seeded");
    let wl = ctx.workload(&cell.workload);
    let op = ctx.op_id('d');
    let port = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
    let (a, b) = (ADDRS[0].to_string(), ADDRS[1].to_string());
    let t = Instant::now();
    let started = start_for_dump(ctx, src, &op, &cell.workload, route.pid_slot);
    let (outcome, net) = match (started, cell.mode) {
        (Outcome::Ok, Mode::PageServer) => {
            let ps = ctx.op_id('p');
            let outcome = match ctx.run_op(target, &GuestOp::page_server(&ps, &b, port)) {
                Outcome::Ok => {
                    let dumped =
                        ctx.run_op(src, &GuestOp::dump_to_page_server(&op, wl, after, ctx.op_timeout(), &b, port));
                    // The page server ends with the dump's connection, whatever the dump did.
                    let collected = ctx.run_op(target, &GuestOp::collect_pages(&ps, ctx.op_timeout()));
                    if dumped == Outcome::Ok {
                        collected
                    } else {
                        dumped
                    }
                }
                other => other,
            };
            (outcome, Net::PageServer { pages: ctx.pool.outbox(target, &ps).join("ps") })
        }
        (Outcome::Ok, _) => {
            let outcome = ctx.run_op(src, &GuestOp::lazy_dump(&op, wl, after, ctx.op_timeout(), &a, port));
            (outcome, Net::Lazy { vm: src.to_string(), op: op.clone(), addr: a, port })
        }
        (other, _) => (other, Net::None),
    };
    (OpRecord::dumped(ctx, src, op, outcome, t, after), net)
}

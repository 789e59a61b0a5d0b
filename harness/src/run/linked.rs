//! The linked phase: cells whose pages travel between two running guests
//! (modes `page-server` and `lazy`). For each (source kind, target kind)
//! the source guest (started again from its saved state) and the target
//! guest get a link of their own (`vm::link`: a NIC in each, joined over
//! loopback, nothing else); then, cell by cell, the source dumps while the
//! target takes the pages, and the cell goes on as any other
//! (`cell.rs`). A guest has one link at a time, so the groups run in rounds
//! where no guest is in two groups, a round's groups side by side
//! ([`rounds`]). Reference runs come from the source phase.

use super::cell::CellRun;
use super::modes::{self, Pages, WithImages};
use super::source::{start_for_dump, Dumped, Dumps};
use super::{Ctx, OpRecord};
use crate::plan::{Cell, Plan};
use crate::result::{target_vm, CellResult};
use crate::util::error::chain;
use crate::verdict::Outcome;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Runs every linked cell of `plan` (in the current rayon pool); `emit` gets
/// each judged cell.
pub fn all(ctx: &Ctx, plan: &Plan, dumped: &Dumps, emit: &(dyn Fn(CellResult) + Sync)) {
    let mut groups: BTreeMap<(String, String), Vec<&Cell>> = BTreeMap::new();
    for c in plan.runnable().filter(|c| c.mode.is_linked()) {
        groups.entry((c.src_kind(), c.dst_kind())).or_default().push(c);
    }
    // By kinds, in their order; then by the VMs they link.
    let groups: Vec<((String, String), Vec<&Cell>)> =
        groups.into_iter().map(|((src, dst), cells)| ((src, target_vm(&dst, false)), cells)).collect();
    let pairs: Vec<(String, String)> = groups.iter().map(|(vms, _)| vms.clone()).collect();
    for round in rounds(&pairs) {
        round.par_iter().for_each(|&i| {
            let ((src, target), cells) = &groups[i];
            group(ctx, (src, target), cells, dumped, emit)
        });
    }
}

/// Splits linked groups, given as their (source VM, target VM), into rounds
/// of group indexes in which no VM appears twice, earliest round first.
pub fn rounds(pairs: &[(String, String)]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<(BTreeSet<&str>, Vec<usize>)> = Vec::new();
    for (i, (a, b)) in pairs.iter().enumerate() {
        let free = rounds.iter().position(|(used, _)| !used.contains(a.as_str()) && !used.contains(b.as_str()));
        let at = free.unwrap_or_else(|| {
            rounds.push((BTreeSet::new(), Vec::new()));
            rounds.len() - 1
        });
        let (used, members) = &mut rounds[at];
        used.extend([a.as_str(), b.as_str()]);
        members.push(i);
    }
    rounds.into_iter().map(|(_, members)| members).collect()
}

/// One group: `cells` from source VM `src` to target VM `target`, over a
/// link of their own, one cell after another.
fn group(ctx: &Ctx, (src, target): (&str, &str), cells: &[&Cell], dumped: &Dumps, emit: &(dyn Fn(CellResult) + Sync)) {
    let boot = ctx.pool.ensure(target);
    let link = ctx.pool.ensure(src).and_then(|_| boot.clone()).and_then(|_| ctx.pool.link(src, target));
    for cell in cells {
        let reference = dumped[&(cell.label(), src.to_string())].reference.clone();
        let (dump, pages) = match (&link, reference.outcome == Outcome::Ok) {
            (_, false) => (reference.clone(), Box::new(WithImages) as Box<dyn Pages>),
            (Err(e), _) => (OpRecord::broken(format!("linking {src} and {target}: {e}")), Box::new(WithImages) as _),
            (Ok(_), true) => dump(ctx, cell, src, target),
        };
        let side = Dumped { reference, dump };
        let mut run = CellRun::new(ctx, cell, target, &side, boot.clone()).with_pages(pages);
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

/// Dumps `cell`'s workload on `src` with its pages going to `target` as the
/// cell's mode says (`modes`).
fn dump(ctx: &Ctx, cell: &Cell, src: &str, target: &str) -> (OpRecord, Box<dyn Pages>) {
    let route = cell.route();
    let after = route.dump_after.expect("the run's plan is seeded");
    let op = ctx.op_id('d');
    let t = Instant::now();
    let (outcome, pages) = match start_for_dump(ctx, src, &op, &cell.workload, route.pid_slot) {
        Outcome::Ok => modes::linked_dump(ctx, cell, (src, target), &op, after),
        other => (other, Box::new(WithImages) as Box<dyn Pages>),
    };
    (OpRecord::dumped(ctx, src, op, outcome, t, after), pages)
}

#[cfg(test)]
mod tests {
    use super::rounds;

    #[test]
    fn no_guest_is_in_two_groups_of_a_round() {
        let p = |a: &str, b: &str| (a.to_string(), b.to_string());
        let pairs = [
            p("5.10", "5.10~restore"),
            p("5.10", "6.1~restore"),
            p("6.1", "5.10~restore"),
            p("6.1", "6.1~restore"),
            p("6.12@criu-4.2", "6.12@criu-4.1~restore"),
        ];
        assert_eq!(rounds(&pairs), [vec![0, 3, 4], vec![1, 2]]);
        assert_eq!(rounds(&pairs[..1]), [vec![0]]);
        assert!(rounds(&[]).is_empty());
    }
}

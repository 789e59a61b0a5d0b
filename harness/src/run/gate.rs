//! The control gate: every cross cell is judged against its control, the
//! same dump restored on another guest of the source kind.

use crate::plan::Plan;
use crate::result::CellResult;
use crate::verdict::{self, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Holds back each finished cell until its control has finished too, then
/// judges it against the control (see `verdict::against_control`), so every
/// reported verdict is final.
pub struct ControlGate {
    /// Ids of cells that are some cell's control.
    controls: BTreeSet<String>,
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
    pub fn new(plan: &Plan) -> Self {
        let controls = plan.cells.iter().filter_map(|c| c.control.clone()).collect();
        ControlGate { controls, state: Mutex::new(GateState::default()) }
    }

    /// Takes a finished cell; returns the cells whose verdicts are now final.
    pub fn finished(&self, r: CellResult) -> Vec<CellResult> {
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
    pub fn into_results(self) -> Vec<CellResult> {
        let st = self.state.into_inner().unwrap();
        st.done.into_iter().chain(st.waiting).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let plan = Plan { cells: cells.iter().map(|c| c.cell.clone()).collect() };
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

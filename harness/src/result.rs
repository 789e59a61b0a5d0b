//! What a run produces: one judged cell, one VM's record, and the names of
//! a kind's two VMs. Reporters, merge and compare read these; they never
//! need the runner.

use crate::convert::StepRecord;
use crate::plan::Cell;
use crate::verdict::{StageRecord, Status};
use crate::vm::qemu::Start;
use serde::Serialize;

/// The VM that restores images onto guest kind `kind`: a second guest of
/// that kind, or the dumping guest itself when the matrix asks for that.
pub fn target_vm(kind: &str, in_dumping_guest: bool) -> String {
    match in_dumping_guest {
        true => kind.to_string(),
        false => format!("{kind}{TARGET_SUFFIX}"),
    }
}

/// Marks a target guest's VM name (`6.1~restore`).
const TARGET_SUFFIX: &str = "~restore";

/// The guest kind a VM name belongs to.
pub fn kind_of_vm(vm: &str) -> &str {
    vm.strip_suffix(TARGET_SUFFIX).unwrap_or(vm)
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CellResult {
    #[serde(flatten)]
    pub cell: Cell,
    pub status: Status,
    pub reason: Option<String>,
    pub stages: Vec<StageRecord>,
    pub conversion: Vec<StepRecord>,
    /// Directory (relative to the output dir) holding this cell's artifacts.
    pub artifacts: Option<String>,
    /// The step after which the source dumped (from the seed).
    pub dump_after: Option<u32>,
    /// The verdict of this cell's control (`cell.control`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_status: Option<Status>,
    /// For a FAIL: the known incompatibility that explains it
    /// (kernels/incompatibilities.yaml), when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<String>,
}

impl CellResult {
    /// A verdict with no stage run (a SKIP decided by the plan).
    pub fn unrun(cell: Cell, status: Status, reason: Option<String>) -> Self {
        CellResult {
            cell,
            status,
            reason,
            stages: vec![],
            conversion: vec![],
            artifacts: None,
            dump_after: None,
            control_status: None,
            known: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VmRecord {
    /// The VM's name: its guest kind, with `~restore` for a target guest.
    pub kernel: String,
    pub release: String,
    pub boot_secs: Option<f64>,
    /// Booted, booted and saved its state, or resumed from a saved state.
    pub start: Option<Start>,
    pub console: String,
}

/// A judged cell for unit tests: `workload/src->dst` (kinds may carry
/// `@ENGINE`), with `status` and nothing else recorded.
#[cfg(test)]
pub(crate) fn fixture(workload: &str, src: &str, dst: &str, status: Status) -> CellResult {
    let kind = |k: &str| {
        let k = crate::plan::GuestKind::parse(k);
        (k.kernel, k.engine)
    };
    let ((src_k, src_engine), (dst_k, dst_engine)) = (kind(src), kind(dst));
    let cell = Cell {
        id: crate::plan::cell_id(workload, src, dst),
        workload: workload.into(),
        mode: Default::default(),
        src: src_k,
        dst: dst_k,
        src_engine,
        dst_engine,
        skip: None,
        control: None,
        control_only: false,
        route: None,
    };
    CellResult::unrun(cell, status, None)
}

//! Running guests: QEMU and its arguments, QMP, saved guest states, network
//! links between two guests, and the reaper that leaves no QEMU behind.

pub mod link;
pub mod qemu;
pub mod qmp;
pub mod reaper;
pub mod vmstate;

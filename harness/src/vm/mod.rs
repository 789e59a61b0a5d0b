//! Running guests: QEMU and its arguments, QMP, saved guest states, and the
//! reaper that leaves no QEMU behind.

pub mod qemu;
pub mod qmp;
pub mod reaper;
pub mod vmstate;

//! `crtest compare BASELINE NEW`: what changed between two `results.json`,
//! so CI can fail on regressions rather than on known failures.
//!
//! Badness follows KCIDB: FAIL > ERROR > SKIP > PASS. A FAIL is the kernel's
//! fault, an ERROR the harness's, so ERROR -> FAIL counts as a new failure.
//! CONTROL-FAIL (the cell failed and so did its control) ranks as ERROR:
//! it says nothing about the pair, but a cell that passed and now cannot
//! even be judged is a regression of its own (unless allowed), and the
//! control itself shows up as a new failure. A cell that ran and now SKIPs,
//! and a cell that is gone, are regressions too (unless allowed): a gate
//! must not open because coverage vanished. Engine and kernel package
//! changes between the runs are listed, as they explain most regressions.
//! Both documents are checked first: a file that is not a crtest results
//! document, has no cells or repeats an id is an error, never a pass.

mod diff;
#[cfg(test)]
mod fixture;
mod gate;
mod load;
mod render;

pub use diff::{compare, environment_changes, Change, Comparison, ABSENT};
pub use gate::Allow;
pub use load::{check, load, CompareError};

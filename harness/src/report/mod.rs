//! Reports: render run results for people (grid, progress) and machines
//! (JSON, JUnit). Reporters only read results; nothing flows back.

pub mod grid;
pub mod html;
pub mod json;
pub mod junit;
pub mod kcidb;
pub mod load;
pub mod output;
pub mod progress;
pub mod show;
pub mod story;
pub mod summary;

use crate::result::CellResult;
use crate::verdict::Status;
use serde::Serialize;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub error: usize,
    pub skip: usize,
    /// Cells that failed along with their control (see `Status::ControlFail`).
    pub control_fail: usize,
}

impl Summary {
    pub fn of(cells: &[CellResult]) -> Self {
        let mut s = Summary::default();
        for c in cells {
            match c.status {
                Status::Pass => s.pass += 1,
                Status::Fail => s.fail += 1,
                Status::Error => s.error += 1,
                Status::Skip => s.skip += 1,
                Status::ControlFail => s.control_fail += 1,
            }
        }
        s
    }

    /// 0: every cell passed or skipped; 1: some cell FAILed; 2: otherwise
    /// (harness ERRORs, or failures whose controls failed too).
    pub fn exit_code(&self) -> i32 {
        if self.fail > 0 {
            1
        } else if self.error > 0 || self.control_fail > 0 {
            2
        } else {
            0
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cells: {} passed, {} failed, {} errors, {} skipped",
            self.pass + self.fail + self.error + self.skip + self.control_fail,
            self.pass,
            self.fail,
            self.error,
            self.skip
        )?;
        match self.control_fail {
            0 => Ok(()),
            n => write!(f, ", {n} failed along with their control"),
        }
    }
}

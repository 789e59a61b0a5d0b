//! How a guest script ended: its exit code is the contract between the
//! scripts (`engine/scripts/`, `harness/assets/scripts/`) and the host, read in one place.

/// Exit codes the scripts use.
pub mod rc {
    pub const OK: i32 = 0;
    pub const SETUP: i32 = 2;
    pub const EXITED_BEFORE_DUMP: i32 = 10;
    pub const DUMP_POINT_TIMEOUT: i32 = 11;
    pub const NO_ROOM: i32 = 12;
    pub const DUMP_FAILED: i32 = 20;
    pub const RESTORE_FAILED: i32 = 21;
    pub const COPY_FAILED: i32 = 30;
    pub const DIED: i32 = 40;
    pub const FINISH_TIMEOUT: i32 = 41;
}

/// A script's exit, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptExit {
    Ok,
    /// The script could not set up (a dir, the PID range, the dump root).
    Setup,
    /// The workload exited before the step to dump it at.
    ExitedBeforeDump,
    /// The workload did not reach the step to dump it at in time.
    DumpPointTimeout,
    /// Too near the workload's end for another C/R round.
    NoRoom,
    DumpFailed,
    RestoreFailed,
    /// Copying images or files failed.
    CopyFailed,
    /// The restored program exited before `done`.
    Died,
    /// The restored program did not finish in time.
    FinishTimeout,
    /// Any other code (a shell error, a signal).
    Other(i32),
}

impl ScriptExit {
    pub fn from_rc(code: i32) -> Self {
        match code {
            rc::OK => ScriptExit::Ok,
            rc::SETUP => ScriptExit::Setup,
            rc::EXITED_BEFORE_DUMP => ScriptExit::ExitedBeforeDump,
            rc::DUMP_POINT_TIMEOUT => ScriptExit::DumpPointTimeout,
            rc::NO_ROOM => ScriptExit::NoRoom,
            rc::DUMP_FAILED => ScriptExit::DumpFailed,
            rc::RESTORE_FAILED => ScriptExit::RestoreFailed,
            rc::COPY_FAILED => ScriptExit::CopyFailed,
            rc::DIED => ScriptExit::Died,
            rc::FINISH_TIMEOUT => ScriptExit::FinishTimeout,
            other => ScriptExit::Other(other),
        }
    }

    pub fn rc(self) -> i32 {
        match self {
            ScriptExit::Ok => rc::OK,
            ScriptExit::Setup => rc::SETUP,
            ScriptExit::ExitedBeforeDump => rc::EXITED_BEFORE_DUMP,
            ScriptExit::DumpPointTimeout => rc::DUMP_POINT_TIMEOUT,
            ScriptExit::NoRoom => rc::NO_ROOM,
            ScriptExit::DumpFailed => rc::DUMP_FAILED,
            ScriptExit::RestoreFailed => rc::RESTORE_FAILED,
            ScriptExit::CopyFailed => rc::COPY_FAILED,
            ScriptExit::Died => rc::DIED,
            ScriptExit::FinishTimeout => rc::FINISH_TIMEOUT,
            ScriptExit::Other(code) => code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [0, 2, 10, 11, 12, 20, 21, 30, 40, 41, 1, 127, 137] {
            assert_eq!(ScriptExit::from_rc(code).rc(), code);
        }
        assert_eq!(ScriptExit::from_rc(137), ScriptExit::Other(137));
    }
}

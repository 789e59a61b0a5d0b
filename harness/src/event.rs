//! The stream from the run to its reporters: progress, notices and judged
//! cells. Every reporter implements [`Reporter`].

use crate::result::CellResult;
use crate::vm::qemu::Start;

/// What the runner tells reporters.
#[derive(Debug, Clone)]
pub enum Event {
    Notice(String),
    Booting { kernel: String },
    Booted { kernel: String, release: String, secs: f64, start: Start },
    BootFailed { kernel: String, error: String },
    Op { kernel: String, label: String, ok: bool, secs: f64 },
    CellDone { result: Box<CellResult>, done: usize, total: usize },
}

pub trait Reporter: Sync {
    fn event(&self, event: &Event);
}

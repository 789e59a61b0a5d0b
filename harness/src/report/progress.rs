//! Progress on stderr: one plain line per event, so CI logs read well and a
//! terminal shows cells done, failing so far and an ETA.

use crate::event::{Event, Reporter};
use crate::verdict::Status;
use crate::vm::qemu::Start;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

pub struct Progress {
    started: Instant,
    failing: Mutex<usize>,
    verbose: bool,
}

impl Progress {
    pub fn new(verbose: bool) -> Self {
        Progress { started: Instant::now(), failing: Mutex::new(0), verbose }
    }

    fn line(&self, text: &str) {
        let t = self.started.elapsed().as_secs_f64();
        let _ = writeln!(std::io::stderr().lock(), "[{t:7.1}s] {text}");
    }
}

impl Reporter for Progress {
    fn event(&self, event: &Event) {
        match event {
            Event::Notice(text) => self.line(&format!("note: {text}")),
            Event::Booting { kernel } => self.line(&format!("boot  {kernel}")),
            Event::Booted { kernel, release, secs, start } => {
                let how = match start {
                    Start::Cold => "booted",
                    Start::Saved => "booted, state saved",
                    Start::Resumed => "resumed",
                };
                self.line(&format!("ready {kernel} ({release}) in {secs:.1}s, {how}"))
            }
            Event::BootFailed { kernel, error } => {
                self.line(&format!("ERROR {kernel} did not boot: {}", error.lines().next().unwrap_or("")))
            }
            Event::Op { kernel, label, ok, secs } => {
                if self.verbose || !ok {
                    self.line(&format!("      {kernel}: {label} {} ({secs:.1}s)", if *ok { "ok" } else { "not ok" }));
                }
            }
            Event::CellDone { result, done, total } => {
                let mut failing = self.failing.lock().unwrap();
                if matches!(result.status, Status::Fail | Status::Error | Status::ControlFail) {
                    *failing += 1;
                }
                let elapsed = self.started.elapsed().as_secs_f64();
                let eta = if *done > 0 { elapsed / *done as f64 * (*total - *done) as f64 } else { 0.0 };
                let why = result.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
                self.line(&format!(
                    "[{done}/{total}, {} failing, eta {eta:.0}s] {} {}{why}",
                    *failing, result.status, result.cell.id
                ));
            }
        }
    }
}

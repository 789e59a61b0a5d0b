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
    /// Where the lines go, and how many cells failed so far (one lock, as
    /// a cell's line carries the count).
    sink: Mutex<Sink>,
    verbose: bool,
}

struct Sink {
    out: Box<dyn Write + Send>,
    failing: usize,
}

impl Progress {
    /// Progress on stderr; `verbose` also shows every guest operation that worked.
    pub fn new(verbose: bool) -> Self {
        Progress::to(verbose, Box::new(std::io::stderr()))
    }

    /// Progress written to `out`.
    pub fn to(verbose: bool, out: Box<dyn Write + Send>) -> Self {
        Progress { started: Instant::now(), sink: Mutex::new(Sink { out, failing: 0 }), verbose }
    }

    fn line(&self, sink: &mut Sink, text: &str) {
        let t = self.started.elapsed().as_secs_f64();
        // One write per line, so lines of other writers to stderr never split it.
        let line = format!("[{t:7.1}s] {text}\n");
        // Progress is best effort: a closed stderr must not stop the run.
        let _ = sink.out.write_all(line.as_bytes()).and_then(|()| sink.out.flush());
    }

    /// The text of `event`'s line, if it has one (and counts failing cells).
    fn text(&self, event: &Event, sink: &mut Sink) -> Option<String> {
        Some(match event {
            Event::Notice(text) => format!("note: {text}"),
            Event::Booting { kernel } => format!("boot  {kernel}"),
            Event::Booted { kernel, release, secs, start } => {
                let how = match start {
                    Start::Cold => "booted",
                    Start::Saved => "booted, state saved",
                    Start::Resumed => "resumed",
                };
                format!("ready {kernel} ({release}) in {secs:.1}s, {how}")
            }
            Event::BootFailed { kernel, error } => {
                format!("ERROR {kernel} did not boot: {}", error.lines().next().unwrap_or(""))
            }
            Event::Op { kernel, label, ok, secs } => {
                if !self.verbose && *ok {
                    return None;
                }
                format!("      {kernel}: {label} {} ({secs:.1}s)", if *ok { "ok" } else { "not ok" })
            }
            Event::CellDone { result, done, total } => {
                if matches!(result.status, Status::Fail | Status::Error | Status::ControlFail) {
                    sink.failing += 1;
                }
                let elapsed = self.started.elapsed().as_secs_f64();
                let eta = if *done > 0 { elapsed / *done as f64 * (*total - *done) as f64 } else { 0.0 };
                let why = result.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
                format!(
                    "[{done}/{total}, {} failing, eta {eta:.0}s] {} {}{why}",
                    sink.failing, result.status, result.cell.id
                )
            }
        })
    }
}

impl Reporter for Progress {
    fn event(&self, event: &Event) {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(text) = self.text(event, &mut sink) {
            self.line(&mut sink, &text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer the test keeps a handle on.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `events` produce, without their timestamps.
    fn lines(verbose: bool, events: &[Event]) -> Vec<String> {
        let buf = Shared::default();
        let progress = Progress::to(verbose, Box::new(buf.clone()));
        events.iter().for_each(|e| progress.event(e));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| {
                let (stamp, rest) = l.split_once("s] ").expect("a timestamp");
                assert!(stamp.starts_with('[') && stamp[1..].trim().parse::<f64>().is_ok(), "{l}");
                rest.to_string()
            })
            .collect()
    }

    fn op(ok: bool) -> Event {
        Event::Op { kernel: "6.1".into(), label: "dump".into(), ok, secs: 1.25 }
    }

    #[test]
    fn boots_and_notices_read_as_one_line_each() {
        let events = [
            Event::Notice("fetching crit".into()),
            Event::Booting { kernel: "6.1".into() },
            Event::Booted { kernel: "6.1".into(), release: "6.1.0-9".into(), secs: 2.04, start: Start::Resumed },
            Event::BootFailed { kernel: "6.12".into(), error: "no ready line\nconsole: ...".into() },
        ];
        assert_eq!(
            lines(false, &events),
            [
                "note: fetching crit",
                "boot  6.1",
                "ready 6.1 (6.1.0-9) in 2.0s, resumed",
                "ERROR 6.12 did not boot: no ready line",
            ]
        );
    }

    #[test]
    fn operations_that_worked_only_when_verbose() {
        assert_eq!(lines(false, &[op(true), op(false)]), ["      6.1: dump not ok (1.2s)"]);
        assert_eq!(lines(true, &[op(true)]), ["      6.1: dump ok (1.2s)"]);
    }

    #[test]
    fn done_cells_count_failures_so_far() {
        let done = |status, done| Event::CellDone {
            result: Box::new(crate::result::fixture("counter", "6.1", "6.12", status)),
            done,
            total: 3,
        };
        let got = lines(false, &[done(Status::Fail, 1), done(Status::Pass, 2), done(Status::ControlFail, 3)]);
        assert_eq!(got.len(), 3);
        assert!(got[0].starts_with("[1/3, 1 failing, eta ") && got[0].ends_with("] FAIL counter/6.1->6.12"), "{got:?}");
        assert!(got[1].starts_with("[2/3, 1 failing, ") && got[1].ends_with("] PASS counter/6.1->6.12"), "{got:?}");
        assert!(got[2].starts_with("[3/3, 2 failing, eta 0s] CONTROL-FAIL "), "{got:?}");
    }
}

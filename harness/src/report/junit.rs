//! JUnit XML: one testsuite per workload, one testcase per cell named
//! `workload/src->dst`. FAIL is a failure, ERROR an error, SKIP skipped.

use crate::runner::CellResult;
use crate::verdict::Status;
use junit_report::{Duration, ReportBuilder, TestCase, TestSuiteBuilder};

pub fn render(cells: &[CellResult]) -> anyhow::Result<Vec<u8>> {
    let mut workloads: Vec<&str> = Vec::new();
    for c in cells {
        if !workloads.contains(&c.cell.workload.as_str()) {
            workloads.push(&c.cell.workload);
        }
    }
    let mut report = ReportBuilder::new();
    for w in workloads {
        let mut suite = TestSuiteBuilder::new(&format!("crtest.{w}"));
        for c in cells.iter().filter(|c| c.cell.workload == w) {
            suite.add_testcase(testcase(c));
        }
        report.add_testsuite(suite.build());
    }
    let mut out = Vec::new();
    report.build().write_xml(&mut out)?;
    Ok(out)
}

fn testcase(c: &CellResult) -> TestCase {
    let secs: f64 = c.stages.iter().map(|s| s.secs).sum();
    let time = Duration::milliseconds((secs * 1000.0) as i64);
    let reason = c.reason.as_deref().unwrap_or("");
    let mut tc = match c.status {
        Status::Pass => TestCase::success(&c.cell.id, time),
        Status::Fail => TestCase::failure(&c.cell.id, time, "FAIL", reason),
        Status::Error => TestCase::error(&c.cell.id, time, "ERROR", reason),
        // Not a failure of the pair of kinds: the same move failed within the source kind.
        Status::ControlFail => TestCase::error(&c.cell.id, time, "CONTROL-FAIL", reason),
        Status::Skip => TestCase::skipped_with_cause(&c.cell.id, "SKIP", reason),
    };
    tc.set_classname(&c.cell.workload);
    if !c.conversion.is_empty() {
        tc.set_system_out(&steps(c));
    }
    tc
}

/// One line per conversion step: what ran, how it went, what it checked.
fn steps(c: &CellResult) -> String {
    let n = c.conversion.len();
    let mut out = String::new();
    for (i, s) in c.conversion.iter().enumerate() {
        out.push_str(&format!("convert {}", s.summary(i + 1, n)));
        for m in s.note.iter().chain(s.message.iter()) {
            out.push_str(&format!("; {m}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Cell;

    #[test]
    fn statuses_map_to_junit_elements() {
        let mk = |d: &str, status, reason: Option<&str>| CellResult {
            cell: Cell {
                id: format!("counter/6.1->{d}"),
                workload: "counter".into(),
                src: "6.1".into(),
                dst: d.into(),
                src_engine: None,
                dst_engine: None,
                skip: None,
                control: None,
                control_only: false,
            },
            status,
            reason: reason.map(str::to_string),
            stages: vec![],
            conversion: vec![],
            artifacts: None,
            dump_after: None,
            control_status: None,
            known: None,
        };
        let cells = vec![
            mk("6.1", Status::Pass, None),
            mk("5.10", Status::Fail, Some("restore: Error (criu): killed by signal 11")),
            mk("6.12", Status::Error, Some("boot_dst: no ready line")),
            mk("7.3", Status::Skip, Some("needs 6.13")),
        ];
        let xml = String::from_utf8(render(&cells).unwrap()).unwrap();
        assert!(
            xml.contains(r#"tests="4""#) && xml.contains(r#"failures="1""#) && xml.contains(r#"errors="1""#),
            "{xml}"
        );
        assert!(xml.contains("counter/6.1-&gt;5.10") || xml.contains("counter/6.1->5.10"), "{xml}");
        assert!(xml.contains("killed by signal 11"), "{xml}");
        assert!(xml.contains("<skipped"), "{xml}");
    }
}

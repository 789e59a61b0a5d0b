//! The text of a failing testcase: what CI pages show as the failure.

use crate::result::CellResult;
use crate::verdict::{Outcome, Stage};
use std::fmt::Write;
use std::path::Path;

/// Lines and bytes kept of each log tail in a failure body.
const TAIL_LINES: usize = 30;
const TAIL_BYTES: usize = 4096;

/// The failure text: reason, control, known incompatibility, chain steps
/// and log tails.
pub fn failure_text(c: &CellResult, out_dir: Option<&Path>) -> String {
    let mut out = format!("{}\n", c.reason.as_deref().unwrap_or("(no reason recorded)"));
    if let Some(ctl) = &c.cell.control {
        let status = c.control_status.map_or("not run".to_string(), |s| s.to_string());
        let _ = writeln!(out, "control: {ctl} {status}");
    }
    if let Some(known) = &c.known {
        let _ = writeln!(out, "known incompatibility: {known} (kernels/incompatibilities.yaml)");
    }
    out.push_str(&steps(c));
    if let Some(dir) = out_dir {
        for (name, tail) in log_tails(c, dir) {
            let _ = write!(out, "--- last lines of {name} ---\n{tail}");
            if !tail.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// One line per conversion step: what ran, how it went, what it checked.
pub(super) fn steps(c: &CellResult) -> String {
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

/// The logs of the stage that went wrong, relative to the output dir.
fn logs_of(c: &CellResult) -> Vec<String> {
    let Some(bad) = c.stages.iter().find(|s| matches!(s.outcome, Outcome::Failed(_) | Outcome::Broken(_))) else {
        return vec![];
    };
    let art = |f: &str| c.artifacts.as_ref().map(|a| format!("{a}/{f}"));
    let files = match bad.stage {
        Stage::Dump => vec![art("dump.log"), art("dump.dmesg")],
        Stage::Restore | Stage::Iterate => vec![art("restore.log"), art("restore.dmesg")],
        Stage::Finish => vec![art("restore.dmesg")],
        Stage::BootSrc => vec![Some(format!("vms/{}.console.log", c.cell.src_kind()))],
        Stage::BootDst => vec![
            Some(format!("vms/{}.console.log", crate::result::target_vm(&c.cell.dst_kind(), false))),
            Some(format!("vms/{}.console.log", c.cell.dst_kind())),
        ],
        _ => vec![],
    };
    files.into_iter().flatten().collect()
}

/// The last lines of each existing log of the failed stage; a boot's
/// console counts once (the target guest's, else the kind's).
fn log_tails(c: &CellResult, dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rel in logs_of(c) {
        // Artifact paths come from results.json: stay inside the output dir.
        if rel.split('/').any(|part| part == ".." || part.is_empty()) {
            continue;
        }
        let Some(text) = tail(&dir.join(&rel)) else { continue };
        let console = rel.ends_with(".console.log");
        if console && out.iter().any(|(name, _): &(String, String)| name.ends_with(".console.log")) {
            continue;
        }
        out.push((rel, text));
    }
    out
}

/// The last [`TAIL_LINES`] lines (at most [`TAIL_BYTES`]) of a regular file.
fn tail(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    let mut f = std::fs::File::open(path).ok()?;
    let start = meta.len().saturating_sub(TAIL_BYTES as u64);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut data = Vec::new();
    f.take(TAIL_BYTES as u64).read_to_end(&mut data).ok()?;
    let text = String::from_utf8_lossy(&data);
    // A cut at the start of the window leaves a partial first line: drop it.
    let text = if start > 0 { text.split_once('\n').map_or("", |(_, rest)| rest) } else { &text };
    let lines: Vec<&str> = text.lines().collect();
    Some(lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{check_xml, element, mk, stage};
    use super::super::{render_with, Context};
    use super::*;
    use crate::verdict::Status;

    #[test]
    fn bodies_carry_bounded_log_tails_of_the_failed_stage() {
        let out = tempfile::tempdir().unwrap();
        let art = out.path().join("cells/counter/6.1--6.12");
        std::fs::create_dir_all(&art).unwrap();
        let log: String = (1..=500).map(|i| format!("(00.{i:03}) restore line {i}\n")).collect();
        std::fs::write(art.join("restore.log"), log).unwrap();
        std::fs::write(art.join("restore.dmesg"), "criu[88]: segfault at 0 \u{1b}[0m\n").unwrap();
        std::fs::write(art.join("dump.log"), "dump went fine\n").unwrap();
        let mut c = mk("6.12", Status::Fail, Some("restore: Error (criu/cr-restore.c:1499): killed by signal 11"));
        c.artifacts = Some("cells/counter/6.1--6.12".into());
        c.stages = vec![
            stage(Stage::Dump, Outcome::Ok, 3.0),
            stage(Stage::Restore, Outcome::Failed("Error (criu/cr-restore.c:1499)".into()), 1.0),
        ];
        let ctx = Context { properties: vec![], out_dir: Some(out.path().to_path_buf()) };
        let xml = render_with(&[c.clone()], &ctx);
        check_xml(&xml);
        let body = element(&xml, "<testcase", "failure");
        assert!(body.contains("--- last lines of cells/counter/6.1--6.12/restore.log ---\n"), "{body}");
        assert!(body.contains("restore line 500\n") && !body.contains("restore line 470\n"), "{body}");
        assert_eq!(body.matches("restore line").count(), TAIL_LINES);
        assert!(body.contains("segfault at 0 \u{FFFD}[0m"), "control characters are replaced: {body}");
        assert!(!body.contains("dump went fine"), "only the failed stage's logs");
        // An artifact path that climbs out of the output dir is not read.
        c.artifacts = Some("../../etc".into());
        assert!(!render_with(&[c], &ctx).contains("last lines"));
    }
}

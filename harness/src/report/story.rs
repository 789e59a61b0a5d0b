//! Why a cell ended as it did, gathered from its result and the artifacts
//! the run kept (`cells/W/SRC--DST/`): stages, conversion steps, the first
//! differing transcript line with context, fd/mapping differences, log
//! tails and links. Shared by the HTML report and `crtest show`, which
//! only render it. Artifacts may come from anywhere (`crtest report DIR`),
//! so every read is bounded, links and special files are not followed, and
//! paths from results.json must stay inside the output directory.

use crate::convert::StepRecord;
use crate::result::CellResult;
use crate::verdict::{Outcome, Status};
use serde::Serialize;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// Lines of context shown around the first differing transcript line.
const CONTEXT: usize = 3;
/// Bytes read from the end of each log.
const TAIL_BYTES: u64 = 16 << 10;
/// Longest line kept anywhere (logs can hold a whole image dump per line).
const LINE_MAX: usize = 400;
/// Largest transcript or state snapshot read.
const FILE_MAX: u64 = 16 << 20;
/// Logs whose tails are shown, when present.
const LOGS: [&str; 4] = ["dump.log", "restore.log", "dump.dmesg", "restore.dmesg"];

/// Where a cell's artifacts live: `disk` to read them, `href` (with a
/// trailing `/`, or empty) to link them from a report in another place.
#[derive(Debug, Clone)]
pub struct Root<'a> {
    pub disk: &'a Path,
    pub href: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Story {
    pub id: String,
    pub status: Status,
    pub reason: Option<String>,
    pub known: Option<KnownRef>,
    pub control: Option<String>,
    pub control_status: Option<Status>,
    pub control_only: bool,
    pub dump_after: Option<u32>,
    pub stages: Vec<StageLine>,
    pub chain: Vec<StepRecord>,
    pub transcript: Option<TranscriptDiff>,
    /// How the fds and mappings after restore differ from those at dump.
    pub state: Option<String>,
    pub logs: Vec<Tail>,
    /// The cell's artifact directory, relative to the report (percent-encode
    /// each segment before use), and what it holds.
    pub dir: Option<String>,
    pub links: Vec<Link>,
}

/// A known incompatibility, with its catalog entry when the project is at hand.
#[derive(Debug, Clone, Serialize)]
pub struct KnownRef {
    pub id: String,
    pub title: Option<String>,
    pub upstream: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageLine {
    pub stage: String,
    /// ok, failed, broken, unsupported or not_run.
    pub outcome: &'static str,
    pub message: Option<String>,
    pub secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptDiff {
    /// `verdict::first_difference`'s words.
    pub summary: String,
    /// The first differing line (from 1).
    pub line: usize,
    /// (line number, text) around it in each transcript.
    pub expected: Vec<(usize, String)>,
    pub actual: Vec<(usize, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tail {
    pub name: String,
    /// Lines before the tail that are not shown.
    pub cut: bool,
    pub lines: Vec<String>,
    /// The engine's first `Error (` line with the lines around it, when the
    /// tail does not hold it (CRIU logs its cleanup, and a final `Dumping
    /// FAILED`, after the error that matters).
    pub error: Vec<(usize, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// A name in the cell's directory.
    pub name: String,
    pub dir: bool,
}

/// How much to read: a passing cell needs no diff or logs in a report of
/// thousands of cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Full,
    /// Diffs and shorter log tails only for cells that did not pass.
    Failures,
}

impl Depth {
    /// Lines kept from the end of each log.
    fn tail_lines(self) -> usize {
        match self {
            Depth::Full => 40,
            Depth::Failures => 12,
        }
    }
}

impl Story {
    pub fn of(c: &CellResult, root: &Root, known: Option<&crate::verdict::known::Known>, depth: Depth) -> Story {
        let dir = c.artifacts.as_deref().filter(|a| inside(a)).map(|a| (a, root.disk.join(a)));
        let deep = depth == Depth::Full || c.status != Status::Pass;
        let read = |name: &str| dir.as_ref().and_then(|(_, d)| read_text(&d.join(name), FILE_MAX));
        let (transcript, state, logs) = match deep {
            false => (None, None, vec![]),
            true => {
                let transcript = match (read("reference.transcript"), read("restored.transcript")) {
                    (Some(e), Some(a)) => diff(&e, &a),
                    _ => None,
                };
                let state = match (read("dump.state"), read("restore.state")) {
                    (Some(b), Some(a)) => crate::verdict::snapshot::compare(&b, &a),
                    _ => None,
                };
                let logs = dir
                    .as_ref()
                    .map(|(_, d)| LOGS.iter().filter_map(|n| tail(&d.join(n), n, depth.tail_lines())).collect());
                (transcript, state, logs.unwrap_or_default())
            }
        };
        Story {
            id: c.cell.id.clone(),
            status: c.status,
            reason: c.reason.clone(),
            known: c.known.as_ref().map(|id| known_ref(id, known)),
            control: c.cell.control.clone(),
            control_status: c.control_status,
            control_only: c.cell.control_only,
            dump_after: c.dump_after,
            stages: c.stages.iter().map(stage_line).collect(),
            chain: c.conversion.clone(),
            transcript,
            state,
            logs,
            links: dir.as_ref().map(|(_, d)| links(d)).unwrap_or_default(),
            dir: dir.map(|(rel, _)| format!("{}{rel}", root.href)),
        }
    }
}

fn known_ref(id: &str, known: Option<&crate::verdict::known::Known>) -> KnownRef {
    let entry = known.and_then(|k| k.get(id));
    KnownRef {
        id: id.to_string(),
        title: entry.map(|e| e.title.clone()),
        upstream: entry.map(|e| e.upstream.clone()).unwrap_or_default(),
    }
}

fn stage_line(r: &crate::verdict::StageRecord) -> StageLine {
    let stage = serde_json::to_value(r.stage).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let (outcome, message) = match &r.outcome {
        Outcome::Ok => ("ok", None),
        Outcome::Failed(m) => ("failed", Some(m.clone())),
        Outcome::Broken(m) => ("broken", Some(m.clone())),
        Outcome::Unsupported(m) => ("unsupported", Some(m.clone())),
        Outcome::NotRun => ("not_run", None),
    };
    StageLine { stage, outcome, message, secs: r.secs }
}

/// Whether a path from results.json stays inside the output directory.
pub fn inside(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// A regular file (never a link or a device), at most `max` bytes, as text.
fn read_text(path: &Path, max: u64) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let data = crate::util::fsutil::read_bounded(path, max).ok()?;
    Some(String::from_utf8_lossy(&data).into_owned())
}

/// The first differing line of two transcripts, with context; None when
/// they are equal.
pub fn diff(expected: &str, actual: &str) -> Option<TranscriptDiff> {
    let summary = crate::verdict::first_difference(expected, actual)?;
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    // Equal lines but different endings: point at the last line.
    let at = (0..e.len().max(a.len())).find(|&i| e.get(i) != a.get(i)).unwrap_or(e.len().saturating_sub(1));
    let around = |lines: &[&str]| -> Vec<(usize, String)> {
        let from = at.saturating_sub(CONTEXT);
        let to = (at + CONTEXT + 1).min(lines.len());
        (from..to).map(|i| (i + 1, clip(lines[i]))).collect()
    };
    Some(TranscriptDiff { summary, line: at + 1, expected: around(&e), actual: around(&a) })
}

/// The last lines of a log, read from its end (logs can be large).
fn tail(path: &Path, name: &str, max_lines: usize) -> Option<Tail> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut f = std::fs::File::open(path).ok()?;
    let start = meta.len().saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut data = Vec::new();
    f.take(TAIL_BYTES).read_to_end(&mut data).ok()?;
    let text = String::from_utf8_lossy(&data);
    let mut lines: Vec<&str> = text.lines().collect();
    // A tail that starts mid-file starts mid-line: drop the partial line.
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let keep = lines.len().saturating_sub(max_lines);
    let cut = start > 0 || keep > 0;
    let shown = &lines[keep..];
    let mut error = first_error(path);
    // Already in view: the tail holds the first error line.
    if error.iter().any(|(_, e)| e.contains(ERROR_MARK) && shown.iter().any(|l| clip(l) == *e)) {
        error.clear();
    }
    Some(Tail { name: name.to_string(), cut, lines: shown.iter().map(|l| clip(l)).collect(), error })
}

/// How CRIU starts its error lines (`Error (criu/sockets.c:461): ...`).
const ERROR_MARK: &str = "Error (";

/// The first error line of a log (numbered from 1) with context around it.
fn first_error(path: &Path) -> Vec<(usize, String)> {
    let Some(text) = read_text(path, FILE_MAX) else { return vec![] };
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = lines.iter().position(|l| l.contains(ERROR_MARK)) else { return vec![] };
    let to = (at + CONTEXT + 1).min(lines.len());
    (at.saturating_sub(CONTEXT)..to).map(|i| (i + 1, clip(lines[i]))).collect()
}

fn clip(line: &str) -> String {
    match line.char_indices().nth(LINE_MAX) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}

/// The artifacts of a cell directory (files and directories, never links), sorted.
fn links(dir: &Path) -> Vec<Link> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    let mut out: Vec<Link> = entries
        .flatten()
        .filter_map(|e| {
            let kind = e.file_type().ok()?;
            let name = e.file_name().into_string().ok()?;
            (kind.is_file() || kind.is_dir()).then(|| Link { name, dir: kind.is_dir() })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_comes_with_context_from_both_sides() {
        let e = "1\n2\n3\n4\n5\n6\n7\n8\n";
        let a = "1\n2\n3\n4\nX\n6\n7\n8\n";
        let d = diff(e, a).unwrap();
        assert_eq!(d.line, 5);
        assert_eq!(d.summary, "line 5: expected `5`, got `X`");
        assert_eq!(d.expected.first(), Some(&(2, "2".to_string())));
        assert_eq!(d.actual.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(d.actual[3], (5, "X".to_string()));
        let short = diff("a\nb\nc\n", "a\n").unwrap();
        assert_eq!((short.line, short.actual.len(), short.expected.len()), (2, 1, 3));
        assert!(diff(e, e).is_none());
    }

    #[test]
    fn paths_from_results_stay_inside_the_output() {
        assert!(inside("cells/counter/6.1--6.12@criu-4.1"));
        for bad in ["", "/etc", "../x", "cells/../../x", "./cells"] {
            assert!(!inside(bad), "{bad}");
        }
    }

    #[test]
    fn tails_are_bounded_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let log: String = (0..5000).map(|i| format!("line {i} {}\n", "x".repeat(i % 900))).collect();
        std::fs::write(dir.path().join("restore.log"), &log).unwrap();
        std::fs::write(dir.path().join("secret"), "host file").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("dump.log")).unwrap();
        let t = tail(&dir.path().join("restore.log"), "restore.log", 12).unwrap();
        assert!(t.cut && t.lines.len() == 12);
        assert!(t.lines.last().unwrap().starts_with("line 4999 "));
        assert!(t.lines.iter().all(|l| l.len() <= LINE_MAX + 3));
        assert!(tail(&dir.path().join("dump.log"), "dump.log", 12).is_none());

        assert!(read_text(&dir.path().join("dump.log"), 100).is_none());
        let names: Vec<String> = links(dir.path()).into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["restore.log", "secret"]);
        // An error line far above the tail is shown with its context.
        let criu: String =
            (1..=100).map(|i| if i == 10 { "Error (criu/x.c:1): boom\n".into() } else { format!("l{i}\n") }).collect();
        std::fs::write(dir.path().join("restore.log"), criu).unwrap();
        let t = tail(&dir.path().join("restore.log"), "restore.log", 12).unwrap();
        assert_eq!(t.error.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [7, 8, 9, 10, 11, 12, 13]);
        assert_eq!((t.error[3].1.as_str(), t.lines.last().unwrap().as_str()), ("Error (criu/x.c:1): boom", "l100"));
        // A later error in the tail does not hide the first one.
        let late: String = (1..=100)
            .map(|i| match i {
                10 => "Error (criu/files-reg.c:1710): first\n".to_string(),
                100 => "Error (criu/cr-dump.c:2053): Dumping FAILED.\n".to_string(),
                _ => format!("l{i}\n"),
            })
            .collect();
        std::fs::write(dir.path().join("restore.log"), late).unwrap();
        let t = tail(&dir.path().join("restore.log"), "restore.log", 12).unwrap();
        assert!(t.error.iter().any(|(n, l)| *n == 10 && l.ends_with("first")), "{:?}", t.error);
        std::fs::write(dir.path().join("restore.log"), "a\nError (x): only\nb\n").unwrap();
        assert!(
            tail(&dir.path().join("restore.log"), "restore.log", 12).unwrap().error.is_empty(),
            "already in the tail"
        );
    }
}

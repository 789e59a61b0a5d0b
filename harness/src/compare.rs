//! `crtest compare BASELINE NEW`: what changed between two `results.json`,
//! so CI can fail on regressions rather than on known failures.
//!
//! Badness follows KCIDB: FAIL > ERROR > SKIP > PASS. A FAIL is the kernel's
//! fault, an ERROR the harness's, so ERROR -> FAIL counts as a new failure.
//! A cell that ran and now SKIPs, and a cell that is gone, are regressions
//! too (unless allowed): a gate must not open because coverage vanished.
//! Both documents are checked first: a file that is not a crtest results
//! document, has no cells or repeats an id is an error, never a pass.

use crate::report::json::SCHEMA;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Largest results document read (the default matrix's is about 2 MB).
const MAX_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{}: {why}", path.display())]
    Unreadable { path: PathBuf, why: String },
    #[error("{}: expected a crtest results document ({SCHEMA}): {why}", path.display())]
    NotResults { path: PathBuf, why: String },
    #[error("{}: cell {id} appears twice", path.display())]
    Duplicate { path: PathBuf, id: String },
    #[error("{}: no cells: nothing to compare", path.display())]
    Empty { path: PathBuf },
    #[error("{} and {} are the same file", .0.display(), .1.display())]
    SameFile(PathBuf, PathBuf),
}

/// Reads a results document: `path` itself when it is a file, else
/// `path/results.json`; checked as [`check`] does.
pub fn load(path: &Path) -> Result<(PathBuf, Value), CompareError> {
    let file = if path.is_dir() { path.join("results.json") } else { path.to_path_buf() };
    let unreadable = |why: String| CompareError::Unreadable { path: file.clone(), why };
    let data = crate::fsutil::read_bounded(&file, MAX_BYTES).map_err(unreadable)?;
    let doc: Value = serde_json::from_slice(&data)
        .map_err(|e| CompareError::NotResults { path: file.clone(), why: format!("not JSON: {e}") })?;
    check(&file, &doc)?;
    Ok((file, doc))
}

/// A results document of this schema with at least one cell, each with an
/// id, a known status and an id of its own.
pub fn check(path: &Path, doc: &Value) -> Result<(), CompareError> {
    let not = |why: String| CompareError::NotResults { path: path.to_path_buf(), why };
    match doc.get("schema") {
        Some(Value::String(s)) if s == SCHEMA => {}
        other => return Err(not(format!("schema is {}", other.map_or("absent".into(), Value::to_string)))),
    }
    let cells = doc.get("cells").and_then(Value::as_array).ok_or_else(|| not("no `cells` array".into()))?;
    if cells.is_empty() {
        return Err(CompareError::Empty { path: path.to_path_buf() });
    }
    let mut seen = HashSet::new();
    for (i, c) in cells.iter().enumerate() {
        let id = c.get("id").and_then(Value::as_str).ok_or_else(|| not(format!("cell {i} has no id")))?;
        let status = c.get("status").and_then(Value::as_str).unwrap_or("absent");
        if !matches!(status, "PASS" | "FAIL" | "ERROR" | "SKIP") {
            return Err(not(format!("cell {id} has status {status}, expected PASS, FAIL, ERROR or SKIP")));
        }
        if !seen.insert(id) {
            return Err(CompareError::Duplicate { path: path.to_path_buf(), id: id.into() });
        }
    }
    Ok(())
}

/// Which changes CI may accept without failing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    /// Cells of BASELINE that NEW does not have (a smaller matrix).
    pub removed: bool,
    /// Cells that ran in BASELINE and SKIP in NEW.
    pub skip: bool,
}

/// `before_status` of a cell that the baseline did not have.
pub const ABSENT: &str = "ABSENT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub before_status: String,
    pub after_status: String,
    pub before_reason: Option<String>,
    pub after_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Got worse into FAIL or ERROR (including cells new in NEW).
    pub new_failures: Vec<Change>,
    /// PASS, FAIL or ERROR -> SKIP: the cell no longer runs.
    pub new_skips: Vec<Change>,
    /// FAIL or ERROR -> PASS.
    pub fixed: Vec<Change>,
    /// Still FAIL or ERROR, but failing differently (reason, or FAIL -> ERROR).
    pub changed_reasons: Vec<Change>,
    /// Ids only in NEW, in its order.
    pub added: Vec<String>,
    /// Ids only in BASELINE, in its order.
    pub removed: Vec<String>,
}

/// A cell's outcome as read from results.json.
#[derive(Clone, Copy)]
struct Outcome<'a> {
    status: &'a str,
    reason: Option<&'a str>,
}

enum Kind {
    NewFailure,
    NewSkip,
    Fixed,
    ChangedReason,
}

/// Classifies every cell of NEW against BASELINE, keeping NEW's order.
pub fn compare(baseline: &Value, new: &Value) -> Comparison {
    let before_cells = outcomes(baseline);
    let before: HashMap<&str, Outcome> = before_cells.iter().copied().collect();
    let after_cells = outcomes(new);
    let after_ids: HashSet<&str> = after_cells.iter().map(|(id, _)| *id).collect();

    let mut c = Comparison::default();
    for (id, after) in &after_cells {
        let before = match before.get(id) {
            Some(b) => *b,
            None => {
                c.added.push(id.to_string());
                Outcome { status: ABSENT, reason: None }
            }
        };
        let change = || Change {
            id: id.to_string(),
            before_status: before.status.into(),
            after_status: after.status.into(),
            before_reason: before.reason.map(Into::into),
            after_reason: after.reason.map(Into::into),
        };
        match classify(before, *after) {
            Some(Kind::NewFailure) => c.new_failures.push(change()),
            Some(Kind::NewSkip) => c.new_skips.push(change()),
            Some(Kind::Fixed) => c.fixed.push(change()),
            Some(Kind::ChangedReason) => c.changed_reasons.push(change()),
            None => {}
        }
    }
    c.removed = before_cells.iter().filter(|(id, _)| !after_ids.contains(id)).map(|(id, _)| id.to_string()).collect();
    c
}

impl Comparison {
    /// Whether NEW is worse than BASELINE: the condition CI gates on. New
    /// failures always count; new skips and removed cells unless allowed.
    pub fn regressed(&self, allow: Allow) -> bool {
        !self.new_failures.is_empty()
            || (!allow.skip && !self.new_skips.is_empty())
            || (!allow.removed && !self.removed.is_empty())
    }

    /// A text report: non-empty sections, one line per cell, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        section(&mut out, "New failures", self.new_failures.iter().map(line));
        section(&mut out, "New skips", self.new_skips.iter().map(line));
        section(&mut out, "Fixed", self.fixed.iter().map(line));
        section(&mut out, "Changed reasons", self.changed_reasons.iter().map(line));
        section(&mut out, "Added", self.added.iter().cloned());
        section(&mut out, "Removed", self.removed.iter().cloned());
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    fn summary(&self) -> String {
        [
            count(self.new_failures.len(), "new failure", "new failures"),
            count(self.new_skips.len(), "new skip", "new skips"),
            count(self.fixed.len(), "fixed", "fixed"),
            count(self.changed_reasons.len(), "changed reason", "changed reasons"),
            count(self.added.len(), "added", "added"),
            count(self.removed.len(), "removed", "removed"),
        ]
        .join(", ")
    }
}

/// Cells with an id, in document order; a cell without a status reads as "?".
fn outcomes(doc: &Value) -> Vec<(&str, Outcome<'_>)> {
    let cells = doc.get("cells").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    cells
        .iter()
        .filter_map(|c| {
            let id = c.get("id")?.as_str()?;
            let status = c.get("status").and_then(Value::as_str).unwrap_or("?");
            Some((id, Outcome { status, reason: c.get("reason").and_then(Value::as_str) }))
        })
        .collect()
}

fn classify(before: Outcome, after: Outcome) -> Option<Kind> {
    if is_bad(after.status) && rank(after.status) > rank(before.status) {
        Some(Kind::NewFailure)
    } else if after.status == "SKIP" && matches!(before.status, "PASS" | "FAIL" | "ERROR") {
        Some(Kind::NewSkip)
    } else if is_bad(before.status) && after.status == "PASS" {
        Some(Kind::Fixed)
    } else if is_bad(before.status)
        && is_bad(after.status)
        && (before.status, before.reason) != (after.status, after.reason)
    {
        Some(Kind::ChangedReason)
    } else {
        None
    }
}

fn is_bad(status: &str) -> bool {
    matches!(status, "FAIL" | "ERROR")
}

/// KCIDB order of badness; anything else (ABSENT, unknown) ranks as PASS.
fn rank(status: &str) -> u8 {
    match status {
        "FAIL" => 3,
        "ERROR" => 2,
        "SKIP" => 1,
        _ => 0,
    }
}

/// `  id: BEFORE -> AFTER (after reason) [was: before reason]`.
fn line(c: &Change) -> String {
    let mut s = format!("{}: {} -> {}", c.id, c.before_status, c.after_status);
    if let Some(r) = &c.after_reason {
        let _ = write!(s, " ({r})");
    }
    if let Some(r) = c.before_reason.as_ref().filter(|r| Some(*r) != c.after_reason.as_ref()) {
        let _ = write!(s, " [was: {r}]");
    }
    s
}

fn section(out: &mut String, title: &str, lines: impl ExactSizeIterator<Item = String>) {
    if lines.len() == 0 {
        return;
    }
    let _ = writeln!(out, "{title} ({}):", lines.len());
    for l in lines {
        let _ = writeln!(out, "  {l}");
    }
    out.push('\n');
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SEGV: &str = "restore: Error (criu/cr-restore.c:1499): killed by signal 11";

    fn doc(cells: &[(&str, &str, Option<&str>)]) -> Value {
        let cells: Vec<Value> =
            cells.iter().map(|(id, status, reason)| json!({"id": id, "status": status, "reason": reason})).collect();
        json!({"schema": "crtest-results/1", "cells": cells})
    }

    fn baseline() -> Value {
        doc(&[
            ("counter/6.1->6.12", "PASS", None),
            ("pipe/6.1->6.12", "FAIL", Some(SEGV)),
            ("filemap/6.1->6.12", "ERROR", Some("boot_dst: timed out")),
            ("tcp/6.1->6.12", "FAIL", Some("compare: output differs")),
            ("udp/6.1->6.12", "SKIP", Some("no net")),
            ("gone/6.1->6.12", "PASS", None),
        ])
    }

    fn ids(changes: &[Change]) -> Vec<&str> {
        changes.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn identical_inputs_do_not_regress() {
        let c = compare(&baseline(), &baseline());
        assert_eq!(c, Comparison::default());
        assert!(!c.regressed(Allow::default()));
        assert_eq!(c.render(), "0 new failures, 0 new skips, 0 fixed, 0 changed reasons, 0 added, 0 removed\n");
    }

    #[test]
    fn injected_regression_is_caught() {
        let mut new = baseline();
        new["cells"][0]["status"] = json!("FAIL");
        new["cells"][0]["reason"] = json!(SEGV);
        let c = compare(&baseline(), &new);
        assert!(c.regressed(Allow::default()));
        assert_eq!(
            c.new_failures,
            [Change {
                id: "counter/6.1->6.12".into(),
                before_status: "PASS".into(),
                after_status: "FAIL".into(),
                before_reason: None,
                after_reason: Some(SEGV.into()),
            }]
        );
        assert!(c.render().contains(&format!("  counter/6.1->6.12: PASS -> FAIL ({SEGV})\n")));
    }

    #[test]
    fn each_category() {
        let new = doc(&[
            ("counter/6.1->6.12", "PASS", None),
            ("pipe/6.1->6.12", "PASS", None),
            ("filemap/6.1->6.12", "FAIL", Some("restore: failed")),
            ("tcp/6.1->6.12", "FAIL", Some("compare: exit code differs")),
            ("udp/6.1->6.12", "ERROR", Some("dump: timed out")),
            ("fresh/6.1->6.12", "ERROR", Some("boot_src: panic")),
            ("fresh/6.12->6.12", "PASS", None),
        ]);
        let c = compare(&baseline(), &new);
        assert_eq!(ids(&c.new_failures), ["filemap/6.1->6.12", "udp/6.1->6.12", "fresh/6.1->6.12"]);
        assert_eq!(c.new_failures[2].before_status, ABSENT);
        assert_eq!(ids(&c.fixed), ["pipe/6.1->6.12"]);
        assert_eq!(ids(&c.changed_reasons), ["tcp/6.1->6.12"]);
        assert_eq!(c.added, ["fresh/6.1->6.12", "fresh/6.12->6.12"]);
        assert_eq!(c.removed, ["gone/6.1->6.12"]);
        assert!(c.regressed(Allow::default()));
    }

    #[test]
    fn fail_to_error_is_a_change_not_a_regression() {
        let new = doc(&[("tcp/6.1->6.12", "ERROR", Some("boot_dst: timed out"))]);
        let base = doc(&[("tcp/6.1->6.12", "FAIL", Some("compare: output differs"))]);
        let c = compare(&base, &new);
        assert!(!c.regressed(Allow { removed: true, skip: true }));
        assert_eq!(ids(&c.changed_reasons), ["tcp/6.1->6.12"]);
    }

    #[test]
    fn pass_to_skip_and_removed_cells_regress_unless_allowed() {
        let base = doc(&[("a/6.1->6.1", "PASS", None), ("b/6.1->6.1", "PASS", None)]);
        let new = doc(&[("a/6.1->6.1", "SKIP", Some("no feature"))]);
        let c = compare(&base, &new);
        assert_eq!(ids(&c.new_skips), ["a/6.1->6.1"]);
        assert_eq!(c.removed, ["b/6.1->6.1"]);
        assert!(c.regressed(Allow::default()));
        assert!(c.regressed(Allow { removed: true, skip: false }));
        assert!(c.regressed(Allow { removed: false, skip: true }));
        assert!(!c.regressed(Allow { removed: true, skip: true }));
        assert!(c.render().contains("New skips (1):\n  a/6.1->6.1: PASS -> SKIP (no feature)\n"));
    }

    #[test]
    fn garbage_documents_are_errors() {
        let p = Path::new("new.json");
        assert!(check(p, &baseline()).is_ok());
        let e = check(p, &doc(&[])).unwrap_err().to_string();
        assert_eq!(e, "new.json: no cells: nothing to compare");
        let e = check(p, &json!({"schema": "other/1", "cells": []})).unwrap_err().to_string();
        assert!(e.contains("expected a crtest results document") && e.contains("other/1"), "{e}");
        let e = check(p, &json!({})).unwrap_err().to_string();
        assert!(e.contains("schema is absent"), "{e}");
        let dup = doc(&[("a/6.1->6.1", "PASS", None), ("a/6.1->6.1", "FAIL", None)]);
        assert_eq!(check(p, &dup).unwrap_err().to_string(), "new.json: cell a/6.1->6.1 appears twice");
        let odd = doc(&[("a/6.1->6.1", "GREAT", None)]);
        assert!(check(p, &odd).unwrap_err().to_string().contains("status GREAT"));
    }

    #[test]
    fn files_are_read_as_given_not_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("base.json"), dir.path().join("new.json"));
        std::fs::write(&a, baseline().to_string()).unwrap();
        std::fs::write(&b, doc(&[("counter/6.1->6.12", "FAIL", Some(SEGV))]).to_string()).unwrap();
        let (pa, da) = load(&a).unwrap();
        let (pb, db) = load(&b).unwrap();
        assert_eq!((pa, pb), (a, b.clone()));
        assert!(compare(&da, &db).regressed(Allow::default()));
        std::fs::write(&b, "").unwrap();
        assert!(load(&b).unwrap_err().to_string().contains("not JSON"));
        assert!(load(dir.path()).unwrap_err().to_string().contains("results.json"));
    }

    #[test]
    fn render_lists_sections_and_summary() {
        let new = doc(&[
            ("counter/6.1->6.12", "FAIL", Some(SEGV)),
            ("pipe/6.1->6.12", "PASS", None),
            ("tcp/6.1->6.12", "FAIL", Some("compare: exit code differs")),
        ]);
        let text = compare(&baseline(), &new).render();
        let expected = format!(
            "New failures (1):\n  counter/6.1->6.12: PASS -> FAIL ({SEGV})\n\n\
             Fixed (1):\n  pipe/6.1->6.12: FAIL -> PASS [was: {SEGV}]\n\n\
             Changed reasons (1):\n  tcp/6.1->6.12: FAIL -> FAIL (compare: exit code differs) \
             [was: compare: output differs]\n\n\
             Removed (3):\n  filemap/6.1->6.12\n  udp/6.1->6.12\n  gone/6.1->6.12\n\n\
             1 new failure, 0 new skips, 1 fixed, 1 changed reason, 0 added, 3 removed\n"
        );
        assert_eq!(text, expected);
    }
}

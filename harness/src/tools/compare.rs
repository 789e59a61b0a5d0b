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
    let data = crate::util::fsutil::read_bounded(&file, MAX_BYTES).map_err(unreadable)?;
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
        if !matches!(status, "PASS" | "FAIL" | "ERROR" | "SKIP" | CONTROL_FAIL) {
            return Err(not(format!(
                "cell {id} has status {status}, expected PASS, FAIL, ERROR, CONTROL-FAIL or SKIP"
            )));
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
    /// Cells that became CONTROL-FAIL.
    pub control_fail: bool,
}

/// `before_status` of a cell that the baseline did not have (and
/// `after_status` of one NEW lacks).
pub const ABSENT: &str = "ABSENT";
const CONTROL_FAIL: &str = "CONTROL-FAIL";

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
    /// PASS, SKIP or absent -> CONTROL-FAIL: the cell can no longer be judged.
    pub new_control_fails: Vec<Change>,
    /// PASS, FAIL or ERROR -> SKIP: the cell no longer runs.
    pub new_skips: Vec<Change>,
    /// FAIL or ERROR -> PASS.
    pub fixed: Vec<Change>,
    /// Still FAIL or ERROR, but failing differently (reason, or FAIL -> ERROR).
    pub changed_reasons: Vec<Change>,
    /// Ids only in NEW, in its order.
    pub added: Vec<String>,
    /// Cells only in BASELINE, in its order (`after_status` ABSENT).
    pub removed: Vec<Change>,
    /// Engines and kernel packages that differ, one line each.
    pub environment: Vec<String>,
}

/// A cell's outcome as read from results.json.
#[derive(Clone, Copy)]
struct Outcome<'a> {
    status: &'a str,
    reason: Option<&'a str>,
}

enum Kind {
    NewFailure,
    NewControlFail,
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
            Some(Kind::NewControlFail) => c.new_control_fails.push(change()),
            Some(Kind::NewSkip) => c.new_skips.push(change()),
            Some(Kind::Fixed) => c.fixed.push(change()),
            Some(Kind::ChangedReason) => c.changed_reasons.push(change()),
            None => {}
        }
    }
    c.removed = before_cells
        .iter()
        .filter(|(id, _)| !after_ids.contains(id))
        .map(|(id, b)| Change {
            id: id.to_string(),
            before_status: b.status.into(),
            after_status: ABSENT.into(),
            before_reason: b.reason.map(Into::into),
            after_reason: None,
        })
        .collect();
    c.environment = environment_changes(baseline, new);
    c
}

/// What each run ran on, as comparable lines: the run's engines, and per
/// guest kind its release, packages, engine and engine environment.
fn environment(doc: &Value) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    if let Some(e) = doc.get("engine").and_then(Value::as_str) {
        out.insert("engines".to_string(), e.to_string());
    }
    let kernels = doc.get("kernels").and_then(Value::as_object);
    for (kind, k) in kernels.into_iter().flatten() {
        for key in ["release", "packages", "engine", "engine_env"] {
            let text = match k.get(key) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(items)) => {
                    items.iter().map(|i| i.as_str().map_or(i.to_string(), str::to_string)).collect::<Vec<_>>().join(" ")
                }
                Some(Value::Object(map)) => {
                    map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(" ")
                }
                Some(other) => other.to_string(),
            };
            out.insert(format!("kernel {kind} {key}"), text);
        }
    }
    out
}

/// `WHAT: OLD -> NEW` for every environment item that differs; a kind only
/// one run has is listed once, as present or absent.
pub fn environment_changes(baseline: &Value, new: &Value) -> Vec<String> {
    let (before, after) = (environment(baseline), environment(new));
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let shown = |v: Option<&String>| {
        v.map_or("(absent)".to_string(), |v| if v.is_empty() { "(empty)".into() } else { v.clone() })
    };
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{k}: {} -> {}", shown(before.get(k)), shown(after.get(k))))
        .collect()
}

impl Comparison {
    /// Whether NEW is worse than BASELINE: the condition CI gates on. New
    /// failures always count; new skips and removed cells unless allowed.
    pub fn regressed(&self, allow: Allow) -> bool {
        !self.regressions(allow).is_empty()
    }

    /// The changes that fail the gate under `allow`, by kind.
    pub fn regressions(&self, allow: Allow) -> Vec<(&'static str, &Change)> {
        let mut out: Vec<(&'static str, &Change)> = self.new_failures.iter().map(|c| ("new failure", c)).collect();
        if !allow.control_fail {
            out.extend(self.new_control_fails.iter().map(|c| ("new CONTROL-FAIL", c)));
        }
        if !allow.skip {
            out.extend(self.new_skips.iter().map(|c| ("new skip", c)));
        }
        if !allow.removed {
            out.extend(self.removed.iter().map(|c| ("removed", c)));
        }
        out
    }

    /// The regressions as a JUnit report: one failing testcase per cell that
    /// fails the gate (body: old -> new and the reasons), the environment
    /// changes as properties, so a CI page shows why the gate closed.
    pub fn junit(&self, allow: Allow) -> String {
        use crate::report::junit::{document, Case, CaseOutcome, Suite};
        let cases = self
            .regressions(allow)
            .into_iter()
            .map(|(kind, c)| Case {
                name: c.id.clone(),
                classname: c.id.split('/').next().unwrap_or_default().to_string(),
                secs: 0.0,
                outcome: CaseOutcome::Failure {
                    kind: kind.to_string(),
                    message: format!("{}: {} -> {}", kind, c.before_status, c.after_status),
                },
                body: format!("{}\n", line(c)),
                system_out: String::new(),
            })
            .collect();
        let properties: Vec<(String, String)> = self
            .environment
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("environment.change.{}", i + 1), l.clone()))
            .collect();
        document("crtest-compare", &[Suite { name: "crtest.compare".into(), cases }], &properties)
    }

    /// A text report: non-empty sections, one line per cell, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        section(&mut out, "New failures", self.new_failures.iter().map(line));
        section(&mut out, "New CONTROL-FAILs", self.new_control_fails.iter().map(line));
        section(&mut out, "New skips", self.new_skips.iter().map(line));
        section(&mut out, "Fixed", self.fixed.iter().map(line));
        section(&mut out, "Changed reasons", self.changed_reasons.iter().map(line));
        section(&mut out, "Added", self.added.iter().cloned());
        section(&mut out, "Removed", self.removed.iter().map(|c| c.id.clone()));
        section(&mut out, "Engine and kernel changes", self.environment.iter().cloned());
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    fn summary(&self) -> String {
        [
            count(self.new_failures.len(), "new failure", "new failures"),
            count(self.new_control_fails.len(), "new CONTROL-FAIL", "new CONTROL-FAILs"),
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
    if matches!(after.status, "FAIL" | "ERROR") && rank(after.status) > rank(before.status) {
        Some(Kind::NewFailure)
    } else if after.status == CONTROL_FAIL && rank(before.status) < rank(CONTROL_FAIL) {
        Some(Kind::NewControlFail)
    } else if after.status == "SKIP" && matches!(before.status, "PASS" | "FAIL" | "ERROR" | CONTROL_FAIL) {
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
    matches!(status, "FAIL" | "ERROR" | CONTROL_FAIL)
}

/// KCIDB order of badness (CONTROL-FAIL is reported to KCIDB as ERROR);
/// anything else (ABSENT, unknown) ranks as PASS.
fn rank(status: &str) -> u8 {
    match status {
        "FAIL" => 3,
        "ERROR" | CONTROL_FAIL => 2,
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
        assert_eq!(
            c.render(),
            "0 new failures, 0 new CONTROL-FAILs, 0 new skips, 0 fixed, 0 changed reasons, 0 added, 0 removed\n"
        );
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
        assert_eq!(ids(&c.removed), ["gone/6.1->6.12"]);
        assert!(c.regressed(Allow::default()));
    }

    #[test]
    fn fail_to_error_is_a_change_not_a_regression() {
        let new = doc(&[("tcp/6.1->6.12", "ERROR", Some("boot_dst: timed out"))]);
        let base = doc(&[("tcp/6.1->6.12", "FAIL", Some("compare: output differs"))]);
        let c = compare(&base, &new);
        assert!(!c.regressed(Allow { removed: true, skip: true, control_fail: true }));
        assert_eq!(ids(&c.changed_reasons), ["tcp/6.1->6.12"]);
    }

    #[test]
    fn pass_to_skip_and_removed_cells_regress_unless_allowed() {
        let base = doc(&[("a/6.1->6.1", "PASS", None), ("b/6.1->6.1", "PASS", None)]);
        let new = doc(&[("a/6.1->6.1", "SKIP", Some("no feature"))]);
        let c = compare(&base, &new);
        assert_eq!(ids(&c.new_skips), ["a/6.1->6.1"]);
        assert_eq!(ids(&c.removed), ["b/6.1->6.1"]);
        assert!(c.regressed(Allow::default()));
        assert!(c.regressed(Allow { removed: true, ..Allow::default() }));
        assert!(c.regressed(Allow { skip: true, ..Allow::default() }));
        assert!(!c.regressed(Allow { removed: true, skip: true, control_fail: false }));
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
             1 new failure, 0 new CONTROL-FAILs, 0 new skips, 1 fixed, 1 changed reason, 0 added, 3 removed\n"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn new_control_fail_regresses_unless_allowed() {
        let ctl = "control tcp/6.1->6.1 is FAIL too: dump: x; this cell: dump: x";
        let base = doc(&[
            ("tcp/6.1->6.12", "PASS", None),
            ("tcp/6.1->6.1", "PASS", None),
            ("udp/6.1->6.12", "FAIL", Some("restore: y")),
            ("pipe/6.1->6.12", "CONTROL-FAIL", Some(ctl)),
            ("memfd/6.1->6.12", "CONTROL-FAIL", Some(ctl)),
        ]);
        let new = doc(&[
            ("tcp/6.1->6.12", "CONTROL-FAIL", Some(ctl)),
            ("tcp/6.1->6.1", "FAIL", Some("dump: x")),
            ("udp/6.1->6.12", "CONTROL-FAIL", Some(ctl)),
            ("pipe/6.1->6.12", "FAIL", Some("restore: z")),
            ("memfd/6.1->6.12", "PASS", None),
        ]);
        assert!(check(Path::new("new.json"), &new).is_ok(), "CONTROL-FAIL is a status of results documents");
        let c = compare(&base, &new);
        assert_eq!(ids(&c.new_control_fails), ["tcp/6.1->6.12"]);
        // The control itself is the new failure; a FAIL that now is evidence about the pair too.
        assert_eq!(ids(&c.new_failures), ["tcp/6.1->6.1", "pipe/6.1->6.12"]);
        assert_eq!(ids(&c.changed_reasons), ["udp/6.1->6.12"], "still failing, differently");
        assert_eq!(ids(&c.fixed), ["memfd/6.1->6.12"]);
        let only_ctl = compare(
            &base,
            &doc(&[
                ("tcp/6.1->6.12", "CONTROL-FAIL", Some(ctl)),
                ("tcp/6.1->6.1", "PASS", None),
                ("udp/6.1->6.12", "FAIL", Some("restore: y")),
                ("pipe/6.1->6.12", "CONTROL-FAIL", Some(ctl)),
                ("memfd/6.1->6.12", "CONTROL-FAIL", Some(ctl)),
            ]),
        );
        assert!(only_ctl.regressed(Allow::default()));
        assert!(!only_ctl.regressed(Allow { control_fail: true, ..Allow::default() }));
        assert!(only_ctl
            .render()
            .contains(&format!("New CONTROL-FAILs (1):\n  tcp/6.1->6.12: PASS -> CONTROL-FAIL ({ctl})\n")));
    }

    #[test]
    fn engine_and_package_changes_are_listed() {
        let mut base = baseline();
        base["engine"] = json!("host");
        base["kernels"] = json!({
            "6.1": {"release": "6.1.0-49-amd64", "packages": ["linux-image-6.1.0-49-amd64_6.1.155-1_amd64.deb"],
                    "engine": "host", "engine_env": {}},
            "5.10": {"release": "5.10.0-32-amd64", "packages": ["a.deb"], "engine": "host", "engine_env": {}}
        });
        let mut new = base.clone();
        new["engine"] = json!("criu-4.1, host");
        new["kernels"]["6.1"]["release"] = json!("6.1.0-50-amd64");
        new["kernels"]["6.1"]["packages"] = json!(["linux-image-6.1.0-50-amd64_6.1.158-1_amd64.deb"]);
        new["kernels"]["6.1"]["engine_env"] = json!({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"});
        new["kernels"].as_object_mut().unwrap().remove("5.10");
        let c = compare(&base, &new);
        assert_eq!(
            c.environment,
            [
                "engines: host -> criu-4.1, host",
                "kernel 5.10 engine: host -> (absent)",
                "kernel 5.10 engine_env: (empty) -> (absent)",
                "kernel 5.10 packages: a.deb -> (absent)",
                "kernel 5.10 release: 5.10.0-32-amd64 -> (absent)",
                "kernel 6.1 engine_env: (empty) -> GLIBC_TUNABLES=glibc.pthread.rseq=0",
                "kernel 6.1 packages: linux-image-6.1.0-49-amd64_6.1.155-1_amd64.deb -> \
                 linux-image-6.1.0-50-amd64_6.1.158-1_amd64.deb",
                "kernel 6.1 release: 6.1.0-49-amd64 -> 6.1.0-50-amd64",
            ]
        );
        assert!(!c.regressed(Allow::default()), "a changed environment alone is no regression");
        assert!(c.render().contains("Engine and kernel changes (8):\n  engines: host -> criu-4.1, host\n"));
        assert!(compare(&base, &base).environment.is_empty());
    }

    #[test]
    fn junit_lists_each_gating_regression_with_its_reasons() {
        let mut new = baseline();
        new["cells"][0]["status"] = json!("FAIL");
        new["cells"][0]["reason"] = json!(SEGV);
        new["cells"][4]["status"] = json!("SKIP");
        new["cells"][5]["status"] = json!("SKIP");
        new["cells"][5]["reason"] = json!("no feature");
        new["engine"] = json!("criu-4.2");
        let c = compare(&baseline(), &new);
        let xml = c.junit(Allow::default());
        let names = crate::report::junit::tests::check_xml(&xml);
        assert_eq!(names.iter().filter(|n| *n == "testcase").count(), 2, "{xml}");
        assert!(xml.contains("<testsuites name=\"crtest-compare\" tests=\"2\" failures=\"2\" errors=\"0\""), "{xml}");
        let body = crate::report::junit::tests::element(&xml, "counter/6.1-&gt;6.12", "failure");
        assert_eq!(body, format!("counter/6.1-&gt;6.12: PASS -&gt; FAIL ({SEGV})\n"));
        assert!(xml.contains("<failure type=\"new failure\" message=\"new failure: PASS -&gt; FAIL\">"), "{xml}");
        assert!(xml.contains("<failure type=\"new skip\""), "{xml}");
        assert!(
            xml.contains("<property name=\"environment.change.1\" value=\"engines: (absent) -&gt; criu-4.2\"/>"),
            "{xml}"
        );
        // An allowed skip is not in the report; no regression, no testcase.
        let allowed = c.junit(Allow { skip: true, ..Allow::default() });
        assert!(allowed.contains("tests=\"1\""), "{allowed}");
        assert!(compare(&baseline(), &baseline()).junit(Allow::default()).contains("tests=\"0\""));
    }
}

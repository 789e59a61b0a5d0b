//! Classifying every cell of NEW against BASELINE, and the environment
//! changes between the two runs.

use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// `before_status` of a cell that the baseline did not have (and
/// `after_status` of one NEW lacks).
pub const ABSENT: &str = "ABSENT";
pub(super) const CONTROL_FAIL: &str = "CONTROL-FAIL";

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

#[cfg(test)]
mod tests {
    use super::super::fixture::{baseline, doc, ids};
    use super::*;
    use crate::tools::compare::{check, Allow};
    use serde_json::json;
    use std::path::Path;

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
}

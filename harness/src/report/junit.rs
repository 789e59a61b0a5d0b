//! JUnit XML: one testsuite per workload, one testcase per cell named
//! `workload/src->dst`. FAIL is a `<failure>`, ERROR and CONTROL-FAIL an
//! `<error>`, SKIP `<skipped>`.
//!
//! What CI systems show: GitLab and GitHub's JUnit actions display the
//! element's *body* as the failure text, so the body carries the reason,
//! the control and its status, the known incompatibility, the conversion
//! steps and bounded tails of the logs of the stage that failed. Each
//! testcase's time is its own stages' (a guest's boot is shared by many
//! cells and is left out); the `<testsuites>` root carries the totals, and
//! every suite the run's `<properties>` (kernels and their packages,
//! engines and their environment, seed).
//!
//! Written by hand rather than with the `junit-report` crate, which has no
//! `<properties>`, no totals on the root and a fixed hostname and timestamp.

use crate::result::CellResult;
use crate::verdict::{Outcome, Stage, Status};
use anyhow::{Context as _, Result};
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Lines and bytes kept of each log tail in a failure body.
const TAIL_LINES: usize = 30;
const TAIL_BYTES: usize = 4096;
/// Longest `message` attribute: the body has the whole text.
const MESSAGE_CHARS: usize = 500;

/// How a testcase ended, with the element's type attribute and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseOutcome {
    Pass,
    Failure { kind: String, message: String },
    Error { kind: String, message: String },
    Skipped { message: String },
}

/// One `<testcase>`.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub classname: String,
    pub secs: f64,
    pub outcome: CaseOutcome,
    /// The text of the failure/error/skipped element.
    pub body: String,
    pub system_out: String,
}

/// One `<testsuite>`.
#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub cases: Vec<Case>,
}

/// What a report says about the run besides its cells.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `<properties>` of every suite, in order.
    pub properties: Vec<(String, String)>,
    /// The output directory, to read log tails from (None: no tails).
    pub out_dir: Option<PathBuf>,
}

/// The JUnit report of a run's cells, without run properties or log tails.
pub fn render(cells: &[CellResult]) -> Result<Vec<u8>> {
    Ok(render_with(cells, &Context::default()).into_bytes())
}

/// The JUnit report of a run's cells with `ctx`'s properties and log tails.
pub fn render_with(cells: &[CellResult], ctx: &Context) -> String {
    let mut workloads: Vec<&str> = Vec::new();
    for c in cells {
        if !workloads.contains(&c.cell.workload.as_str()) {
            workloads.push(&c.cell.workload);
        }
    }
    let suites: Vec<Suite> = workloads
        .iter()
        .map(|w| Suite {
            name: format!("crtest.{w}"),
            cases: cells.iter().filter(|c| c.cell.workload == *w).map(|c| case_of(c, ctx)).collect(),
        })
        .collect();
    document("crtest", &suites, &ctx.properties)
}

/// Rewrites `out_dir/junit.xml` from `out_dir/results.json`, with the run's
/// properties and log tails from the cells' artifacts.
pub fn rewrite(out_dir: &Path) -> Result<()> {
    let file = out_dir.join("results.json");
    let data =
        crate::util::fsutil::read_bounded(&file, 256 << 20).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let doc: Value = serde_json::from_slice(&data).with_context(|| format!("{}: not JSON", file.display()))?;
    let cells: Vec<CellResult> = serde_json::from_value(doc.get("cells").cloned().unwrap_or(Value::Null))
        .with_context(|| format!("{}: cells", file.display()))?;
    let ctx = Context { properties: properties(&doc), out_dir: Some(out_dir.to_path_buf()) };
    write_readable(&out_dir.join("junit.xml"), render_with(&cells, &ctx).as_bytes())
}

/// Writes a report file atomically, readable by everyone (0644) like the
/// rest of a run's output, whatever the umask or temp-file mode.
pub fn write_readable(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    crate::util::fsutil::write_atomic(path, data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// The run's properties from a results document: seed, accelerator,
/// engines, and per guest kind its release, packages, engine and engine
/// environment.
pub fn properties(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["crtest_version", "matrix", "accel", "engine", "seed", "iters"] {
        if let Some(v) = doc.get(key).filter(|v| !v.is_null()) {
            out.push((key.to_string(), plain(v)));
        }
    }
    let kernels = doc.get("kernels").and_then(Value::as_object);
    for (kind, k) in kernels.into_iter().flatten() {
        for key in ["release", "packages", "engine", "engine_env"] {
            if let Some(v) = k.get(key).filter(|v| !v.is_null()) {
                out.push((format!("kernel.{kind}.{key}"), plain(v)));
            }
        }
    }
    out
}

/// A JSON value as property text: strings bare, lists space-separated,
/// maps as `K=V` words.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(" "),
        Value::Object(map) => map.iter().map(|(k, v)| format!("{k}={}", plain(v))).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// A cell's own time: its stages, without the boots of guests it shares.
pub fn own_secs(c: &CellResult) -> f64 {
    // `+ 0.0`: an empty f64 sum is -0.0, which would print as "-0.000".
    c.stages.iter().filter(|s| !matches!(s.stage, Stage::BootSrc | Stage::BootDst)).map(|s| s.secs).sum::<f64>() + 0.0
}

fn case_of(c: &CellResult, ctx: &Context) -> Case {
    let reason = c.reason.clone().unwrap_or_default();
    let message: String = reason.chars().take(MESSAGE_CHARS).collect();
    let outcome = match c.status {
        Status::Pass => CaseOutcome::Pass,
        Status::Fail => CaseOutcome::Failure { kind: "FAIL".into(), message },
        Status::Error => CaseOutcome::Error { kind: "ERROR".into(), message },
        // Not a failure of the pair of kinds: the same move failed within the source kind.
        Status::ControlFail => CaseOutcome::Error { kind: "CONTROL-FAIL".into(), message },
        Status::Skip => CaseOutcome::Skipped { message },
    };
    let body = if c.status == Status::Pass { String::new() } else { failure_text(c, ctx.out_dir.as_deref()) };
    Case {
        name: c.cell.id.clone(),
        classname: c.cell.workload.clone(),
        secs: own_secs(c),
        outcome,
        body,
        system_out: steps(c),
    }
}

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

/// A whole JUnit document: `<testsuites>` with totals, then each suite with
/// its counts, the properties and its testcases.
pub fn document(name: &str, suites: &[Suite], properties: &[(String, String)]) -> String {
    let all: Vec<&Case> = suites.iter().flat_map(|s| &s.cases).collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"{}\" {}>", attr(name), counts(&all));
    for s in suites {
        let cases: Vec<&Case> = s.cases.iter().collect();
        let _ = writeln!(out, "  <testsuite name=\"{}\" {}>", attr(&s.name), counts(&cases));
        if !properties.is_empty() {
            out.push_str("    <properties>\n");
            for (k, v) in properties {
                let _ = writeln!(out, "      <property name=\"{}\" value=\"{}\"/>", attr(k), attr(v));
            }
            out.push_str("    </properties>\n");
        }
        for c in &s.cases {
            write_case(&mut out, c);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn counts(cases: &[&Case]) -> String {
    let n = |f: fn(&CaseOutcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
    let secs = cases.iter().map(|c| c.secs).sum::<f64>() + 0.0;
    format!(
        "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{secs:.3}\"",
        cases.len(),
        n(|o| matches!(o, CaseOutcome::Failure { .. })),
        n(|o| matches!(o, CaseOutcome::Error { .. })),
        n(|o| matches!(o, CaseOutcome::Skipped { .. })),
    )
}

fn write_case(out: &mut String, c: &Case) {
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
        attr(&c.name),
        attr(&c.classname),
        c.secs
    );
    if c.outcome == CaseOutcome::Pass && c.system_out.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    let element = |tag: &str, kind: Option<&str>, message: &str| {
        let kind = kind.map(|k| format!(" type=\"{}\"", attr(k))).unwrap_or_default();
        format!("      <{tag}{kind} message=\"{}\">{}</{tag}>\n", attr(message), text(&c.body))
    };
    match &c.outcome {
        CaseOutcome::Pass => {}
        CaseOutcome::Failure { kind, message } => out.push_str(&element("failure", Some(kind), message)),
        CaseOutcome::Error { kind, message } => out.push_str(&element("error", Some(kind), message)),
        CaseOutcome::Skipped { message } => out.push_str(&element("skipped", None, message)),
    }
    if !c.system_out.is_empty() {
        let _ = writeln!(out, "      <system-out>{}</system-out>", text(&c.system_out));
    }
    out.push_str("    </testcase>\n");
}

/// Element text: markup escaped, and characters XML 1.0 cannot carry (the
/// escape sequences of a console log) replaced, so the document always parses.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\t' | '\r' => out.push(ch),
            c if xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Attribute text: as [`text`], plus quotes and line breaks as references.
pub fn attr(s: &str) -> String {
    text(s).replace('"', "&quot;").replace('\n', "&#10;").replace('\r', "&#13;").replace('\t', "&#9;")
}

/// The characters XML 1.0 allows besides tab, newline and carriage return.
fn xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::verdict::StageRecord;

    pub(crate) fn mk(d: &str, status: Status, reason: Option<&str>) -> CellResult {
        let mut c = crate::result::fixture("counter", "6.1", d, status);
        c.cell.control = (d != "6.1").then(|| "counter/6.1->6.1".to_string());
        CellResult { reason: reason.map(str::to_string), ..c }
    }

    fn stage(stage: Stage, outcome: Outcome, secs: f64) -> StageRecord {
        StageRecord { stage, outcome, secs }
    }

    /// A minimal XML well-formedness check: every tag closes in order,
    /// attributes are quoted, text has no bare `<` or `&`. Returns the
    /// element names in document order.
    pub(crate) fn check_xml(xml: &str) -> Vec<String> {
        let body = xml.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n").expect("declaration");
        let (mut open, mut seen): (Vec<String>, Vec<String>) = (vec![], vec![]);
        let mut rest = body;
        while let Some(lt) = rest.find('<') {
            let text = &rest[..lt];
            assert!(!text.contains('>'), "bare > in text: {text}");
            for (i, _) in text.match_indices('&') {
                let ent = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| ent.starts_with(e)),
                    "bare & in text: {ent}"
                );
            }
            let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
            let tag = &rest[lt + 1..gt];
            assert!(tag.matches('"').count().is_multiple_of(2) && !tag.contains('<'), "bad tag {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else {
                let name = tag.split([' ', '/']).next().unwrap().to_string();
                seen.push(name.clone());
                if !tag.ends_with('/') {
                    open.push(name);
                }
            }
            rest = &rest[gt + 1..];
        }
        assert!(open.is_empty(), "unclosed {open:?}");
        assert!(rest.trim().is_empty());
        seen
    }

    /// The text of the first `<tag ...>...</tag>` after `after`.
    pub(crate) fn element<'a>(xml: &'a str, after: &str, tag: &str) -> &'a str {
        let from = xml.find(after).unwrap_or_else(|| panic!("no {after} in {xml}"));
        let start = xml[from..].find(&format!("<{tag}")).unwrap() + from;
        let open_end = xml[start..].find('>').unwrap() + start + 1;
        let close = xml[open_end..].find(&format!("</{tag}>")).unwrap() + open_end;
        &xml[open_end..close]
    }

    #[test]
    fn statuses_map_to_junit_elements_with_bodies_and_totals() {
        let mut fail = mk("5.10", Status::Fail, Some("restore: Error (criu): killed by signal 11"));
        fail.control_status = Some(Status::Pass);
        fail.known = Some("so-buf-lock".into());
        let mut ctl = mk("6.12", Status::ControlFail, Some("control counter/6.1->6.1 is FAIL too: dump: x"));
        ctl.control_status = Some(Status::Fail);
        let cells = vec![
            mk("6.1", Status::Pass, None),
            fail,
            mk("7.3", Status::Error, Some("boot_dst: no ready line")),
            ctl,
            mk("6.16", Status::Skip, Some("needs 6.13 & <more>")),
        ];
        let xml = render_with(&cells, &Context::default());
        let names = check_xml(&xml);
        assert_eq!(names.iter().filter(|n| *n == "testcase").count(), 5);
        assert!(
            xml.contains("<testsuites name=\"crtest\" tests=\"5\" failures=\"1\" errors=\"2\" skipped=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains("<testsuite name=\"crtest.counter\" tests=\"5\" failures=\"1\" errors=\"2\" skipped=\"1\"")
        );
        assert!(xml.contains("name=\"counter/6.1-&gt;5.10\" classname=\"counter\""), "{xml}");
        let failure = element(&xml, "counter/6.1-&gt;5.10", "failure");
        assert_eq!(
            failure,
            "restore: Error (criu): killed by signal 11\ncontrol: counter/6.1-&gt;6.1 PASS\n\
             known incompatibility: so-buf-lock (kernels/incompatibilities.yaml)\n"
        );
        assert!(xml.contains("<failure type=\"FAIL\" message=\"restore: Error (criu): killed by signal 11\">"));
        let error = element(&xml, "counter/6.1-&gt;6.12", "error");
        assert!(xml.contains("<error type=\"CONTROL-FAIL\""), "{xml}");
        assert!(error.contains("control: counter/6.1-&gt;6.1 FAIL\n"), "{error}");
        assert!(xml.contains("<error type=\"ERROR\" message=\"boot_dst: no ready line\">"));
        assert_eq!(
            element(&xml, "counter/6.1-&gt;6.16", "skipped"),
            "needs 6.13 &amp; &lt;more&gt;\ncontrol: counter/6.1-&gt;6.1 not run\n"
        );
        assert!(xml.contains("<testcase name=\"counter/6.1-&gt;6.1\" classname=\"counter\" time=\"0.000\"/>"), "{xml}");
        assert!(!xml.contains("<properties>"), "no properties without a run");
    }

    #[test]
    fn time_leaves_out_shared_boots() {
        let mut c = mk("6.12", Status::Pass, None);
        c.stages = vec![
            stage(Stage::BootSrc, Outcome::Ok, 6.0),
            stage(Stage::Dump, Outcome::Ok, 3.25),
            stage(Stage::BootDst, Outcome::Ok, 7.0),
            stage(Stage::Restore, Outcome::Ok, 1.0),
            stage(Stage::Compare, Outcome::Ok, 0.5),
        ];
        assert_eq!(own_secs(&c), 4.75);
        let xml = render_with(&[c], &Context::default());
        assert!(xml.contains("time=\"4.750\"/>"), "{xml}");
        assert!(xml.contains(
            "<testsuites name=\"crtest\" tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"0\" time=\"4.750\">"
        ));
    }

    #[test]
    fn properties_come_from_the_results_document() {
        let doc = serde_json::json!({
            "seed": 7, "accel": "tcg", "engine": "criu-4.1, host", "iters": 1,
            "kernels": {"6.1": {"release": "6.1.0-50-amd64", "packages": ["linux-image-6.1.0-50-amd64_6.1.158-1_amd64.deb"],
                        "engine": "host", "engine_env": {"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}, "boot_secs": 3.0}},
            "cells": []
        });
        let props = properties(&doc);
        let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("seed"), Some("7"));
        assert_eq!(get("engine"), Some("criu-4.1, host"));
        assert_eq!(get("kernel.6.1.release"), Some("6.1.0-50-amd64"));
        assert_eq!(get("kernel.6.1.packages"), Some("linux-image-6.1.0-50-amd64_6.1.158-1_amd64.deb"));
        assert_eq!(get("kernel.6.1.engine_env"), Some("GLIBC_TUNABLES=glibc.pthread.rseq=0"));
        assert_eq!(get("kernel.6.1.boot_secs"), None);
        let ctx = Context { properties: props, out_dir: None };
        let xml = render_with(&[mk("6.1", Status::Pass, None)], &ctx);
        check_xml(&xml);
        assert!(xml.contains("<property name=\"kernel.6.1.engine\" value=\"host\"/>"), "{xml}");
    }

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

    #[test]
    fn rewrite_writes_a_readable_report_from_results() {
        use std::os::unix::fs::PermissionsExt;
        let out = tempfile::tempdir().unwrap();
        let cells = vec![mk("6.12", Status::Fail, Some("dump: Error (criu/sockets.c:628)"))];
        let doc = serde_json::json!({"schema": "crtest-results/1", "seed": 3, "kernels": {}, "cells": cells});
        std::fs::write(out.path().join("results.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
        rewrite(out.path()).unwrap();
        let path = out.path().join("junit.xml");
        let xml = std::fs::read_to_string(&path).unwrap();
        check_xml(&xml);
        assert!(xml.contains("<property name=\"seed\" value=\"3\"/>"), "{xml}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn text_that_is_not_xml_is_made_safe() {
        assert_eq!(text("a<b>&c\u{1}\u{7}"), "a&lt;b&gt;&amp;c\u{FFFD}\u{FFFD}");
        assert_eq!(attr("say \"hi\"\nnow"), "say &quot;hi&quot;&#10;now");
    }
}

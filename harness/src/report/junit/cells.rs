//! The report of a run's cells: one suite per workload, one case per cell,
//! the run's properties on every suite.

use super::body::{failure_text, steps};
use super::xml::{document, Case, CaseOutcome, Suite};
use crate::result::CellResult;
use crate::util::error::{io_at, IoAt};
use crate::util::fsutil::ReadError;
use crate::verdict::{Stage, Status};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why a run's `junit.xml` could not be rewritten or written.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    /// `why` already names its own cause, so it is not chained again.
    #[error("{}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        why: ReadError,
    },
    #[error("{}: not JSON", path.display())]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: cells", path.display())]
    Cells {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Write(#[from] IoAt),
}

/// Longest `message` attribute: the body has the whole text.
const MESSAGE_CHARS: usize = 500;

/// What a report says about the run besides its cells.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `<properties>` of every suite, in order.
    pub properties: Vec<(String, String)>,
    /// The output directory, to read log tails from (None: no tails).
    pub out_dir: Option<PathBuf>,
}

/// The JUnit report of a run's cells, without run properties or log tails.
pub fn render(cells: &[CellResult]) -> Vec<u8> {
    render_with(cells, &Context::default()).into_bytes()
}

/// The JUnit report of a run's cells with `ctx`'s properties and log tails.
pub fn render_with(cells: &[CellResult], ctx: &Context) -> String {
    let mut workloads: Vec<String> = Vec::new();
    for c in cells {
        if !workloads.contains(&c.cell.label()) {
            workloads.push(c.cell.label());
        }
    }
    let suites: Vec<Suite> = workloads
        .iter()
        .map(|w| Suite {
            name: format!("crtest.{w}"),
            cases: cells.iter().filter(|c| c.cell.label() == *w).map(|c| case_of(c, ctx)).collect(),
        })
        .collect();
    document("crtest", &suites, &ctx.properties)
}

/// Rewrites `out_dir/junit.xml` from `out_dir/results.json`, with the run's
/// properties and log tails from the cells' artifacts.
pub fn rewrite(out_dir: &Path) -> Result<(), JunitError> {
    let path = out_dir.join("results.json");
    let data = match crate::util::fsutil::read_bounded(&path, 256 << 20) {
        Ok(data) => data,
        Err(why) => return Err(JunitError::Unreadable { path, why }),
    };
    let doc: Value = match serde_json::from_slice(&data) {
        Ok(doc) => doc,
        Err(source) => return Err(JunitError::NotJson { path, source }),
    };
    let cells: Vec<CellResult> = match serde_json::from_value(doc.get("cells").cloned().unwrap_or(Value::Null)) {
        Ok(cells) => cells,
        Err(source) => return Err(JunitError::Cells { path, source }),
    };
    let ctx = Context { properties: properties(&doc), out_dir: Some(out_dir.to_path_buf()) };
    Ok(write_readable(&out_dir.join("junit.xml"), render_with(&cells, &ctx).as_bytes())?)
}

/// Writes a report file atomically, readable by everyone (0644) like the
/// rest of a run's output, whatever the umask or temp-file mode.
pub fn write_readable(path: &Path, data: &[u8]) -> Result<(), IoAt> {
    use std::os::unix::fs::PermissionsExt;
    crate::util::fsutil::write_atomic(path, data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(io_at("setting the mode of", path))
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
    Case { name: c.cell.id.clone(), classname: c.cell.label(), secs: own_secs(c), outcome, body, system_out: steps(c) }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{check_xml, element, mk, stage};
    use super::*;
    use crate::verdict::Outcome;

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
    fn rewrite_names_the_document_it_could_not_use() {
        use crate::util::error::chain;
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("results.json");
        let e = rewrite(out.path()).unwrap_err();
        assert!(matches!(e, JunitError::Unreadable { .. }), "{e:?}");
        assert_eq!(chain(&e), format!("{}: cannot read: No such file or directory (os error 2)", file.display()));
        std::fs::write(&file, "{\"cells\": 3}").unwrap();
        let e = rewrite(out.path()).unwrap_err();
        assert!(chain(&e).starts_with(&format!("{}: cells: invalid type", file.display())), "{}", chain(&e));
    }
}

//! KCIDB export (`crtest export --format kcidb`): a run's results as KCIDB
//! I/O JSON, schema 5.3 (the `kcidb-io` package's `LATEST`), for kernel CI
//! dashboards.
//!
//! Objects: one checkout for the run (origin `crtest`, id from the digest
//! of its results.json, so one run always exports the same ids); one build
//! per guest kind (a Debian kernel package, not built by crtest: the exact
//! packages are the build's `comment` and `misc`); one test per cell at
//! path `crtest.WORKLOAD.SRC_to_DST`, attached to the *target* kind's
//! build: a cross cell tests restoring onto that kernel, and its source
//! side is tested by its control, which is the source kind's own cell.
//!
//! Statuses follow KCIDB's own definitions (kcidb-io, `$defs.status`):
//! PASS, FAIL, ERROR and SKIP are the same words. A cell that never got to
//! its dump (a guest that did not boot, a reference run that broke) is
//! MISS: "the test didn't run due to a failure in the test harness".
//! CONTROL-FAIL is ERROR: the cell ran, but with its control failing too
//! "the status of the tested code is unknown", which is KCIDB's ERROR; it
//! must never read as a FAIL of the kernel, and MISS would claim it did
//! not run. The reason (and crtest's own status) goes in `log_excerpt` and
//! `misc`.

use crate::result::CellResult;
use serde_json::{json, Map, Value};

/// The results document's cells are not crtest's cells.
#[derive(Debug, thiserror::Error)]
#[error("results cells")]
pub struct KcidbError(#[source] serde_json::Error);

/// The KCIDB I/O schema version written.
pub const MAJOR: u64 = 5;
pub const MINOR: u64 = 3;
/// KCIDB origin: the CI system's name (`^[a-z0-9_]+$`).
pub const ORIGIN: &str = "crtest";
/// KCIDB's `log_excerpt` limit, in characters.
const EXCERPT_CHARS: usize = 16384;

/// The KCIDB document of a results document; `raw` is its bytes (the run's
/// id is their digest) and `out_dir` where log tails are read from.
pub fn export(doc: &Value, raw: &[u8], out_dir: Option<&std::path::Path>) -> Result<Value, KcidbError> {
    let cells: Vec<CellResult> =
        serde_json::from_value(doc.get("cells").cloned().unwrap_or(Value::Null)).map_err(KcidbError)?;
    let run = format!("{ORIGIN}:run-{}", &crate::util::fsutil::sha256_hex(raw)[..16]);
    let not_run: Vec<(&str, &str, &str, &str)> = doc
        .get("not_run")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| split_id(v.as_str()?))
        .collect();
    let mut builds = builds(doc, &cells, &run);
    for (_, _, _, dst) in &not_run {
        if !builds.iter().any(|b| b["id"] == build_id(&run, dst)) {
            builds.push(build(&run, dst, None));
        }
    }
    let mut tests: Vec<Value> = cells.iter().map(|c| test(c, &run, doc, out_dir)).collect();
    tests.extend(not_run.iter().map(|n| missed(*n, &run)));
    Ok(json!({
        "version": {"major": MAJOR, "minor": MINOR},
        "checkouts": [checkout(doc, &run)],
        "builds": builds,
        "tests": tests,
    }))
}

fn checkout(doc: &Value, run: &str) -> Value {
    let mut misc = Map::new();
    for key in ["crtest_version", "matrix", "accel", "engine", "seed", "iters", "wall_secs", "summary"] {
        if let Some(v) = doc.get(key).filter(|v| !v.is_null()) {
            misc.insert(key.into(), v.clone());
        }
    }
    let comment = format!(
        "crtest run of {} (seed {}): Debian kernel packages, checkpointed and restored with CRIU",
        doc.get("matrix").and_then(Value::as_str).unwrap_or("a matrix"),
        doc.get("seed").map_or("?".to_string(), Value::to_string)
    );
    json!({"id": run, "origin": ORIGIN, "comment": clean(&comment), "misc": misc})
}

fn build_id(run: &str, kind: &str) -> String {
    format!("{run}:{kind}")
}

/// One build per guest kind the run had, and per kind a cell names that
/// the run did not prepare (a skipped cell's kernel): tests never point at
/// a build the document lacks.
fn builds(doc: &Value, cells: &[CellResult], run: &str) -> Vec<Value> {
    let kernels = doc.get("kernels").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut kinds: Vec<String> = kernels.keys().cloned().collect();
    for c in cells {
        for k in [c.cell.src_kind(), c.cell.dst_kind()] {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
    }
    kinds.iter().map(|kind| build(run, kind, kernels.get(kind))).collect()
}

fn build(run: &str, kind: &str, info: Option<&Value>) -> Value {
    let mut misc = Map::new();
    misc.insert("kind".into(), json!(kind));
    misc.insert("kernel".into(), json!(crate::plan::kernel_of(kind)));
    let comment = match info {
        Some(k) => {
            for key in ["release", "packages", "engine", "engine_env", "start", "boot_secs"] {
                if let Some(v) = k.get(key).filter(|v| !v.is_null()) {
                    misc.insert(key.into(), v.clone());
                }
            }
            let packages: Vec<&str> =
                k.get("packages").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            format!(
                "Debian kernel {} ({}), guest engine {}",
                k.get("release").and_then(Value::as_str).unwrap_or("?"),
                if packages.is_empty() { "no package recorded".to_string() } else { packages.join(", ") },
                k.get("engine").and_then(Value::as_str).unwrap_or("?")
            )
        }
        None => format!("guest kind {kind}: not prepared in this run (its cells were skipped)"),
    };
    let mut b = json!({
        "id": build_id(run, kind),
        "checkout_id": run,
        "origin": ORIGIN,
        "architecture": "x86_64",
        "comment": clean(&comment),
        "misc": misc,
    });
    if let Some(release) = info.and_then(|k| k.get("release")).and_then(Value::as_str) {
        b["config_name"] = json!(clean(release));
    }
    b
}

/// KCIDB's status of a cell (see the module comment).
pub fn status(c: &CellResult) -> &'static str {
    use crate::verdict::Status;
    match c.status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Skip => "SKIP",
        Status::ControlFail => "ERROR",
        Status::Error if never_ran(c) => "MISS",
        Status::Error => "ERROR",
    }
}

/// Whether the test proper (the dump onward) never started: every stage
/// from the dump on was not run, or broke before doing anything.
fn never_ran(c: &CellResult) -> bool {
    use crate::verdict::{Outcome, Stage};
    let from_dump = c.stages.iter().skip_while(|s| matches!(s.stage, Stage::BootSrc | Stage::Reference));
    !from_dump
        .filter(|s| !matches!(s.stage, Stage::BootDst))
        .any(|s| matches!(s.outcome, Outcome::Ok | Outcome::Failed(_) | Outcome::Unsupported(_)))
}

/// `crtest.WORKLOAD.SRC_to_DST`, each component reduced to KCIDB's path
/// characters (`[a-zA-Z0-9_-]`): `6.12@criu-4.2` is `6_12_criu-4_2`.
pub fn path(c: &CellResult) -> String {
    path_of(&c.cell.label(), &c.cell.src_kind(), &c.cell.dst_kind())
}

fn path_of(workload: &str, src: &str, dst: &str) -> String {
    let part = |s: &str| -> String {
        s.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' { ch } else { '_' }).collect()
    };
    format!("crtest.{}.{}_to_{}", part(workload), part(src), part(dst))
}

/// (id, workload, source kind, target kind) of a cell id `W/SRC->DST`.
fn split_id(id: &str) -> Option<(&str, &str, &str, &str)> {
    let (w, pair) = id.split_once('/')?;
    let (src, dst) = pair.split_once("->")?;
    Some((id, w, src, dst))
}

/// A planned cell an interrupted run never judged: KCIDB's MISS.
fn missed((id, w, src, dst): (&str, &str, &str, &str), run: &str) -> Value {
    json!({
        "id": format!("{run}:{id}"),
        "build_id": build_id(run, dst),
        "origin": ORIGIN,
        "path": path_of(w, src, dst),
        "status": "MISS",
        "comment": clean(&format!("{id}: not run (the run was interrupted)")),
        "misc": {"cell": id, "crtest_status": "NOT RUN"},
    })
}

fn test(c: &CellResult, run: &str, doc: &Value, out_dir: Option<&std::path::Path>) -> Value {
    let mut misc = Map::new();
    misc.insert("cell".into(), json!(c.cell.id));
    misc.insert("crtest_status".into(), json!(c.status.to_string()));
    for (key, v) in [
        ("reason", c.reason.as_ref().map(|r| json!(clean(r)))),
        ("control", c.cell.control.as_ref().map(|x| json!(x))),
        ("control_status", c.control_status.map(|s| json!(s.to_string()))),
        ("known", c.known.as_ref().map(|k| json!(k))),
        ("artifacts", c.artifacts.as_ref().map(|a| json!(a))),
        ("dump_after", c.dump_after.map(|d| json!(d))),
    ] {
        if let Some(v) = v {
            misc.insert(key.into(), v);
        }
    }
    misc.insert("stages".into(), serde_json::to_value(&c.stages).unwrap_or(Value::Null));
    let accel = doc.get("accel").and_then(Value::as_str).unwrap_or("?");
    let environment = format!(
        "QEMU ({accel}): dumped in a guest of kind {}, restored in another guest of kind {}",
        c.cell.src_kind(),
        c.cell.dst_kind()
    );
    let mut t = json!({
        "id": format!("{run}:{}", c.cell.id),
        "build_id": build_id(run, &c.cell.dst_kind()),
        "origin": ORIGIN,
        "path": path(c),
        "status": status(c),
        "comment": clean(&format!("{}: {}", c.cell.id, c.status)),
        "duration": super::junit::own_secs(c),
        "environment": {"comment": clean(&environment), "misc": {"src_kind": c.cell.src_kind(), "dst_kind": c.cell.dst_kind()}},
        "misc": misc,
    });
    if c.status != crate::verdict::Status::Pass {
        t["log_excerpt"] = json!(excerpt(&super::junit::failure_text(c, out_dir)));
    }
    t
}

/// KCIDB text fields may not hold NUL.
fn clean(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// The failure text within KCIDB's limit, keeping its start (the reason).
fn excerpt(text: &str) -> String {
    let text = clean(text);
    if text.chars().count() <= EXCERPT_CHARS {
        return text;
    }
    const MARK: &str = "\n[truncated]\n";
    text.chars().take(EXCERPT_CHARS - MARK.len()).collect::<String>() + MARK
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::junit::fixture::mk;
    use crate::verdict::{Outcome, Stage, StageRecord, Status};

    fn stage(stage: Stage, outcome: Outcome) -> StageRecord {
        StageRecord { stage, outcome, secs: 1.0 }
    }

    fn doc(cells: &[CellResult]) -> Value {
        json!({
            "schema": "crtest-results/1", "matrix": "matrix.yaml", "seed": 1, "accel": "tcg", "engine": "host",
            "kernels": {"6.1": {"release": "6.1.0-50-amd64", "packages": ["linux-image-6.1.0-50-amd64_6.1.158-1_amd64.deb"],
                                "engine": "host", "engine_env": {}}},
            "cells": cells,
        })
    }

    #[test]
    fn statuses_follow_kcidb_definitions() {
        let ok = |s: Stage| stage(s, Outcome::Ok);
        let mut never = mk("6.12", Status::Error, Some("boot_dst: no ready line"));
        never.stages = vec![
            ok(Stage::BootSrc),
            ok(Stage::Reference),
            stage(Stage::Dump, Outcome::NotRun),
            stage(Stage::BootDst, Outcome::Broken("no ready line".into())),
        ];
        let mut no_boot = mk("6.12", Status::Error, Some("boot_src: panic"));
        no_boot.stages = vec![stage(Stage::BootSrc, Outcome::Broken("panic".into()))];
        let mut broke_late = mk("6.12", Status::Error, Some("restore: timed out"));
        broke_late.stages =
            vec![ok(Stage::Dump), ok(Stage::Transfer), stage(Stage::Restore, Outcome::Broken("t".into()))];
        let cases = [
            (mk("6.1", Status::Pass, None), "PASS"),
            (mk("6.12", Status::Fail, Some("restore: x")), "FAIL"),
            (mk("6.12", Status::Skip, Some("needs 6.13")), "SKIP"),
            (mk("6.12", Status::ControlFail, Some("control ... FAIL too")), "ERROR"),
            (never, "MISS"),
            (no_boot, "MISS"),
            (mk("6.12", Status::Error, Some("?")), "MISS"),
            (broke_late, "ERROR"),
        ];
        for (c, want) in &cases {
            assert_eq!(status(c), *want, "{:?}", c.reason);
        }
    }

    #[test]
    fn paths_ids_and_builds() {
        let mut c = mk("6.12", Status::Fail, Some("restore: Error (criu)\0"));
        c.cell.src_engine = Some("criu-4.2".into());
        c.cell.id = "counter/6.1@criu-4.2->6.12".into();
        assert_eq!(path(&c), "crtest.counter.6_1_criu-4_2_to_6_12");
        let cells = vec![mk("6.1", Status::Pass, None), c];
        let d = doc(&cells);
        let raw = serde_json::to_vec(&d).unwrap();
        let k = export(&d, &raw, None).unwrap();
        assert_eq!(k["version"], json!({"major": 5, "minor": 3}));
        let run = k["checkouts"][0]["id"].as_str().unwrap();
        assert!(run.starts_with("crtest:run-") && run.len() == "crtest:run-".len() + 16, "{run}");
        let builds: Vec<&str> = k["builds"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(builds, [format!("{run}:6.1"), format!("{run}:6.1@criu-4.2"), format!("{run}:6.12")]);
        assert!(k["builds"][0]["comment"].as_str().unwrap().contains("linux-image-6.1.0-50-amd64_6.1.158-1_amd64.deb"));
        assert_eq!(k["builds"][0]["misc"]["packages"][0], "linux-image-6.1.0-50-amd64_6.1.158-1_amd64.deb");
        assert!(k["builds"][2]["comment"].as_str().unwrap().contains("not prepared"));
        let t = &k["tests"][1];
        assert_eq!(t["build_id"], format!("{run}:6.12"));
        assert_eq!(t["status"], "FAIL");
        assert_eq!(t["id"], format!("{run}:counter/6.1@criu-4.2->6.12"));
        assert!(t["log_excerpt"].as_str().unwrap().starts_with("restore: Error (criu)\u{FFFD}\n"), "{t}");
        assert!(k["tests"][0].get("log_excerpt").is_none());
        // The same results export the same ids; other results other ids.
        assert_eq!(export(&d, &raw, None).unwrap(), k);
        assert_ne!(export(&d, b"other", None).unwrap()["checkouts"][0]["id"], k["checkouts"][0]["id"]);
    }

    #[test]
    fn excerpts_stay_within_the_schema_limit() {
        let long = "x".repeat(40_000);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS);
        assert!(e.ends_with("[truncated]\n"));
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn cells_an_interrupted_run_never_judged_are_miss() {
        let mut d = doc(&[]);
        d["not_run"] = json!(["counter/6.1->6.12@criu-4.2", "not an id"]);
        let out = export(&d, b"x", None).unwrap();
        let tests = out["tests"].as_array().unwrap();
        assert_eq!(tests.len(), 1, "{out}");
        assert_eq!(tests[0]["status"], "MISS");
        assert_eq!(tests[0]["path"], "crtest.counter.6_1_to_6_12_criu-4_2");
        let build = tests[0]["build_id"].as_str().unwrap();
        assert!(out["builds"].as_array().unwrap().iter().any(|b| b["id"] == build), "{out}");
    }
}

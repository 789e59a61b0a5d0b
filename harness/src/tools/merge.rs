//! `crtest merge DIR...`: join the `results.json` of partitioned runs (see
//! `partition`) into one document, as if a single run had produced it.
//!
//! Cells stay `serde_json::Value` so fields this version does not know about
//! survive the round trip. Shards must describe the same run (schema, engine,
//! accel, seed, iters), and each cell must come from exactly one shard.

use crate::report::json::SCHEMA;
use crate::report::Summary;
use crate::util::fsutil::ReadError;
use crate::verdict::Status;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Top-level fields that must be equal in every shard (schema is checked apart).
const AGREED: [&str; 4] = ["engine", "accel", "seed", "iters"];
/// How many missing ids an error lists before eliding.
const SHOW_MISSING: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no results to merge")]
    NoShards,
    #[error("{path}: unknown schema {found}, expected {SCHEMA:?}")]
    Schema { path: PathBuf, found: String },
    #[error("shards disagree on {field}: {first} in {first_path} but {other} in {other_path}")]
    Mismatch { field: String, first: String, first_path: PathBuf, other: String, other_path: PathBuf },
    #[error("cell {id} is in two shards: {first} and {second}")]
    Duplicate { id: String, first: PathBuf, second: PathBuf },
    #[error("{} expected cells missing from the shards: {}", .ids.len(), list(.ids))]
    Missing { ids: Vec<String> },
    #[error("{path}: {why}")]
    Malformed { path: PathBuf, why: String },
    #[error("{path}: cell {id} is not a cell of {matrix} (shards of another matrix?)")]
    Foreign { path: PathBuf, id: String, matrix: String },
    /// `why` already names its own cause, so it is not chained again.
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        why: ReadError,
    },
    #[error("parsing {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Largest results document read.
const MAX_BYTES: u64 = 256 << 20;

/// Reads `DIR/results.json`, returning its path (for error messages) and content.
pub fn load_dir(dir: &Path) -> Result<(PathBuf, Value), MergeError> {
    let path = dir.join("results.json");
    let data = match crate::util::fsutil::read_bounded(&path, MAX_BYTES) {
        Ok(data) => data,
        Err(why) => return Err(MergeError::Read { path, why }),
    };
    match serde_json::from_slice(&data) {
        Ok(doc) => Ok((path, doc)),
        Err(source) => Err(MergeError::Parse { path, source }),
    }
}

/// Merges shard documents. With `expected_ids` (the full plan of `matrix`,
/// in its order) cells follow that order, and an absent cell or one the
/// plan does not have is an error; without, cells go by id.
pub fn merge(docs: &[(PathBuf, Value)], expected: Option<(&[String], &str)>) -> Result<Value, MergeError> {
    let expected_ids = expected.map(|(ids, _)| ids);
    docs.first().ok_or(MergeError::NoShards)?;
    for (path, doc) in docs {
        check_schema(path, doc)?;
    }
    // A shard that ran no cell (a partition of a small matrix may be empty)
    // prepared no engine and says nothing about the run's settings.
    let ran = |d: &&(PathBuf, Value)| d.1.get("cells").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
    let (first_path, first) = docs.iter().find(ran).unwrap_or(&docs[0]);
    for (path, doc) in docs.iter().filter(ran) {
        for field in AGREED {
            agree(field, (first_path, first), (path, doc))?;
        }
    }
    let mut cells = collect_cells(docs)?;
    if let Some((ids, matrix)) = expected {
        check_foreign(docs, ids, matrix)?;
        check_complete(&cells, ids)?;
    }
    sort_cells(&mut cells, expected_ids);

    let mut out = first.as_object().cloned().unwrap_or_default();
    out.insert("summary".into(), summary(&cells));
    out.insert("wall_secs".into(), Value::from(max_wall_secs(docs)));
    out.insert("kernels".into(), Value::Object(union_kernels(docs)));
    out.insert("cells".into(), Value::Array(cells));
    Ok(Value::Object(out))
}

fn check_schema(path: &Path, doc: &Value) -> Result<(), MergeError> {
    match doc.get("schema") {
        Some(Value::String(s)) if s == SCHEMA => Ok(()),
        found => Err(MergeError::Schema { path: path.into(), found: show(found) }),
    }
}

fn agree(
    field: &str,
    (first_path, first): (&PathBuf, &Value),
    (path, doc): (&PathBuf, &Value),
) -> Result<(), MergeError> {
    let (a, b) = (first.get(field), doc.get(field));
    if a == b {
        return Ok(());
    }
    Err(MergeError::Mismatch {
        field: field.into(),
        first: show(a),
        first_path: first_path.clone(),
        other: show(b),
        other_path: path.clone(),
    })
}

/// All cells of all shards, each checked for an id, a known status and uniqueness.
fn collect_cells(docs: &[(PathBuf, Value)]) -> Result<Vec<Value>, MergeError> {
    let mut owner: HashMap<String, &PathBuf> = HashMap::new();
    let mut cells = Vec::new();
    for (path, doc) in docs {
        let malformed = |why: String| MergeError::Malformed { path: path.clone(), why };
        let list = doc.get("cells").and_then(Value::as_array).ok_or_else(|| malformed("no cells array".into()))?;
        for cell in list {
            let id = cell_id(cell).ok_or_else(|| malformed(format!("cell without an id: {cell}")))?;
            if status_of(cell).is_none() {
                return Err(malformed(format!("cell {id} has unknown status {}", show(cell.get("status")))));
            }
            // The reports are rebuilt from typed cells: say which cell of
            // which file lacks what, here rather than later without either.
            if let Err(e) = serde_json::from_value::<crate::result::CellResult>(cell.clone()) {
                return Err(malformed(format!("cell {id}: {e}")));
            }
            if let Some(first) = owner.insert(id.to_string(), path) {
                return Err(MergeError::Duplicate { id: id.into(), first: first.clone(), second: path.clone() });
            }
            cells.push(cell.clone());
        }
    }
    Ok(cells)
}

/// Every cell of every shard must be one of the plan's.
fn check_foreign(docs: &[(PathBuf, Value)], expected: &[String], matrix: &str) -> Result<(), MergeError> {
    let known: HashSet<&str> = expected.iter().map(String::as_str).collect();
    for (path, doc) in docs {
        let cells = doc.get("cells").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if let Some(id) = cells.iter().filter_map(cell_id).find(|id| !known.contains(id)) {
            return Err(MergeError::Foreign { path: path.clone(), id: id.into(), matrix: matrix.into() });
        }
    }
    Ok(())
}

fn check_complete(cells: &[Value], expected: &[String]) -> Result<(), MergeError> {
    let present: HashSet<&str> = cells.iter().filter_map(cell_id).collect();
    let ids: Vec<String> = expected.iter().filter(|id| !present.contains(id.as_str())).cloned().collect();
    if ids.is_empty() {
        Ok(())
    } else {
        Err(MergeError::Missing { ids })
    }
}

fn sort_cells(cells: &mut [Value], expected: Option<&[String]>) {
    let rank: HashMap<&str, usize> =
        expected.unwrap_or_default().iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    cells.sort_by_cached_key(|c| {
        let id = cell_id(c).unwrap_or_default().to_string();
        (rank.get(id.as_str()).copied().unwrap_or(usize::MAX), id)
    });
}

fn summary(cells: &[Value]) -> Value {
    let mut s = Summary::default();
    for status in cells.iter().filter_map(status_of) {
        match status {
            Status::Pass => s.pass += 1,
            Status::Fail => s.fail += 1,
            Status::Error => s.error += 1,
            Status::ControlFail => s.control_fail += 1,
            Status::Skip => s.skip += 1,
        }
    }
    serde_json::json!(s)
}

/// Shards run in parallel, so the merged run took as long as the slowest.
fn max_wall_secs(docs: &[(PathBuf, Value)]) -> f64 {
    docs.iter().filter_map(|(_, d)| d.get("wall_secs").and_then(Value::as_f64)).fold(0.0, f64::max)
}

/// Each shard boots its own VMs, so per-kernel details (boot time) differ;
/// the first shard that booted a kernel describes it.
fn union_kernels(docs: &[(PathBuf, Value)]) -> Map<String, Value> {
    let mut kernels = Map::new();
    for map in docs.iter().filter_map(|(_, d)| d.get("kernels").and_then(Value::as_object)) {
        for (name, info) in map {
            kernels.entry(name.clone()).or_insert_with(|| info.clone());
        }
    }
    kernels
}

fn cell_id(cell: &Value) -> Option<&str> {
    cell.get("id").and_then(Value::as_str)
}

/// A cell's status, when it is one crtest writes.
fn status_of(cell: &Value) -> Option<Status> {
    cell.get("status").and_then(|s| serde_json::from_value(s.clone()).ok())
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "absent".to_string(), Value::to_string)
}

fn list(ids: &[String]) -> String {
    let shown = ids.iter().take(SHOW_MISSING).map(String::as_str).collect::<Vec<_>>().join(", ");
    if ids.len() > SHOW_MISSING {
        format!("{shown}, ...")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cell(id: &str, status: &str) -> Value {
        let (workload, pair) = id.split_once('/').expect("id has a workload");
        let (src, dst) = pair.split_once("->").expect("id has a pair");
        json!({"id": id, "workload": workload, "src": src, "dst": dst, "status": status,
               "reason": null, "stages": [], "conversion": [], "artifacts": null, "dump_after": 3,
               "future_field": {"kept": true}})
    }

    fn shard(name: &str, wall: f64, kernels: &[&str], cells: &[(&str, &str)]) -> (PathBuf, Value) {
        let kernels: Map<String, Value> = kernels.iter().map(|k| (k.to_string(), json!({"release": k}))).collect();
        let cells: Vec<Value> = cells.iter().map(|(id, st)| cell(id, st)).collect();
        let doc = json!({"schema": SCHEMA, "crtest_version": "0.1.0", "matrix": "matrix.yaml", "accel": "tcg",
                         "engine": "criu-3.17.1", "seed": 7, "iters": 1, "kernels": kernels, "wall_secs": wall,
                         "summary": {"pass": 0, "fail": 0, "error": 0, "skip": 0}, "cells": cells});
        (PathBuf::from(format!("{name}/results.json")), doc)
    }

    fn three_shards() -> Vec<(PathBuf, Value)> {
        vec![
            shard("s1", 10.0, &["5.10", "6.1"], &[("pipe/6.1->5.10", "PASS"), ("counter/6.1->6.1", "FAIL")]),
            shard("s2", 30.5, &["6.1"], &[("counter/5.10->6.1", "PASS"), ("pipe/5.10->5.10", "SKIP")]),
            shard("s3", 20.0, &["6.12"], &[("counter/5.10->5.10", "ERROR")]),
        ]
    }

    fn ids(doc: &Value) -> Vec<&str> {
        doc["cells"].as_array().expect("cells").iter().filter_map(cell_id).collect()
    }

    #[test]
    fn clean_merge_of_three_shards() {
        let merged = merge(&three_shards(), None).expect("merges");
        assert_eq!(
            ids(&merged),
            ["counter/5.10->5.10", "counter/5.10->6.1", "counter/6.1->6.1", "pipe/5.10->5.10", "pipe/6.1->5.10"]
        );
        assert_eq!(merged["wall_secs"], json!(30.5));
        assert_eq!(merged["seed"], json!(7));
        let kernels: Vec<&String> = merged["kernels"].as_object().expect("kernels").keys().collect();
        assert_eq!(kernels, ["5.10", "6.1", "6.12"]);
        assert_eq!(merged["cells"][0]["future_field"], json!({"kept": true}));
    }

    #[test]
    fn summary_recomputed() {
        let merged = merge(&three_shards(), None).expect("merges");
        assert_eq!(merged["summary"], json!({"pass": 2, "fail": 1, "error": 1, "skip": 1, "control_fail": 0}));
    }

    #[test]
    fn follows_expected_order() {
        let expected: Vec<String> =
            ["pipe/6.1->5.10", "counter/5.10->5.10", "pipe/5.10->5.10", "counter/6.1->6.1"].map(String::from).to_vec();
        let e = merge(&three_shards(), Some((&expected, "m.yaml"))).expect_err("foreign cell").to_string();
        assert_eq!(e, "s2/results.json: cell counter/5.10->6.1 is not a cell of m.yaml (shards of another matrix?)");
        let mut expected = expected;
        expected.push("counter/5.10->6.1".into());
        let merged = merge(&three_shards(), Some((&expected, "m.yaml"))).expect("merges");
        assert_eq!(
            ids(&merged),
            ["pipe/6.1->5.10", "counter/5.10->5.10", "pipe/5.10->5.10", "counter/6.1->6.1", "counter/5.10->6.1"]
        );
    }

    #[test]
    fn duplicate_id_names_both_shards() {
        let mut docs = three_shards();
        docs.push(shard("s4", 1.0, &[], &[("counter/6.1->6.1", "PASS")]));
        let e = merge(&docs, None).expect_err("duplicate").to_string();
        assert!(e.contains("counter/6.1->6.1"), "{e}");
        assert!(e.contains("s1/results.json") && e.contains("s4/results.json"), "{e}");
    }

    #[test]
    fn missing_cells_listed_and_counted() {
        let mut expected: Vec<String> = (0..12).map(|i| format!("w{i:02}/6.1->6.1")).collect();
        expected.push("pipe/6.1->5.10".into());
        expected.extend(
            ["counter/6.1->6.1", "counter/5.10->6.1", "pipe/5.10->5.10", "counter/5.10->5.10"].map(String::from),
        );
        let e = merge(&three_shards(), Some((&expected, "m.yaml"))).expect_err("missing").to_string();
        assert!(e.starts_with("12 expected cells missing"), "{e}");
        assert!(e.contains("w00/6.1->6.1") && e.contains("w09/6.1->6.1") && !e.contains("w10"), "{e}");
        assert!(e.ends_with(", ..."), "{e}");
    }

    #[test]
    fn mismatched_seed_names_values() {
        let mut docs = three_shards();
        docs[2].1["seed"] = json!(8);
        let e = merge(&docs, None).expect_err("seed differs").to_string();
        assert!(e.contains("seed") && e.contains('7') && e.contains('8') && e.contains("s3/results.json"), "{e}");
    }

    #[test]
    fn cell_without_stages_names_file_and_cell() {
        let mut docs = three_shards();
        docs[1].1["cells"][1].as_object_mut().unwrap().remove("stages");
        let e = merge(&docs, None).expect_err("no stages").to_string();
        assert!(e.starts_with("s2/results.json: cell pipe/5.10->5.10: missing field `stages`"), "{e}");
    }

    #[test]
    fn unknown_schema_rejected() {
        let mut docs = three_shards();
        docs[1].1["schema"] = json!("crtest-results/2");
        let e = merge(&docs, None).expect_err("schema").to_string();
        assert!(e.contains("s2/results.json") && e.contains("crtest-results/2"), "{e}");
        assert!(matches!(merge(&[], None), Err(MergeError::NoShards)));
    }

    #[test]
    fn load_dir_reads_results() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, doc) = shard("x", 1.0, &[], &[("counter/6.1->6.1", "PASS")]);
        std::fs::write(dir.path().join("results.json"), doc.to_string()).expect("write");
        let (path, loaded) = load_dir(dir.path()).expect("loads");
        assert_eq!((path, loaded), (dir.path().join("results.json"), doc));
        let e = crate::util::error::chain(&load_dir(&dir.path().join("nope")).expect_err("absent"));
        assert!(e.contains("reading") && e.contains("nope"), "{e}");
        std::fs::write(dir.path().join("results.json"), "{").expect("write");
        let e = crate::util::error::chain(&load_dir(dir.path()).expect_err("not JSON"));
        assert!(e.starts_with(&format!("parsing {}: EOF", dir.path().join("results.json").display())), "{e}");
    }

    #[test]
    fn an_empty_shard_does_not_vote_on_settings() {
        let mut docs = three_shards();
        let mut empty = shard("s4", 1.0, &[], &[]);
        empty.1["engine"] = json!("");
        docs.push(empty);
        let merged = merge(&docs, None).expect("an empty shard merges");
        assert_eq!(merged["engine"], docs[0].1["engine"]);
    }
}

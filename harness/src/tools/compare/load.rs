//! Reading the two results documents, checked before anything is compared.

use super::diff::CONTROL_FAIL;
use crate::report::json::SCHEMA;
use serde_json::Value;
use std::collections::HashSet;
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
    let data =
        crate::util::fsutil::read_bounded(&file, MAX_BYTES).map_err(|e| unreadable(crate::util::error::chain(&e)))?;
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

#[cfg(test)]
mod tests {
    use super::super::fixture::{baseline, doc, SEGV};
    use super::*;
    use crate::tools::compare::{compare, Allow};
    use serde_json::json;

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
}

//! results.json read back (the schema `json.rs` writes, or `crtest merge`'s
//! union of shards), for reporters that render a finished run: the HTML
//! report and `crtest show`. Run-level fields are optional so that a merged
//! or older document still renders; cells are the runner's own type.

use crate::result::CellResult;
use crate::util::fsutil::ReadError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why bytes are not a crtest results document.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("not a crtest results document")]
    NotResults(#[source] serde_json::Error),
    #[error("schema `{0}`: expected crtest-results/N")]
    Schema(String),
}

/// Why `DIR/results.json` could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `why` already names its own cause, so it is not chained again.
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        why: ReadError,
    },
    #[error("parsing {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: DocError,
    },
}

/// Largest results document read (as `crtest merge` allows).
const MAX_BYTES: u64 = 256 << 20;

#[derive(Debug, Deserialize)]
pub struct Doc {
    pub schema: String,
    #[serde(default)]
    pub crtest_version: Option<String>,
    #[serde(default)]
    pub matrix: Option<String>,
    #[serde(default)]
    pub accel: Option<String>,
    /// The distinct engines of the run, e.g. `criu-3.17.1, criu-4.1.1`.
    #[serde(default)]
    pub engine: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub iters: Option<u32>,
    #[serde(default)]
    pub wall_secs: Option<f64>,
    /// Per guest kind.
    #[serde(default)]
    pub kernels: BTreeMap<String, KernelMeta>,
    pub cells: Vec<CellResult>,
}

#[derive(Debug, Default, Deserialize)]
pub struct KernelMeta {
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub engine: Option<String>,
    #[serde(default)]
    pub engine_env: BTreeMap<String, String>,
    #[serde(default)]
    pub boot_secs: Option<f64>,
    #[serde(default)]
    pub start: Option<String>,
    /// The console log, relative to the output dir.
    #[serde(default)]
    pub console: Option<String>,
}

impl Doc {
    /// Parses a results document, refusing anything that is not crtest's.
    pub fn parse(data: &[u8]) -> Result<Doc, DocError> {
        let doc: Doc = serde_json::from_slice(data).map_err(DocError::NotResults)?;
        if !doc.schema.starts_with("crtest-results/") {
            return Err(DocError::Schema(doc.schema));
        }
        Ok(doc)
    }

    /// Reads `DIR/results.json`.
    pub fn load(dir: &Path) -> Result<Doc, LoadError> {
        let path = dir.join("results.json");
        match crate::util::fsutil::read_bounded(&path, MAX_BYTES) {
            Err(why) => Err(LoadError::Read { path, why }),
            Ok(data) => Doc::parse(&data).map_err(|source| LoadError::Parse { path, source }),
        }
    }

    /// The kernels in display order: as the matrix lists them is lost in a
    /// map, so by version (`6.2` before `6.12`).
    pub fn kernel_order(&self) -> Vec<String> {
        let kernels = self.cells.iter().flat_map(|c| [c.cell.src.clone(), c.cell.dst.clone()]);
        super::summary::sorted_kinds(kernels, &[])
    }

    pub fn cell(&self, id: &str) -> Option<&CellResult> {
        self.cells.iter().find(|c| c.cell.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_of_other_tools_are_refused_and_sparse_ones_read() {
        assert!(Doc::parse(br#"{"schema": "other/1", "cells": []}"#).is_err());
        assert!(Doc::parse(b"<html>").is_err());
        let d = Doc::parse(
            br#"{"schema": "crtest-results/1", "cells": [{"id": "c/6.12->6.2", "workload": "c",
            "src": "6.12", "dst": "6.2", "status": "PASS", "stages": [], "conversion": []}]}"#,
        )
        .unwrap();
        assert_eq!((d.cells.len(), d.seed, d.kernel_order()), (1, None, vec!["6.2".to_string(), "6.12".into()]));
    }

    #[test]
    fn a_load_error_names_the_file_and_each_cause_once() {
        use crate::util::error::chain;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let e = Doc::load(dir.path()).unwrap_err();
        assert_eq!(
            chain(&e),
            format!("reading {}: cannot read: No such file or directory (os error 2)", path.display())
        );
        std::fs::write(&path, r#"{"schema": "other/1", "cells": []}"#).unwrap();
        let e = Doc::load(dir.path()).unwrap_err();
        assert_eq!(chain(&e), format!("parsing {}: schema `other/1`: expected crtest-results/N", path.display()));
    }
}

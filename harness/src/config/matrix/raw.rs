//! What a matrix file says, as serde reads it (`deny_unknown_fields`);
//! nothing here is checked yet (see `validate.rs`).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatrix {
    pub(super) kernels: Vec<String>,
    pub(super) workloads: Vec<String>,
    #[serde(default)]
    pub(super) pairs: Option<RawPairs>,
    /// C/R modes every cell runs in (`dump` by default).
    #[serde(default)]
    pub(super) modes: Option<Vec<String>>,
    #[serde(default)]
    pub(super) timeouts: RawTimeouts,
    #[serde(default)]
    pub(super) vm: RawVm,
    /// Milliseconds each workload step sleeps (CRTEST_STEP_MS).
    #[serde(default)]
    pub(super) step_ms: Option<u32>,
    /// The engine every kernel's guest runs (`host` by default), and
    /// per-kernel overrides (CRIU 3.17 cannot run on 6.13 and newer).
    #[serde(default)]
    pub(super) engine: Option<String>,
    #[serde(default)]
    pub(super) kernel_engines: std::collections::BTreeMap<String, String>,
    /// `identity` (default) or the path of a converter command (relative to
    /// the matrix file) following the contract in `convert.rs`.
    #[serde(default)]
    pub(super) converter: Option<String>,
    /// The user's own programs, described like library workloads plus `path`.
    #[serde(default)]
    pub(super) programs: Vec<crate::config::workload::Workload>,
    /// A formats file replacing the project's `converters/formats.yaml`
    /// (relative to the matrix file).
    #[serde(default)]
    pub(super) formats: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawPairs {
    One(String),
    Many(Vec<RawPair>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawPair {
    Kind(String),
    Explicit([String; 2]),
    Engines(RawEnginePair),
}

/// A kernel pair run with other engines than the kernels' own: a dump and a
/// restore engine, or `engines:` for every (dump, restore) combination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnginePair {
    pub(super) src: String,
    pub(super) dst: String,
    pub(super) dump_engine: Option<String>,
    pub(super) restore_engine: Option<String>,
    #[serde(default)]
    pub(super) engines: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub(super) boot: Option<u64>,
    pub(super) operation: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVm {
    /// `pvh` (default: boot the uncompressed kernel directly) or `bzimage`.
    pub(super) boot: Option<String>,
    pub(super) memory_mb: Option<u32>,
    pub(super) cpu: Option<String>,
    pub(super) accel: Option<String>,
    /// `other-guest` (default: a second guest of the target kind restores,
    /// as a migration would) or `dumping-guest`.
    pub(super) restore_in: Option<String>,
}

//! The validated matrix: what a run is planned from.

use crate::config::workload::Library;
use crate::vm::qemu::Accel;
use std::path::PathBuf;
use std::time::Duration;

/// A kernel pair with the engine that dumps and the one that restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnginePair {
    pub src: String,
    pub dst: String,
    pub dump_engine: String,
    pub restore_engine: String,
}

/// How to choose the accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM only after a probe boot succeeds, else TCG.
    Auto,
    Force(Accel),
}

/// An accelerator name that is none of `auto`, `kvm` and `tcg`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected accel auto, kvm or tcg, got `{0}`")]
pub struct AccelError(pub String);

impl std::str::FromStr for AccelChoice {
    type Err = AccelError;
    fn from_str(s: &str) -> Result<Self, AccelError> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Force(Accel::Kvm)),
            "tcg" => Ok(AccelChoice::Force(Accel::Tcg)),
            other => Err(AccelError(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub boot: Duration,
    pub operation: Duration,
}

/// A validated matrix.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub path: PathBuf,
    pub kernels: Vec<String>,
    pub workloads: Vec<String>,
    /// The C/R modes every cell runs in (`dump` unless the matrix says).
    pub modes: Vec<crate::config::mode::Mode>,
    /// (source, target) kernel pairs in catalog order.
    pub pairs: Vec<(String, String)>,
    pub timeouts: Timeouts,
    pub memory_mb: u32,
    pub cpu: String,
    /// Boot the PVH entry of the uncompressed kernel rather than the bzImage.
    pub pvh: bool,
    /// Restore in the guest that dumped (`vm.restore_in: dumping-guest`).
    pub restore_in_dumping_guest: bool,
    pub accel: AccelChoice,
    pub step_ms: u32,
    /// The engine of each kernel of the matrix.
    pub engines: std::collections::BTreeMap<String, String>,
    /// Pairs run with engines of their own (see `RawEnginePair`).
    pub engine_pairs: Vec<EnginePair>,
    /// None for identity, else the converter command used between images of
    /// one format (chains between formats come from `formats`).
    pub converter: Option<PathBuf>,
    pub formats: crate::config::formats::Formats,
    /// The library plus this matrix's `programs:`.
    pub library: Library,
}

/// Ranges of the matrix's numbers, checked at load (and documented there).
pub const MEMORY_MB: std::ops::RangeInclusive<u32> = 256..=65536;
pub const STEP_MS: std::ops::RangeInclusive<u32> = 1..=60_000;
/// Seconds: a guest operation may take minutes under TCG, never more than a day.
pub const TIMEOUT_S: std::ops::RangeInclusive<u64> = 1..=86_400;

pub const PAIR_KINDS: &str = "all, diagonal, upgrade, downgrade, or a list of [src, dst]";

impl Matrix {
    /// A matrix made on the command line (`crtest cell`, `crtest bisect`),
    /// with the defaults a matrix file would get.
    pub fn for_pairs(
        library: &Library,
        formats: &crate::config::formats::Formats,
        workload: &str,
        pairs: Vec<(String, String)>,
    ) -> Matrix {
        let mut kernels: Vec<String> = pairs.iter().flat_map(|(s, d)| [s.clone(), d.clone()]).collect();
        kernels.dedup();
        Matrix {
            path: PathBuf::from("(command line)"),
            kernels,
            workloads: vec![workload.to_string()],
            modes: vec![crate::config::mode::Mode::Dump],
            pairs,
            timeouts: Timeouts { boot: Duration::from_secs(180), operation: Duration::from_secs(180) },
            memory_mb: 2048,
            cpu: "max".into(),
            pvh: true,
            restore_in_dumping_guest: false,
            accel: AccelChoice::Auto,
            step_ms: 100,
            engines: Default::default(),
            engine_pairs: vec![],
            converter: None,
            library: library.clone(),
            formats: formats.clone(),
        }
    }
}

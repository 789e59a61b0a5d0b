//! `results.json`: every cell with its status, reason and per-stage timings,
//! plus what the run ran on. Versioned so tools can tell formats apart.

use super::Summary;
use crate::result::{CellResult, VmRecord};
use serde::Serialize;
use std::collections::BTreeMap;

pub const SCHEMA: &str = "crtest-results/1";

#[derive(Debug, Serialize)]
pub struct Results<'a> {
    pub schema: &'static str,
    pub crtest_version: &'static str,
    pub matrix: String,
    pub accel: crate::vm::qemu::Accel,
    pub engine: String,
    pub seed: u64,
    pub iters: u32,
    pub kernels: BTreeMap<String, KernelInfo>,
    /// Every VM of the run by name: a kind's source guest (the kind) and its
    /// target guest (`KIND~restore`).
    pub vms: BTreeMap<String, VmInfo>,
    pub wall_secs: f64,
    /// Ctrl-C or SIGTERM ended the run: `cells` holds only the cells judged
    /// before it, `not_run` the ids of the rest of the plan.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_run: Vec<String>,
    pub summary: Summary,
    pub cells: &'a [CellResult],
}

#[derive(Debug, Serialize)]
pub struct KernelInfo {
    pub release: String,
    pub packages: Vec<String>,
    /// The engine this kernel's guest ran.
    pub engine: String,
    /// The environment that engine ran with (kernels/engines.yaml `env`).
    pub engine_env: BTreeMap<String, String>,
    pub boot_secs: Option<f64>,
    /// `cold`, `saved` (booted, and saved its state) or `resumed`.
    pub start: Option<crate::vm::qemu::Start>,
    pub console: Option<String>,
}

/// Pretty JSON of the results, newline-terminated.
pub fn render(results: &Results) -> serde_json::Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(results)?;
    out.push(b'\n');
    Ok(out)
}

/// How each VM started, by VM name.
#[derive(Debug, Clone, Serialize)]
pub struct VmInfo {
    pub boot_secs: Option<f64>,
    pub start: Option<crate::vm::qemu::Start>,
    /// The console log file, relative to the output dir.
    pub console: String,
}

/// Boot times, start kinds and console files of the VMs, by kernel.
pub fn vm_info(vms: &[VmRecord]) -> BTreeMap<String, VmInfo> {
    vms.iter()
        .map(|v| {
            let info =
                VmInfo { boot_secs: v.boot_secs, start: v.start, console: format!("vms/{}.console.log", v.kernel) };
            (v.kernel.clone(), info)
        })
        .collect()
}

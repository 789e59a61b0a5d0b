//! `results.json`: every cell with its status, reason and per-stage timings,
//! plus what the run ran on. Versioned so tools can tell formats apart.

use super::Summary;
use crate::runner::{CellResult, VmRecord};
use serde::Serialize;
use std::collections::BTreeMap;

pub const SCHEMA: &str = "crtest-results/1";

#[derive(Debug, Serialize)]
pub struct Results<'a> {
    pub schema: &'static str,
    pub crtest_version: &'static str,
    pub matrix: String,
    pub accel: crate::vm::Accel,
    pub engine: String,
    pub seed: u64,
    pub iters: u32,
    pub kernels: BTreeMap<String, KernelInfo>,
    pub wall_secs: f64,
    pub summary: Summary,
    pub cells: &'a [CellResult],
}

#[derive(Debug, Serialize)]
pub struct KernelInfo {
    pub release: String,
    pub packages: Vec<String>,
    /// The engine this kernel's guest ran.
    pub engine: String,
    pub boot_secs: Option<f64>,
    pub console: Option<String>,
}

/// Pretty JSON of the results, newline-terminated.
pub fn render(results: &Results) -> anyhow::Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(results)?;
    out.push(b'\n');
    Ok(out)
}

/// Boot times and console files of the VMs, by kernel.
pub fn vm_info(vms: &[VmRecord]) -> BTreeMap<String, (Option<f64>, String)> {
    vms.iter().map(|v| (v.kernel.clone(), (v.boot_secs, format!("vms/{}.console.log", v.kernel)))).collect()
}

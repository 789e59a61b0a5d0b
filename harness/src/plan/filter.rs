//! Command-line narrowing of a plan: kernels, workloads, globs, kinds, ids,
//! partitions.

use super::kind::kernel_of;
use std::collections::BTreeSet;

/// Command-line narrowing of a matrix.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Keep cells whose source and target are both among these.
    pub kernels: Vec<String>,
    pub workloads: Vec<String>,
    /// Only the cells of this slice (`--partition K/N`).
    pub partition: Option<super::partition::Partition>,
    /// Run cells of engines a workload declares a known gap of.
    pub run_known_gaps: bool,
    /// Keep only cells whose id matches one of these globs (`-t`).
    pub tests: Vec<String>,
    /// Leave out cells whose id matches one of these globs (`-x`).
    pub excludes: Vec<String>,
    /// Keep only cells whose source kind is one of these (`--src`).
    pub srcs: Vec<String>,
    /// Keep only cells whose target kind is one of these (`--dst`).
    pub dsts: Vec<String>,
    /// Keep only these cell ids (`--rerun-failed`).
    pub ids: Option<BTreeSet<String>>,
}

impl Filters {
    /// Whether the cell `id` (`src_kind -> dst_kind`) survives the id, glob
    /// and kind filters. A cell left out here may come back as the control
    /// of a kept one: a cross cell is judged against its control.
    pub fn keeps(&self, id: &str, src_kind: &str, dst_kind: &str) -> bool {
        let globbed = |globs: &[String]| globs.iter().any(|g| crate::config::glob::matches(g, id));
        let kinds = |wanted: &[String], kind: &str| wanted.is_empty() || wanted.iter().any(|w| kind_matches(w, kind));
        (self.tests.is_empty() || globbed(&self.tests))
            && !globbed(&self.excludes)
            && kinds(&self.srcs, src_kind)
            && kinds(&self.dsts, dst_kind)
            && self.ids.as_ref().is_none_or(|ids| ids.contains(id))
    }
}

/// `--src`/`--dst` matching: a kind exactly, and a plain kernel id every
/// kind of that kernel (`6.12` is `6.12` and `6.12@criu-4.2`).
fn kind_matches(wanted: &str, kind: &str) -> bool {
    wanted == kind || (!wanted.contains('@') && kernel_of(kind) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_kernels_match_their_engine_kinds() {
        assert!(kind_matches("6.12", "6.12@criu-4.2"));
        assert!(kind_matches("6.12@criu-4.2", "6.12@criu-4.2"));
        assert!(!kind_matches("6.12@criu-4.1", "6.12@criu-4.2"));
        assert!(!kind_matches("6.1", "6.12"));
    }
}

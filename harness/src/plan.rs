//! The plan: cells (workload x source kernel x target kernel) with stable ids,
//! filtered, and the operations they need (one dump per workload and source,
//! restored on every target).

use crate::kernel::Catalog;
use crate::matrix::Matrix;
use crate::workload::Library;
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Cell {
    /// `workload/src->dst`, stable across runs.
    pub id: String,
    pub workload: String,
    pub src: String,
    pub dst: String,
    /// Why this cell cannot run, decided before any VM starts.
    pub skip: Option<String>,
}

/// Command-line narrowing of a matrix.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Keep cells whose source and target are both among these.
    pub kernels: Vec<String>,
    pub workloads: Vec<String>,
    /// Only the cells of this slice (`--partition K/N`).
    pub partition: Option<crate::partition::Partition>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cells: Vec<Cell>,
    /// A number per (workload, source) from their positions in the matrix, so
    /// the same dump gets the same PID range whatever the filters, partition
    /// or parallelism.
    #[serde(skip)]
    pub slots: std::collections::BTreeMap<(String, String), usize>,
}

/// Why a pair whose kernels run different engines cannot run yet: images
/// would need a converter chain between the engines' formats, and a missing
/// step is never replaced by a silent identity.
fn cross_engine(matrix: &Matrix, src: &str, dst: &str) -> Option<String> {
    let engine = |k: &str| matrix.engines.get(k).map(String::as_str).unwrap_or(crate::engine::HOST);
    let (a, b) = (engine(src), engine(dst));
    (a != b).then(|| {
        format!("dump engine {a} and restore engine {b} differ: no converter chain between their formats is built")
    })
}

pub fn cell_id(workload: &str, src: &str, dst: &str) -> String {
    format!("{workload}/{src}->{dst}")
}

impl Plan {
    pub fn new(matrix: &Matrix, catalog: &Catalog, library: &Library, filters: &Filters) -> Plan {
        let keep_k = |k: &String| filters.kernels.is_empty() || filters.kernels.contains(k);
        let keep_w = |w: &String| filters.workloads.is_empty() || filters.workloads.contains(w);
        let mut cells = Vec::new();
        for w in matrix.workloads.iter().filter(|w| keep_w(w)) {
            let workload = library.get(w).expect("matrix validated against library");
            for (src, dst) in matrix.pairs.iter().filter(|(s, d)| keep_k(s) && keep_k(d)) {
                if filters.partition.is_some_and(|p| !p.contains(&cell_id(w, src, dst))) {
                    continue;
                }
                let skip = [src, dst]
                    .iter()
                    .find_map(|k| {
                        let version = &catalog.get(k).expect("matrix validated against catalog").version;
                        workload.skip_on(version).map(|why| format!("kernel {k}: {why}"))
                    })
                    .or_else(|| cross_engine(matrix, src, dst));
                cells.push(Cell {
                    id: cell_id(w, src, dst),
                    workload: w.clone(),
                    src: src.clone(),
                    dst: dst.clone(),
                    skip,
                });
            }
        }
        let mut slots = std::collections::BTreeMap::new();
        for (wi, w) in matrix.workloads.iter().enumerate() {
            for (ki, k) in matrix.kernels.iter().enumerate() {
                slots.insert((w.clone(), k.clone()), wi * matrix.kernels.len() + ki);
            }
        }
        Plan { cells, slots }
    }

    pub fn runnable(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(|c| c.skip.is_none())
    }

    /// (workload, source) pairs to dump, each once.
    pub fn dumps(&self) -> BTreeSet<(String, String)> {
        self.runnable().map(|c| (c.workload.clone(), c.src.clone())).collect()
    }

    /// Kernels that need a VM.
    pub fn kernels(&self) -> BTreeSet<String> {
        self.runnable().flat_map(|c| [c.src.clone(), c.dst.clone()]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::tests::{fixtures, matrix};

    #[test]
    fn cells_skips_and_dumps() {
        let (_d, catalog, library) = fixtures();
        let m = matrix("kernels: [\"5.10\", \"6.1\", \"6.12\"]\nworkloads: [counter, pipe]\n").unwrap();
        let plan = Plan::new(&m, &catalog, &library, &Filters::default());
        assert_eq!(plan.cells.len(), 18);
        assert_eq!(plan.cells[0].id, "counter/5.10->5.10");
        let skipped: Vec<&Cell> = plan.cells.iter().filter(|c| c.skip.is_some()).collect();
        // pipe needs >= 6.0: every pair touching 5.10 is skipped (5 of 9).
        assert_eq!(skipped.len(), 5);
        assert!(skipped[0].skip.as_ref().unwrap().contains("kernel 5.10: pipe needs kernel >= 6.0"));
        // counter dumps on 3 sources, pipe on 2.
        assert_eq!(plan.dumps().len(), 5);
    }

    #[test]
    fn partitions_cover_every_cell_once() {
        let (_d, catalog, library) = fixtures();
        let m = matrix("kernels: [\"5.10\", \"6.1\", \"6.12\"]\nworkloads: [counter, pipe]\n").unwrap();
        let all = Plan::new(&m, &catalog, &library, &Filters::default());
        let mut seen = Vec::new();
        for k in 1..=3 {
            let f = Filters { partition: Some(format!("{k}/3").parse().unwrap()), ..Filters::default() };
            seen.extend(Plan::new(&m, &catalog, &library, &f).cells.into_iter().map(|c| c.id));
        }
        seen.sort();
        let mut ids: Vec<String> = all.cells.into_iter().map(|c| c.id).collect();
        ids.sort();
        assert_eq!(seen, ids);
    }

    #[test]
    fn filters_narrow_both_axes() {
        let (_d, catalog, library) = fixtures();
        let m = matrix("kernels: [\"5.10\", \"6.1\", \"6.12\"]\nworkloads: [counter, pipe]\n").unwrap();
        let f =
            Filters { kernels: vec!["6.1".into(), "6.12".into()], workloads: vec!["counter".into()], partition: None };
        let plan = Plan::new(&m, &catalog, &library, &f);
        let ids: Vec<&str> = plan.cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec!["counter/6.1->6.1", "counter/6.1->6.12", "counter/6.12->6.1", "counter/6.12->6.12"]);
        assert_eq!(plan.kernels().len(), 2);
    }
}

/// The step after which a (workload, source) is dumped under `seed`: spread
/// over [nominal/2, 3*nominal/2] (and before the last step) so repeated runs
/// with different seeds hit different points, while one seed reproduces.
pub fn dump_point(seed: u64, workload: &str, src: &str, nominal: u32, steps: u32) -> u32 {
    let lo = (nominal / 2).max(1);
    let hi = (nominal + nominal / 2).min(steps.saturating_sub(2)).max(lo);
    let key = format!("{workload}/{src}");
    lo + (mix(seed ^ fnv1a(key.as_bytes())) % u64::from(hi - lo + 1)) as u32
}

/// FNV-1a: a fixed hash that never changes between releases.
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// splitmix64 finaliser: spreads nearby seeds apart.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    #[test]
    fn dump_point_is_reproducible_and_bounded() {
        for seed in 0..200 {
            let p = dump_point(seed, "counter", "6.1", 10, 40);
            assert!((5..=15).contains(&p), "{p}");
            assert_eq!(p, dump_point(seed, "counter", "6.1", 10, 40));
        }
        let points: std::collections::BTreeSet<u32> =
            (0..200).map(|s| dump_point(s, "counter", "6.1", 10, 40)).collect();
        assert!(points.len() > 5, "seeds should move the dump point: {points:?}");
        // Never at or past the last step, even for short workloads.
        assert!((0..50).all(|s| dump_point(s, "w", "k", 4, 5) <= 3));
    }
}

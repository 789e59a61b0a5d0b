//! The plan: cells (workload x source kernel x target kernel) with stable ids,
//! filtered, and the operations they need (one dump per workload and source,
//! restored on every target).

pub mod filter;
pub mod kind;
pub mod partition;
pub mod route;
pub mod seed;

pub use filter::Filters;
pub use kind::{cell_id, dump_key, kernel_of, kind, label, GuestKind};
pub use route::{engine_of, Route};
pub use seed::dump_point;

use crate::config::matrix::Matrix;
use crate::config::mode::Mode;
use crate::config::workload::Library;
use crate::kernel::Catalog;
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Cell {
    /// `workload/src->dst` (`workload+mode/src->dst` beyond `dump`), stable
    /// across runs.
    pub id: String,
    pub workload: String,
    /// How the memory travels (`dump` unless the matrix names modes).
    #[serde(default, skip_serializing_if = "Mode::is_dump")]
    pub mode: Mode,
    pub src: String,
    pub dst: String,
    /// The engine that dumps / restores when it is not the kernel's own
    /// (`kernel_engines`, else `engine`); such a cell's guests are kinds of
    /// their own, `KERNEL@ENGINE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_engine: Option<String>,
    /// Why this cell cannot run, decided before any VM starts.
    pub skip: Option<String>,
    /// The id of this cell's control: the same dump restored on another
    /// guest of the source kind (`W/SRC->SRC`). None for a cell that is its
    /// own control (source and target kinds are one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    /// In the plan only as another cell's control: the matrix's pairs do not
    /// name it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control_only: bool,
    /// Engines, formats, conversion chain, PID slot and dump point of a
    /// runnable cell; None for a cell the plan skips.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
}

impl Cell {
    /// The workload in its mode, as grids and dumps name it.
    pub fn label(&self) -> String {
        label(&self.workload, self.mode)
    }
    /// The source kind's name, as cell ids and reports carry it.
    pub fn src_kind(&self) -> String {
        self.src_guest().name()
    }
    pub fn dst_kind(&self) -> String {
        self.dst_guest().name()
    }
    pub fn src_guest(&self) -> GuestKind {
        GuestKind::new(&self.src, self.src_engine.as_deref())
    }
    pub fn dst_guest(&self) -> GuestKind {
        GuestKind::new(&self.dst, self.dst_engine.as_deref())
    }
    /// The conversion steps the cell's images go through (none within one
    /// format, none for a skipped cell).
    pub fn chain(&self) -> &[crate::config::formats::StepSpec] {
        self.route.as_ref().map_or(&[], |r| &r.chain)
    }
    /// The runnable cell's route (the plan resolves one for every cell it
    /// does not skip).
    pub fn route(&self) -> &Route {
        self.route.as_ref().expect("the plan resolves a route for every runnable cell")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cells: Vec<Cell>,
}

/// Adds, after the matrix's own cells, every control a runnable cell needs
/// that the matrix does not name: its source kind's diagonal, restored on
/// another guest. A control is skipped only for its own reasons (a known gap
/// or missing kernel version of the source side).
fn add_controls(matrix: &Matrix, cells: &mut Vec<Cell>) {
    let mut extra: Vec<Cell> = Vec::new();
    for c in cells.iter().filter(|c| c.skip.is_none()) {
        let Some(id) = &c.control else { continue };
        if cells.iter().chain(&extra).any(|x| &x.id == id) {
            continue;
        }
        extra.push(Cell {
            id: id.clone(),
            workload: c.workload.clone(),
            mode: c.mode,
            src: c.src.clone(),
            dst: c.src.clone(),
            src_engine: c.src_engine.clone(),
            dst_engine: c.src_engine.clone(),
            skip: None,
            control: None,
            control_only: true,
            route: c.route.as_ref().and_then(|r| route::resolve(matrix, &c.src_kind(), &c.src_kind(), r.pid_slot)),
        });
    }
    cells.extend(extra);
}

/// Every (src, dst, dump engine, restore engine) of the matrix; engines are
/// None where they are the kernel's own.
fn engine_pairs(matrix: &Matrix) -> Vec<(String, String, Option<String>, Option<String>)> {
    let mut out: Vec<_> = matrix.pairs.iter().map(|(s, d)| (s.clone(), d.clone(), None, None)).collect();
    for p in &matrix.engine_pairs {
        let own = |k: &str, e: &str| (engine_of(matrix, k) != e).then(|| e.to_string());
        let item = (p.src.clone(), p.dst.clone(), own(&p.src, &p.dump_engine), own(&p.dst, &p.restore_engine));
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Why cells of `mode` cannot run under this matrix: pages that travel
/// between two running guests need two guests.
fn two_guests(matrix: &Matrix, mode: Mode) -> Option<String> {
    (mode.is_linked() && matrix.restore_in_dumping_guest)
        .then(|| format!("mode {mode} moves pages between two guests; the matrix restores in the dumping guest"))
}

/// The PID slot of (workload, source kernel): from their positions in the
/// matrix, so the same dump gets the same PID range whatever the filters,
/// partition or parallelism.
fn pid_slot(matrix: &Matrix, workload: &str, kernel: &str) -> usize {
    let wi = matrix.workloads.iter().position(|w| w == workload).expect("workload of the matrix");
    let ki = matrix.kernels.iter().position(|k| k == kernel).expect("kernel of the matrix");
    wi * matrix.kernels.len() + ki
}

impl Plan {
    pub fn new(matrix: &Matrix, catalog: &Catalog, library: &Library, filters: &Filters) -> Plan {
        let keep_k = |k: &String| filters.kernels.is_empty() || filters.kernels.contains(k);
        let keep_w = |w: &String| filters.workloads.is_empty() || filters.workloads.contains(w);
        let mut cells = Vec::new();
        let runs =
            matrix.workloads.iter().filter(|w| keep_w(w)).flat_map(|w| matrix.modes.iter().map(move |m| (w, *m)));
        for (w, mode) in runs {
            let workload = library.get(w).expect("matrix validated against library");
            let wl = label(w, mode);
            for (src, dst, se, de) in engine_pairs(matrix).into_iter().filter(|(s, d, ..)| keep_k(s) && keep_k(d)) {
                let (sk, dk) = (kind(&src, se.as_deref()), kind(&dst, de.as_deref()));
                let id = cell_id(&wl, &sk, &dk);
                if filters.partition.is_some_and(|p| !p.contains(&dump_key(&wl, &sk))) || !filters.keeps(&id, &sk, &dk)
                {
                    continue;
                }
                let skip = [&src, &dst]
                    .iter()
                    .find_map(|k| {
                        let version = &catalog.get(k).expect("matrix validated against catalog").version;
                        workload.skip_on(version).map(|why| format!("kernel {k}: {why}"))
                    })
                    .or_else(|| route::missing_chain(&matrix.formats, engine_of(matrix, &sk), engine_of(matrix, &dk)))
                    .or_else(|| {
                        let gap = |kind: &str| {
                            matrix.formats.of_engine(engine_of(matrix, kind)).and_then(|f| workload.known_gap(&f))
                        };
                        (!filters.run_known_gaps).then(|| gap(&sk).or_else(|| gap(&dk))).flatten()
                    })
                    .or_else(|| two_guests(matrix, mode));
                let control = (sk != dk && skip.is_none()).then(|| cell_id(&wl, &sk, &sk));
                let route =
                    skip.is_none().then(|| route::resolve(matrix, &sk, &dk, pid_slot(matrix, w, &src))).flatten();
                let (src_engine, dst_engine, control_only) = (se, de, false);
                cells.push(Cell {
                    id,
                    workload: w.clone(),
                    mode,
                    src,
                    dst,
                    src_engine,
                    dst_engine,
                    skip,
                    control,
                    control_only,
                    route,
                });
            }
        }
        add_controls(matrix, &mut cells);
        Plan { cells }
    }

    /// Fixes every runnable cell's dump point under the run's seed.
    pub fn seeded(mut self, seed: u64, library: &Library) -> Plan {
        for c in self.cells.iter_mut() {
            let (w, src) = (c.workload.clone(), c.src_kind());
            if let Some(r) = c.route.as_mut() {
                let wl = library.get(&w).expect("plan validated");
                r.dump_after = Some(dump_point(seed, &w, &src, wl.dump_after, wl.steps));
            }
        }
        self
    }

    pub fn runnable(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(|c| c.skip.is_none())
    }

    /// (workload in its mode, source kind) pairs to dump, each once.
    pub fn dumps(&self) -> BTreeSet<(String, String)> {
        self.runnable().map(|c| (c.label(), c.src_kind())).collect()
    }

    /// Guest kinds that need a VM.
    pub fn kinds(&self) -> BTreeSet<String> {
        self.runnable().flat_map(|c| [c.src_kind(), c.dst_kind()]).collect()
    }

    /// Kernels that need fetching.
    pub fn kernels(&self) -> BTreeSet<String> {
        self.runnable().flat_map(|c| [c.src.clone(), c.dst.clone()]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::matrix::tests::{fixtures, matrix};

    #[test]
    fn modes_multiply_cells_with_their_own_ids_controls_and_dumps() {
        let (_d, catalog, library) = fixtures();
        let m = matrix("kernels: [\"6.1\", \"6.12\"]\nworkloads: [counter]\nmodes: [dump, predump, lazy]\n").unwrap();
        let plan = Plan::new(&m, &catalog, &library, &Filters::default());
        let ids: Vec<&str> = plan.cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), 12);
        // Plain dumps keep their ids; other modes name theirs.
        assert!(ids.contains(&"counter/6.1->6.12") && ids.contains(&"counter+predump/6.1->6.12"), "{ids:?}");
        let pre = plan.cells.iter().find(|c| c.id == "counter+predump/6.1->6.12").unwrap();
        assert_eq!((pre.mode, pre.control.as_deref()), (Mode::Predump, Some("counter+predump/6.1->6.1")));
        assert_eq!(pre.label(), "counter+predump");
        // Each mode dumps on its own.
        assert!(plan.dumps().contains(&("counter+predump".to_string(), "6.1".to_string())));
        assert_eq!(plan.dumps().len(), 6, "each mode dumps once per source");
        let lazy = plan.cells.iter().find(|c| c.id == "counter+lazy/6.1->6.12").unwrap();
        assert_eq!((lazy.skip.as_deref(), lazy.control.as_deref()), (None, Some("counter+lazy/6.1->6.1")));
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [counter]\nmodes: [dump, pre-dump]\n").unwrap_err();
        assert!(e.to_string().contains("matrix.yaml:3: unknown mode `pre-dump`: expected one of dump, predump"), "{e}");
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [counter]\nmodes: [dump, dump]\n").unwrap_err();
        assert!(e.to_string().contains("mode `dump` is listed twice"), "{e}");
    }

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
    fn engine_pairs_are_kinds_and_missing_steps_skip() {
        let (_d, catalog, library) = fixtures();
        let m = matrix(
            "kernels: [\"6.1\"]\nworkloads: [counter]\nengine: criu-4.1\npairs:\n  - all\n  - {src: \"6.1\", dst: \"6.1\", engines: [criu-4.1, criu-4.2]}\n",
        )
        .unwrap();
        let plan = Plan::new(&m, &catalog, &library, &Filters::default());
        let ids: Vec<&str> = plan.cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "counter/6.1->6.1",
                "counter/6.1->6.1@criu-4.2",
                "counter/6.1@criu-4.2->6.1",
                "counter/6.1@criu-4.2->6.1@criu-4.2"
            ]
        );
        // The fixture declares 4.2 -> 4.1 only: the upward step is missing.
        let why = plan.cells[1].skip.as_deref().unwrap();
        assert!(why.contains("criu-4.1 -> criu-4.2: no converter criu-4.1 -> criu-4.2"), "{why}");
        assert!(plan.cells[2].skip.is_none() && plan.cells[3].skip.is_none());
        assert_eq!(plan.kinds().into_iter().collect::<Vec<_>>(), ["6.1", "6.1@criu-4.2"]);
        assert_eq!(plan.dumps().len(), 2);
        let e = matrix(
            "kernels: [\"6.1\"]\nworkloads: [counter]\npairs:\n  - {src: \"6.1\", dst: \"6.1\", dump_engine: criu-9}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("expected both dump_engine and restore_engine"), "{e}");
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [counter]\nengine: criu-9\n").unwrap_err();
        assert!(
            e.to_string().contains("matrix.yaml:3: unknown engine `criu-9`: expected one of host, criu-4.1"),
            "{e}"
        );
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
        let f = Filters {
            kernels: vec!["6.1".into(), "6.12".into()],
            workloads: vec!["counter".into()],
            ..Filters::default()
        };
        let plan = Plan::new(&m, &catalog, &library, &f);
        let ids: Vec<&str> = plan.cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec!["counter/6.1->6.1", "counter/6.1->6.12", "counter/6.12->6.1", "counter/6.12->6.12"]);
        assert_eq!(plan.kernels().len(), 2);
    }

    fn ids_of(plan: &Plan) -> Vec<(&str, bool)> {
        plan.cells.iter().map(|c| (c.id.as_str(), c.control_only)).collect()
    }

    #[test]
    fn globs_and_kinds_select_cells_and_keep_their_controls() {
        let (_d, catalog, library) = fixtures();
        let m = matrix("kernels: [\"5.10\", \"6.1\", \"6.12\"]\nworkloads: [counter, pipe]\n").unwrap();
        let plan = |f: Filters| Plan::new(&m, &catalog, &library, &f);
        let globs = |t: &[&str], x: &[&str]| Filters {
            tests: t.iter().map(|s| s.to_string()).collect(),
            excludes: x.iter().map(|s| s.to_string()).collect(),
            ..Filters::default()
        };
        // A cross cell brings its control back even when a filter left it out.
        let p = plan(globs(&["counter/6.1->6.12"], &[]));
        assert_eq!(ids_of(&p), [("counter/6.1->6.12", false), ("counter/6.1->6.1", true)]);
        let p = plan(globs(&["counter/6.1->*"], &["*->6.1", "*->5.10"]));
        assert_eq!(ids_of(&p), [("counter/6.1->6.12", false), ("counter/6.1->6.1", true)]);
        let p = plan(globs(&["*->5.10"], &["pipe/*"]));
        let ids: Vec<&str> = p.cells.iter().filter(|c| !c.control_only).map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["counter/5.10->5.10", "counter/6.1->5.10", "counter/6.12->5.10"]);
        assert_eq!(p.cells.iter().filter(|c| c.control_only).count(), 2, "6.1 and 6.12 diagonals as controls");
        let by_kind = Filters { srcs: vec!["6.12".into()], dsts: vec!["6.1".into()], ..Filters::default() };
        let p = plan(by_kind);
        let ids: Vec<&str> = p.cells.iter().filter(|c| !c.control_only).map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["counter/6.12->6.1", "pipe/6.12->6.1"]);
        assert!(plan(globs(&["nothing*"], &[])).cells.is_empty());
        let rerun = Filters { ids: Some(["pipe/6.1->6.12".to_string()].into()), ..Filters::default() };
        assert_eq!(ids_of(&plan(rerun)), [("pipe/6.1->6.12", false), ("pipe/6.1->6.1", true)]);
    }
}

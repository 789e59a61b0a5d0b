//! The summary table: for each source kind (row) and target kind (column),
//! how many cells passed out of those that ran, counting over workloads.
//! SKIPs did not run and are left out; CONTROL-FAIL and ERROR cells ran and
//! count against the square. Pure: cells in, numbers and text out.

use crate::result::CellResult;
use crate::verdict::Status;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One square of the table: the cells of one (source kind, target kind).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Square {
    pub pass: usize,
    pub fail: usize,
    /// FAILs a known incompatibility explains (also counted in `fail`).
    pub known: usize,
    pub control_fail: usize,
    pub error: usize,
    pub skip: usize,
}

impl Square {
    /// Cells that ran: every cell but the SKIPs.
    pub fn ran(&self) -> usize {
        self.pass + self.fail + self.control_fail + self.error
    }

    /// PASS / ran, or None when nothing ran.
    pub fn ratio(&self) -> Option<f64> {
        (self.ran() > 0).then(|| self.pass as f64 / self.ran() as f64)
    }

    fn add(&mut self, c: &CellResult) {
        match c.status {
            Status::Pass => self.pass += 1,
            Status::Fail => self.fail += 1,
            Status::ControlFail => self.control_fail += 1,
            Status::Error => self.error += 1,
            Status::Skip => self.skip += 1,
        }
        if c.known.is_some() {
            self.known += 1;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Kinds that are the source of some cell, in display order.
    pub sources: Vec<String>,
    /// Kinds that are the target of some cell, in display order.
    pub targets: Vec<String>,
    squares: BTreeMap<(String, String), Square>,
}

impl Table {
    /// Counts `cells` per (source kind, target kind). Kinds are ordered by
    /// their kernel's place in `order` (the matrix's kernels), then by
    /// version, a kernel's own engine before its `KERNEL@ENGINE` kinds.
    pub fn of(cells: &[CellResult], order: &[String]) -> Table {
        let mut squares: BTreeMap<(String, String), Square> = BTreeMap::new();
        for c in cells {
            squares.entry((c.cell.src_kind(), c.cell.dst_kind())).or_default().add(c);
        }
        let sources = sorted_kinds(squares.keys().map(|(s, _)| s.clone()), order);
        let targets = sorted_kinds(squares.keys().map(|(_, d)| d.clone()), order);
        Table { sources, targets, squares }
    }

    pub fn get(&self, src: &str, dst: &str) -> Option<&Square> {
        self.squares.get(&(src.to_string(), dst.to_string()))
    }

    /// The whole run in one square.
    pub fn total(&self) -> Square {
        self.squares.values().fold(Square::default(), |mut t, s| {
            t.pass += s.pass;
            t.fail += s.fail;
            t.known += s.known;
            t.control_fail += s.control_fail;
            t.error += s.error;
            t.skip += s.skip;
            t
        })
    }

    /// The table as text, e.g.
    ///
    /// ```text
    /// PASS / cells that ran (SKIP left out), source kind in rows, target kind in columns:
    ///                     ->5.10    ->6.1
    /// 5.10->                3/3      2/3
    /// ```
    pub fn render(&self) -> String {
        let label = self.sources.iter().map(|k| k.len() + 2).max().unwrap_or(0).max(16) + 2;
        let width = self.targets.iter().map(|k| k.len() + 2).max().unwrap_or(0).max(6) + 3;
        let mut out =
            String::from("PASS / cells that ran (SKIP left out), source kind in rows, target kind in columns:\n");
        let _ = write!(out, "{:label$}", "");
        for t in &self.targets {
            let _ = write!(out, "{:>width$}", format!("->{t}"));
        }
        out.push('\n');
        for s in &self.sources {
            let _ = write!(out, "{:<label$}", format!("{s}->"));
            for t in &self.targets {
                let text = self.get(s, t).map_or_else(|| "-".to_string(), |q| format!("{}/{}", q.pass, q.ran()));
                let _ = write!(out, "{text:>width$}");
            }
            out.push('\n');
        }
        out
    }
}

/// Distinct kinds in display order (see [`Table::of`]).
pub fn sorted_kinds(kinds: impl Iterator<Item = String>, order: &[String]) -> Vec<String> {
    let mut v: Vec<String> = kinds.collect();
    v.sort_by_cached_key(|k| kind_key(k, order));
    v.dedup();
    v
}

/// Sort key of a kind: place of its kernel in `order` (unlisted last), the
/// kernel's version ("6.12" after "6.2"), its name, then the engine (none first).
fn kind_key(kind: &str, order: &[String]) -> (usize, Option<crate::kernel::Version>, String, Option<String>) {
    let kind = crate::plan::GuestKind::parse(kind);
    let place = order.iter().position(|k| *k == kind.kernel).unwrap_or(usize::MAX);
    (place, crate::kernel::Version::parse(&kind.kernel), kind.kernel, kind.engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(w: &str, s: &str, d: &str, status: Status) -> CellResult {
        crate::result::fixture(w, s, d, status)
    }

    #[test]
    fn squares_count_passes_over_the_cells_that_ran() {
        let mut known = cell("unix", "6.1", "5.10", Status::Fail);
        known.known = Some("so-buf-lock".into());
        let cells = vec![
            cell("counter", "6.1", "5.10", Status::Pass),
            known,
            cell("mq", "6.1", "5.10", Status::Skip),
            cell("rseq", "6.1", "5.10", Status::ControlFail),
            cell("tcp", "6.1", "5.10", Status::Error),
            cell("counter", "5.10", "6.1", Status::Pass),
        ];
        let t = Table::of(&cells, &[]);
        let q = t.get("6.1", "5.10").unwrap();
        assert_eq!((q.pass, q.ran(), q.skip, q.known), (1, 4, 1, 1));
        assert_eq!(q.ratio(), Some(0.25));
        assert_eq!(t.get("5.10", "6.1").map(|q| (q.pass, q.ran())), Some((1, 1)));
        assert!(t.get("5.10", "5.10").is_none());
        assert_eq!((t.total().pass, t.total().ran()), (2, 5));
        let only_skips = Table::of(&[cell("mq", "6.1", "6.1", Status::Skip)], &[]);
        assert_eq!(only_skips.get("6.1", "6.1").unwrap().ratio(), None);
    }

    #[test]
    fn kinds_follow_the_matrix_then_versions_with_engines_after_their_kernel() {
        let cells = vec![
            cell("c", "6.12@criu-4.2", "6.12@criu-4.1", Status::Pass),
            cell("c", "6.12", "6.2", Status::Pass),
            cell("c", "7.3", "6.12", Status::Pass),
            cell("c", "5.10", "7.3", Status::Pass),
        ];
        let t = Table::of(&cells, &[]);
        assert_eq!(t.sources, ["5.10", "6.12", "6.12@criu-4.2", "7.3"]);
        assert_eq!(t.targets, ["6.2", "6.12", "6.12@criu-4.1", "7.3"]);
        let by_matrix = Table::of(&cells, &["7.3".to_string(), "5.10".to_string()]);
        assert_eq!(by_matrix.sources, ["7.3", "5.10", "6.12", "6.12@criu-4.2"]);
    }

    #[test]
    fn text_has_one_row_per_source_and_dashes_where_nothing_was_planned() {
        let cells = vec![
            cell("a", "5.10", "5.10", Status::Fail),
            cell("b", "5.10", "5.10", Status::Pass),
            cell("a", "5.10", "6.1", Status::Pass),
            cell("b", "5.10", "6.1", Status::Pass),
            cell("a", "6.1", "6.1", Status::Skip),
        ];
        let text = Table::of(&cells, &[]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("PASS / cells that ran"), "{text}");
        assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["->5.10", "->6.1"], "{text}");
        assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["5.10->", "1/2", "2/2"], "{text}");
        assert_eq!(lines[3].split_whitespace().collect::<Vec<_>>(), ["6.1->", "-", "0/0"], "{text}");
        // Columns line up under their headers.
        assert_eq!(lines[1].find("->6.1").map(|i| i + 5), lines[2].find("2/2").map(|i| i + 3), "{text}");
    }
}

//! The at-a-glance view: per workload, a grid of source kernel (rows) by
//! target kernel (columns), followed by the reason of every cell that did
//! not pass. A kernel run with another engine than its own is a row and
//! column of its own (`KERNEL@ENGINE`).

use crate::result::CellResult;
use crate::verdict::Status;
use std::fmt::Write;

/// grid.txt: the summary table (PASS / ran per source x target kind), then
/// the per-workload grids and the cells that did not pass.
pub fn render(cells: &[CellResult], kernels: &[String], known: &crate::verdict::known::Known) -> String {
    let (table, body) = parts(cells, kernels, known);
    format!("{table}\n{body}")
}

/// The summary table and the rest apart, so a terminal can end with the table.
pub fn parts(cells: &[CellResult], kernels: &[String], known: &crate::verdict::known::Known) -> (String, String) {
    (super::summary::Table::of(cells, kernels).render(), body(cells, kernels, known))
}

/// Renders the grids and the list of non-passing cells: failures no known
/// incompatibility explains first, then the known ones with their upstream
/// references.
fn body(cells: &[CellResult], kernels: &[String], known: &crate::verdict::known::Known) -> String {
    let mut out = String::new();
    let mut workloads: Vec<String> = Vec::new();
    for c in cells {
        if !workloads.contains(&c.cell.label()) {
            workloads.push(c.cell.label());
        }
    }
    let width = kernels.iter().map(|k| k.len()).max().unwrap_or(4).max(5) + 4;
    let label = kernels.iter().map(|k| k.len()).max().unwrap_or(4).max(12) + 2;
    for w in workloads {
        let mine: Vec<&CellResult> = cells.iter().filter(|c| c.cell.label() == w).collect();
        let _ = write!(out, "{w:<w2$}", w2 = label + 2);
        for k in kernels {
            let _ = write!(out, "{:>width$}", format!("->{k}"));
        }
        out.push('\n');
        for src in kernels {
            let _ = write!(out, "  {:<label$}", format!("{src}->"));
            for dst in kernels {
                let mark = mine
                    .iter()
                    .find(|c| &c.cell.src_kind() == src && &c.cell.dst_kind() == dst)
                    .map(|c| c.status.mark().to_string())
                    .unwrap_or_else(|| "-".into());
                let _ = write!(out, "{mark:>width$}");
            }
            out.push('\n');
        }
        out.push('\n');
    }
    if cells.iter().any(|c| c.status == Status::ControlFail) {
        out.push_str("CTRL: failed, and so did its control (the same move within the source kind): not evidence about the pair\n\n");
    }
    let line = |out: &mut String, c: &CellResult| {
        let _ = writeln!(out, "  {:<5} {}: {}", c.status, c.cell.id, c.reason.as_deref().unwrap_or(""));
    };
    let unexplained: Vec<&CellResult> =
        cells.iter().filter(|c| c.status != Status::Pass && c.known.is_none()).collect();
    if !unexplained.is_empty() {
        out.push_str("Cells that did not pass:\n");
        unexplained.iter().for_each(|c| line(&mut out, c));
    }
    for entry in &known.0 {
        let mine: Vec<&CellResult> = cells.iter().filter(|c| c.known.as_deref() == Some(&entry.id)).collect();
        if mine.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\nKnown incompatibility {} ({} cells): {}", entry.id, mine.len(), entry.title);
        for u in &entry.upstream {
            let _ = writeln!(out, "  upstream: {u}");
        }
        mine.iter().for_each(|c| line(&mut out, c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    fn cell(w: &str, s: &str, d: &str, status: Status, reason: Option<&str>) -> CellResult {
        CellResult { reason: reason.map(str::to_string), ..crate::result::fixture(w, s, d, status) }
    }

    #[test]
    fn grid_rows_are_sources_columns_targets() {
        let k: Vec<String> = vec!["5.10".into(), "6.1".into()];
        let cells = vec![
            cell("counter", "5.10", "5.10", Status::Pass, None),
            cell("counter", "5.10", "6.1", Status::Pass, None),
            cell("counter", "6.1", "5.10", Status::Fail, Some("restore: Error (x): boom")),
            cell("counter", "6.1", "6.1", Status::Pass, None),
        ];
        let g = render(&cells, &k, &Default::default());
        let (table, rest) = g.split_once("\n\n").unwrap();
        assert!(table.starts_with("PASS / cells that ran") && table.contains("6.1->") && table.contains("0/1"), "{g}");
        let lines: Vec<&str> = rest.lines().collect();
        assert!(lines[0].starts_with("counter") && lines[0].contains("->5.10") && lines[0].contains("->6.1"), "{g}");
        assert!(lines[1].contains("5.10->") && lines[1].matches("PASS").count() == 2, "{g}");
        assert!(lines[2].contains("6.1->") && lines[2].find("FAIL") < lines[2].find("PASS"), "{g}");
        assert!(g.contains("FAIL  counter/6.1->5.10: restore: Error (x): boom"), "{g}");
    }
}

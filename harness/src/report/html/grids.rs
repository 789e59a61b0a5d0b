//! The overviews above the cell list: a heat map of PASS / ran per source x
//! target kind, and a small grid per workload.

use super::escape::{encode, esc};
use crate::report::load::Doc;
use crate::report::summary::{Square, Table};
use crate::result::CellResult;
use crate::verdict::Status;
use std::fmt::Write;

pub(super) fn heat_map(out: &mut String, t: &Table) {
    out.push_str("<section id=\"heat\"><h2>PASS / cells that ran</h2><p class=\"note\">Over workloads; source kind in rows, target kind in columns; SKIPs left out.</p>\n<table class=\"heat\"><tr><th></th>");
    for d in &t.targets {
        let _ = write!(out, "<th>&rarr;{}</th>", kind_label(d));
    }
    out.push_str("</tr>\n");
    for s in &t.sources {
        let _ = write!(out, "<tr><th>{}&rarr;</th>", kind_label(s));
        for d in &t.targets {
            match t.get(s, d) {
                None => out.push_str("<td class=\"empty\"></td>"),
                Some(q) => {
                    let _ = write!(
                        out,
                        "<td class=\"sq\" data-src=\"{}\" data-dst=\"{}\" style=\"{}\" title=\"{}\">{}/{}</td>",
                        esc(s),
                        esc(d),
                        colour(q),
                        esc(&square_title(s, d, q)),
                        q.pass,
                        q.ran()
                    );
                }
            }
        }
        out.push_str("</tr>\n");
    }
    let total = t.total();
    let _ = writeln!(
        out,
        "</table><p class=\"note\">All: {}/{} passed, {} skipped.</p></section>",
        total.pass,
        total.ran(),
        total.skip
    );
}

/// Red (none passed) through yellow to green (all passed); grey when nothing ran.
fn colour(q: &Square) -> String {
    match q.ratio() {
        None => "background:#ddd;color:#555".into(),
        Some(r) => format!("background:hsl({:.0},70%,{:.0}%)", 120.0 * r, 80.0 - 10.0 * r),
    }
}

fn square_title(s: &str, d: &str, q: &Square) -> String {
    format!(
        "{s} -> {d}: {} pass, {} fail ({} known), {} control-fail, {} error, {} skip",
        q.pass, q.fail, q.known, q.control_fail, q.error, q.skip
    )
}

pub(super) fn workload_grids(out: &mut String, doc: &Doc, order: &[String]) {
    out.push_str("<section id=\"workloads\"><details open><summary><h2>Per workload</h2></summary><p class=\"note\">P pass, F fail, K known incompatibility, C control-fail, E error, S skip; click a square for the cell.</p><div class=\"grids\">\n");
    let mut workloads: Vec<String> = Vec::new();
    for c in &doc.cells {
        if !workloads.contains(&c.cell.label()) {
            workloads.push(c.cell.label());
        }
    }
    for w in &workloads {
        let mine: Vec<CellResult> = doc.cells.iter().filter(|c| &c.cell.label() == w).cloned().collect();
        let t = Table::of(&mine, order);
        let _ = write!(out, "<table class=\"wgrid\" data-w=\"{}\"><caption>{}</caption><tr><th></th>", esc(w), esc(w));
        for d in &t.targets {
            let _ = write!(out, "<th>{}</th>", kind_label(d));
        }
        out.push_str("</tr>");
        for s in &t.sources {
            let _ = write!(out, "<tr><th>{}</th>", esc(s));
            for d in &t.targets {
                match mine.iter().find(|c| &c.cell.src_kind() == s && &c.cell.dst_kind() == d) {
                    None => out.push_str("<td></td>"),
                    Some(c) => {
                        let (mark, class) = mark(c);
                        let title = format!("{}: {}", c.cell.id, c.status);
                        let _ = write!(
                            out,
                            "<td><a class=\"m st-{class}\" href=\"#cell={}\" title=\"{}\">{mark}</a></td>",
                            esc(&encode(&c.cell.id)),
                            esc(&title)
                        );
                    }
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>\n");
    }
    out.push_str("</div></details></section>\n");
}

/// A workload grid's letter and CSS class for a cell.
fn mark(c: &CellResult) -> (&'static str, String) {
    match (c.status, c.known.is_some()) {
        (Status::Fail, true) => ("K", "KNOWN".into()),
        (s, _) => (&s.mark()[..1], s.to_string()),
    }
}

/// A guest kind as a header: `KERNEL@ENGINE` may break before the `@`.
fn kind_label(kind: &str) -> String {
    let kind = crate::plan::GuestKind::parse(kind);
    match &kind.engine {
        Some(e) => format!("{}<wbr>@{}", esc(&kind.kernel), esc(e)),
        None => esc(&kind.kernel),
    }
}

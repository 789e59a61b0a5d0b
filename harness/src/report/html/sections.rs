//! Cells in reading order: the sections they are listed in, one closed
//! `<details>` line per cell.

use super::escape::{clip, esc};
use crate::result::CellResult;
use crate::verdict::known::Known;
use crate::verdict::Status;
use std::fmt::Write;

/// Longest reason shown on a cell's one-line summary (the story has it all).
const REASON_LINE_MAX: usize = 240;

/// A group of cells shown together.
pub(super) struct Section<'c> {
    id: &'static str,
    title: String,
    /// A paragraph under the title (already HTML).
    note: String,
    cells: Vec<&'c CellResult>,
}

/// Cells in reading order: what nothing explains first (FAIL, ERROR), then
/// each known incompatibility, failures along with their control, skips,
/// passes.
pub(super) fn sections<'c>(cells: &'c [CellResult], known: Option<&Known>) -> Vec<Section<'c>> {
    let pick = |g: Group| cells.iter().filter(|c| group(c) == g).collect::<Vec<_>>();
    let mut out = vec![Section {
        id: "new",
        title: "Failures no known incompatibility explains".into(),
        note: "FAIL (the system under test) and ERROR (crtest or the infrastructure): look here first.".into(),
        cells: pick(Group::New),
    }];
    let mut ids: Vec<&str> = cells
        .iter()
        .filter_map(|c| match group(c) {
            Group::Known(id) => Some(id),
            _ => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let entry = known.and_then(|k| k.get(id));
        let mut note = String::from("<span class=\"tag known\">known</span> ");
        if let Some(e) = entry {
            let _ = write!(note, "{}", esc(&e.title));
            for u in &e.upstream {
                let _ = write!(note, "<br>upstream: {}", upstream(u));
            }
        } else {
            note.push_str("(kernels/incompatibilities.yaml not at hand: see the entry with this id)");
        }
        out.push(Section {
            id: "known",
            title: format!("Known incompatibility {id}"),
            note,
            cells: pick(Group::Known(id)),
        });
    }
    out.push(Section {
        id: "ctrl",
        title: "Failed along with their control".into(),
        note: "CONTROL-FAIL: the same dump restored within the source kind failed too, so this is no evidence about \
               the pair; the control's own cell carries it."
            .into(),
        cells: pick(Group::Control),
    });
    out.push(Section { id: "skip", title: "Skipped".into(), note: String::new(), cells: pick(Group::Skip) });
    out.push(Section { id: "pass", title: "Passed".into(), note: String::new(), cells: pick(Group::Pass) });
    out.retain(|s| !s.cells.is_empty());
    out
}

/// The one section a cell is listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group<'c> {
    New,
    Known(&'c str),
    Control,
    Skip,
    Pass,
}

fn group(c: &CellResult) -> Group<'_> {
    match (c.status, c.known.as_deref()) {
        (Status::Pass, _) => Group::Pass,
        (Status::Skip, _) => Group::Skip,
        (_, Some(id)) => Group::Known(id),
        (Status::ControlFail, None) => Group::Control,
        (Status::Fail | Status::Error, None) => Group::New,
    }
}

/// An upstream reference: a link when it is a web address, else text.
fn upstream(u: &str) -> String {
    match u.starts_with("https://") || u.starts_with("http://") {
        true => format!("<a href=\"{0}\" rel=\"noreferrer\">{0}</a>", esc(u)),
        false => esc(u),
    }
}

/// One `<details>` line per cell; `index` gets the cells in page order (the
/// script's data follows it).
pub(super) fn list<'c>(out: &mut String, s: &Section<'c>, index: &mut Vec<&'c CellResult>) {
    let _ = writeln!(
        out,
        "<section class=\"group {0}\"{1}><h2>{2} <span class=\"count\">({3})</span></h2>",
        s.id,
        // The headline links to the failures nothing explains.
        if s.id == "new" { " id=\"new\"" } else { "" },
        esc(&s.title),
        s.cells.len()
    );
    if !s.note.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", s.note);
    }
    for c in &s.cells {
        let i = index.len();
        index.push(c);
        let tag = match (&c.known, c.status) {
            (Some(k), _) => format!(" <span class=\"tag known\">known: {}</span>", esc(k)),
            (None, Status::Fail | Status::Error) => " <span class=\"tag new\">not explained</span>".into(),
            _ => String::new(),
        };
        let reason = c.reason.as_deref().map(|r| clip(r, REASON_LINE_MAX)).unwrap_or_default();
        let _ = writeln!(
            out,
            "<details class=\"cell\" id=\"c{i}\" data-i=\"{i}\"><summary>{} <code>{}</code>{tag} <span class=\"why\">{}</span></summary><div class=\"body\"></div></details>",
            badge(c.status),
            esc(&c.cell.id),
            esc(&reason)
        );
    }
    out.push_str("</section>\n");
}

pub(super) fn badge(s: Status) -> String {
    format!("<span class=\"st st-{s}\">{s}</span>")
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{cell, doc, split};
    use super::super::{render, Roots};

    #[test]
    fn unexplained_failures_come_first_and_known_ones_are_marked() {
        let d = doc(serde_json::json!([
            cell("a/6.1->6.1", "PASS", None, None),
            cell("b/6.1->6.1", "FAIL", Some("restore: Error (x): known words"), Some("so-buf-lock")),
            cell("c/6.1->6.1", "SKIP", Some("known gap"), None),
            cell("d/6.1->6.1", "FAIL", Some("dump: Error (y): new words"), None),
            cell("e/6.1->6.1", "CONTROL-FAIL", Some("control ..."), None),
        ]));
        let dir = tempfile::tempdir().unwrap();
        let page = render(&d, &Roots::single(dir.path()), None);
        let at = |s: &str| page.find(s).unwrap_or_else(|| panic!("{s} not in page"));
        assert!(
            at("<code>d/6.1-&gt;6.1</code> <span class=\"tag new\">not explained") < at("<code>b/6.1-&gt;6.1</code>")
        );
        assert!(at("<code>b/6.1-&gt;6.1</code> <span class=\"tag known\">known: so-buf-lock") < at("<code>e/6.1"));
        assert!(at("<code>e/6.1") < at("<code>c/6.1") && at("<code>c/6.1") < at("<code>a/6.1"));
        // The script's data follows page order: index 0 is the unexplained FAIL.
        let (_, data) = split(&page);
        let back: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(back[0]["id"], "d/6.1->6.1");
        assert!(page.contains("data-src=\"6.1\" data-dst=\"6.1\""));
        assert!(page.contains(">1/4</td>"), "one PASS out of four that ran");
        // Passing cells carry no diff or logs; failing ones are read in full.
        assert!(back[4]["x"]["logs"].as_array().unwrap().is_empty());
        // Every cell is listed exactly once, whatever its fields say.
        assert_eq!(back.as_array().unwrap().len(), 5);
        let odd = doc(serde_json::json!([cell("s/6.1->6.1", "SKIP", None, Some("so-buf-lock"))]));
        let page = render(&odd, &Roots::single(dir.path()), None);
        assert_eq!(page.matches("<details class=\"cell\"").count(), 1, "{page}");
    }
}

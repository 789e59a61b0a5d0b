//! The page itself: its head, the run's metadata, the filter bar, and the
//! per-cell data the script renders when a cell is opened.

use super::escape::{esc, href, script_safe};
use super::grids::{heat_map, workload_grids};
use super::sections::{badge, list, sections};
use crate::report::load::{Doc, DocError, LoadError};
use crate::report::story::{self, Depth, Root, Story};
use crate::report::summary::Table;
use crate::result::CellResult;
use crate::util::error::IoAt;
use crate::verdict::known::Known;
use crate::verdict::Status;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

/// Why `crtest report DIR` could not re-render the page; the messages are
/// the causes' own.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Write(#[from] IoAt),
    /// Making the written page readable by everyone.
    #[error(transparent)]
    Mode(std::io::Error),
}

const CSS: &str = include_str!("html.css");
const JS: &str = include_str!("html.js");

/// Where the artifacts of the run's cells are: one output dir for a run,
/// a shard dir per cell for `crtest merge`.
pub struct Roots<'a> {
    pub main: Root<'a>,
    pub by_cell: HashMap<String, Root<'a>>,
}

impl<'a> Roots<'a> {
    /// Every artifact under `dir`, where the report is written too.
    pub fn single(dir: &'a Path) -> Self {
        Roots { main: Root { disk: dir, href: String::new() }, by_cell: HashMap::new() }
    }

    fn of(&self, id: &str) -> &Root<'a> {
        self.by_cell.get(id).unwrap_or(&self.main)
    }
}

/// What the script needs of each cell: filter keys and the story.
#[derive(Serialize)]
struct CellData<'a> {
    id: &'a str,
    w: String,
    s: String,
    d: String,
    sk: &'a str,
    dk: &'a str,
    st: Status,
    x: Story,
}

/// The page for `doc`, reading artifacts through `roots`; `known` gives
/// incompatibility entries their titles (their ids alone without it).
pub fn render(doc: &Doc, roots: &Roots, known: Option<&Known>) -> String {
    let order = doc.kernel_order();
    let table = Table::of(&doc.cells, &order);
    let sections = sections(&doc.cells, known);
    let mut index: Vec<&CellResult> = Vec::with_capacity(doc.cells.len());
    let mut lists = String::new();
    for s in &sections {
        list(&mut lists, s, &mut index);
    }
    let data: Vec<CellData> = index
        .iter()
        .map(|c| CellData {
            id: &c.cell.id,
            w: c.cell.label(),
            s: c.cell.src_kind(),
            d: c.cell.dst_kind(),
            sk: &c.cell.src,
            dk: &c.cell.dst,
            st: c.status,
            x: Story::of(c, roots.of(&c.cell.id), known, Depth::Failures),
        })
        .collect();
    let mut out = String::with_capacity(64 * 1024 + doc.cells.len() * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>crtest: {}</title>\n<style>{CSS}</style></head><body>", esc(&headline(doc)));
    header(&mut out, doc, &roots.main);
    filters(&mut out, doc, &order);
    heat_map(&mut out, &table);
    workload_grids(&mut out, doc, &order);
    out.push_str("<main id=\"cells\">\n");
    out.push_str(&lists);
    out.push_str("</main>\n");
    let json = serde_json::to_string(&data).unwrap_or_else(|_| "[]".into());
    let _ = writeln!(out, "<script type=\"application/json\" id=\"crtest-data\">{}</script>", script_safe(&json));
    let _ = writeln!(out, "<script>{JS}</script>\n</body></html>");
    out
}

/// The page of a run from its results.json bytes, artifacts under `dir`
/// (where the page goes): the report reads what machines read.
pub fn from_json(json: &[u8], dir: &Path, known: &Known) -> Result<String, DocError> {
    Ok(render(&Doc::parse(json)?, &Roots::single(dir), Some(known)))
}

/// `crtest report DIR`: re-renders `DIR/report.html` from `DIR/results.json`.
pub fn rewrite(dir: &Path, known: Option<&Known>) -> Result<Vec<u8>, PageError> {
    let doc = Doc::load(dir)?;
    let page = render(&doc, &Roots::single(dir), known);
    let path = dir.join("report.html");
    crate::util::fsutil::write_atomic(&path, page.as_bytes())?;
    // Readable by everyone, as the run's own outputs are.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).map_err(PageError::Mode)?;
    Ok(page.into_bytes())
}

/// The summary line of the run.
fn headline(doc: &Doc) -> String {
    crate::report::Summary::of(&doc.cells).to_string()
}

fn header(out: &mut String, doc: &Doc, main: &Root) {
    let _ = writeln!(out, "<header><h1>crtest results</h1><p class=\"headline\">{}", esc(&headline(doc)));
    if let Some(w) = doc.wall_secs {
        let _ = write!(out, " in {w:.1}s");
    }
    let new =
        doc.cells.iter().filter(|c| matches!(c.status, Status::Fail | Status::Error) && c.known.is_none()).count();
    let _ =
        writeln!(out, "; <a href=\"#new\"><strong>{new}</strong> failures no known incompatibility explains</a></p>");
    out.push_str("<details class=\"meta\"><summary>Run: kernels, engines, seed, accel</summary><table class=\"kv\">\n");
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let rows = [
        ("crtest version", opt(doc.crtest_version.clone())),
        ("schema", doc.schema.clone()),
        ("matrix", opt(doc.matrix.clone())),
        ("engines", opt(doc.engine.clone())),
        ("seed", opt(doc.seed.map(|s| s.to_string()))),
        ("iters", opt(doc.iters.map(|s| s.to_string()))),
        ("accel", opt(doc.accel.clone())),
        ("wall time", opt(doc.wall_secs.map(|s| format!("{s:.1}s")))),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    out.push_str("</table>\n<table class=\"kernels\"><tr><th>kind</th><th>release</th><th>packages</th><th>engine</th><th>engine env</th><th>start</th><th>boot</th><th>consoles</th></tr>\n");
    for (kind, k) in &doc.kernels {
        let env: Vec<String> = k.engine_env.iter().map(|(a, b)| format!("{a}={b}")).collect();
        let consoles: Vec<String> = [format!("vms/{kind}.console.log"), format!("vms/{kind}~restore.console.log")]
            .iter()
            .filter(|p| story::inside(p) && main.disk.join(p).is_file())
            .map(|p| format!("<a href=\"{}\">{}</a>", esc(&href(&format!("{}{p}", main.href))), esc(p)))
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(kind),
            esc(k.release.as_deref().unwrap_or("-")),
            esc(&k.packages.join(" ")),
            esc(k.engine.as_deref().unwrap_or("-")),
            esc(&env.join(" ")),
            esc(k.start.as_deref().unwrap_or("-")),
            k.boot_secs.map(|s| format!("{s:.1}s")).unwrap_or_default(),
            consoles.join("<br>")
        );
    }
    out.push_str("</table></details></header>\n");
}

fn filters(out: &mut String, doc: &Doc, order: &[String]) {
    out.push_str("<nav id=\"filters\"><span class=\"label\">Show</span>");
    for s in [Status::Fail, Status::Error, Status::ControlFail, Status::Skip, Status::Pass] {
        let _ = write!(out, "<label><input type=\"checkbox\" name=\"st\" value=\"{s}\" checked> {}</label>", badge(s));
    }
    let mut workloads: Vec<String> = doc.cells.iter().map(|c| c.cell.label()).collect();
    workloads.sort();
    workloads.dedup();
    out.push_str("<label>workload <select id=\"f-w\"><option value=\"\">all</option>");
    for w in workloads {
        let _ = write!(out, "<option>{}</option>", esc(&w));
    }
    out.push_str("</select></label><label>kernel <select id=\"f-k\"><option value=\"\">all</option>");
    for k in order {
        let _ = write!(out, "<option>{}</option>", esc(k));
    }
    out.push_str("</select></label><span id=\"shown\"></span></nav>\n");
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{cell, doc, split, EVIL};
    use super::*;

    #[test]
    fn hostile_strings_never_become_markup() {
        let dir = tempfile::tempdir().unwrap();
        let cells = std::path::Path::new("cells/w<x>/6.1--6.1");
        std::fs::create_dir_all(dir.path().join(cells)).unwrap();
        std::fs::write(dir.path().join(cells).join("restore.log"), format!("Error {EVIL}\n")).unwrap();
        std::fs::write(dir.path().join(cells).join("reference.transcript"), "a\nb\n").unwrap();
        std::fs::write(dir.path().join(cells).join("restored.transcript"), format!("a\n{EVIL}\n")).unwrap();
        let mut c = cell("w<x>/6.1->6.1", "FAIL", Some(EVIL), Some(EVIL));
        c["workload"] = "w<x>".into();
        let d = doc(serde_json::json!([c]));
        let page = render(&d, &Roots::single(dir.path()), None);
        // Exactly the two scripts of the page; no attribute handler anywhere.
        assert_eq!(page.matches("<script").count(), 2, "{page}");
        assert_eq!(page.matches("</script>").count(), 2);
        let (html, data) = split(&page);
        // Every tag outside the scripts is one the page writes itself.
        const TAGS: &[&str] = &[
            "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "strong",
            "details", "summary", "table", "tr", "th", "td", "nav", "span", "label", "input", "select", "option",
            "section", "caption", "a", "div", "main", "code", "br", "wbr",
        ];
        for tag in html.split('<').skip(1) {
            let name: String =
                tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '!').collect();
            assert!(TAGS.contains(&name.as_str()), "tag <{name}> in {html}");
        }
        assert!(html.contains("&lt;/script&gt;&lt;script&gt;alert(1)"), "{html}");
        assert!(!data.contains('<') && !data.contains('>') && !data.contains('&'), "{data}");
        // The data still says exactly what the artifacts said.
        let back: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(back[0]["x"]["reason"], EVIL);
        assert_eq!(back[0]["x"]["transcript"]["actual"][1][1], EVIL);
        assert!(back[0]["x"]["logs"][0]["lines"][0].as_str().unwrap().ends_with(EVIL));
        // Links are percent-encoded relative paths.
        assert_eq!(back[0]["x"]["dir"], "cells/w<x>/6.1--6.1");
        assert_eq!(back[0]["x"]["links"][0]["name"], "reference.transcript");
        assert_eq!(href("cells/w<x>/6.1--6.12@criu-4.1/a b"), "cells/w%3Cx%3E/6.1--6.12%40criu-4.1/a%20b");
    }
}

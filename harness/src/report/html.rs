//! `report.html`: one self-contained page (inline CSS and a little vanilla
//! JS, nothing fetched) to see why cells failed: the run's metadata, a heat
//! map of PASS / ran per source x target kind, a small grid per workload,
//! then every cell, those no known incompatibility explains first.
//!
//! The page stays small for thousands of cells: each cell is one closed
//! `<details>` line, and its story (stages, chain, transcript diff, logs,
//! links) is JSON in a `<script type="application/json">` block that the
//! script renders when the cell is opened. Every string from the results
//! or the artifacts is escaped here (HTML) or set as text by the script,
//! never parsed as markup.

use super::load::Doc;
use super::story::{self, Depth, Root, Story};
use super::summary::{Square, Table};
use crate::result::CellResult;
use crate::verdict::known::Known;
use crate::verdict::Status;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

const CSS: &str = include_str!("html.css");
const JS: &str = include_str!("html.js");
/// Longest reason shown on a cell's one-line summary (the story has it all).
const REASON_LINE_MAX: usize = 240;

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
    w: &'a str,
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
            w: &c.cell.workload,
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
pub fn from_json(json: &[u8], dir: &Path, known: &Known) -> anyhow::Result<String> {
    Ok(render(&Doc::parse(json)?, &Roots::single(dir), Some(known)))
}

/// `crtest report DIR`: re-renders `DIR/report.html` from `DIR/results.json`.
pub fn rewrite(dir: &Path, known: Option<&Known>) -> anyhow::Result<Vec<u8>> {
    let doc = Doc::load(dir)?;
    let page = render(&doc, &Roots::single(dir), known);
    let path = dir.join("report.html");
    crate::util::fsutil::write_atomic(&path, page.as_bytes())?;
    // Readable by everyone, as the run's own outputs are.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    Ok(page.into_bytes())
}

/// The summary line of the run.
fn headline(doc: &Doc) -> String {
    super::Summary::of(&doc.cells).to_string()
}

/// A group of cells shown together.
struct Section<'c> {
    id: &'static str,
    title: String,
    /// A paragraph under the title (already HTML).
    note: String,
    cells: Vec<&'c CellResult>,
}

/// Cells in reading order: what nothing explains first (FAIL, ERROR), then
/// each known incompatibility, failures along with their control, skips,
/// passes.
fn sections<'c>(cells: &'c [CellResult], known: Option<&Known>) -> Vec<Section<'c>> {
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
fn list<'c>(out: &mut String, s: &Section<'c>, index: &mut Vec<&'c CellResult>) {
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

fn badge(s: Status) -> String {
    format!("<span class=\"st st-{s}\">{s}</span>")
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
    let mut workloads: Vec<&str> = doc.cells.iter().map(|c| c.cell.workload.as_str()).collect();
    workloads.sort();
    workloads.dedup();
    out.push_str("<label>workload <select id=\"f-w\"><option value=\"\">all</option>");
    for w in workloads {
        let _ = write!(out, "<option>{}</option>", esc(w));
    }
    out.push_str("</select></label><label>kernel <select id=\"f-k\"><option value=\"\">all</option>");
    for k in order {
        let _ = write!(out, "<option>{}</option>", esc(k));
    }
    out.push_str("</select></label><span id=\"shown\"></span></nav>\n");
}

fn heat_map(out: &mut String, t: &Table) {
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

fn workload_grids(out: &mut String, doc: &Doc, order: &[String]) {
    out.push_str("<section id=\"workloads\"><details open><summary><h2>Per workload</h2></summary><p class=\"note\">P pass, F fail, K known incompatibility, C control-fail, E error, S skip; click a square for the cell.</p><div class=\"grids\">\n");
    let mut workloads: Vec<&str> = Vec::new();
    for c in &doc.cells {
        if !workloads.contains(&c.cell.workload.as_str()) {
            workloads.push(&c.cell.workload);
        }
    }
    for w in workloads {
        let mine: Vec<CellResult> = doc.cells.iter().filter(|c| c.cell.workload == w).cloned().collect();
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
    match kind.split_once('@') {
        Some((k, e)) => format!("{}<wbr>@{}", esc(k), esc(e)),
        None => esc(kind),
    }
}

/// Text safe in HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// JSON that cannot end its `<script>` element or open a comment in it.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Directory `to` as a link prefix from a page in directory `from` (both
/// absolute), e.g. `../shard-1/` (a merged report links into its shards).
pub fn relative_href(from: &Path, to: &Path) -> String {
    let (a, b): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let ups = std::iter::repeat_n("..".to_string(), a.len() - common);
    let downs = b[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned());
    ups.chain(downs).map(|s| format!("{s}/")).collect()
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A relative link to `path`, each segment percent-encoded.
fn href(path: &str) -> String {
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVIL: &str = "</script><script>alert(1)</script><img src=x onerror=alert(2)>\"'&";

    fn doc(cells: serde_json::Value) -> Doc {
        let v = serde_json::json!({"schema": "crtest-results/1", "seed": 7, "accel": "tcg", "cells": cells,
            "kernels": {"6.1": {"release": "6.1.0-50-amd64", "packages": ["linux-image-6.1<b>"], "engine": "criu-3.17.1"}}});
        Doc::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn cell(id: &str, status: &str, reason: Option<&str>, known: Option<&str>) -> serde_json::Value {
        let (w, pair) = id.split_once('/').unwrap();
        let (s, d) = pair.split_once("->").unwrap();
        serde_json::json!({"id": id, "workload": w, "src": s, "dst": d, "status": status, "reason": reason,
            "known": known, "stages": [{"stage": "dump", "status": "ok", "secs": 1.5}], "conversion": [],
            "artifacts": format!("cells/{w}/{s}--{d}")})
    }

    /// Everything outside `<script>` elements, and the data block apart.
    fn split(page: &str) -> (String, String) {
        let (before, rest) = page.split_once("<script type=\"application/json\" id=\"crtest-data\">").unwrap();
        let (data, after) = rest.split_once("</script>").unwrap();
        let after = after.split_once("<script>").unwrap().0;
        (format!("{before}{after}"), data.to_string())
    }

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

    #[test]
    fn shard_links_are_relative_to_the_merged_report() {
        let rel = |a: &str, b: &str| relative_href(Path::new(a), Path::new(b));
        assert_eq!(rel("/ci/merged", "/ci/shard-1"), "../shard-1/");
        assert_eq!(rel("/ci", "/ci/shards/1"), "shards/1/");
        assert_eq!(rel("/ci/out", "/ci/out"), "");
    }

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

//! Cells and an XML checker for the JUnit tests (and the reports built on
//! the writer: compare, KCIDB).

use crate::result::CellResult;
use crate::verdict::{Outcome, Stage, StageRecord, Status};

pub(crate) fn mk(d: &str, status: Status, reason: Option<&str>) -> CellResult {
    let mut c = crate::result::fixture("counter", "6.1", d, status);
    c.cell.control = (d != "6.1").then(|| "counter/6.1->6.1".to_string());
    CellResult { reason: reason.map(str::to_string), ..c }
}

pub(crate) fn stage(stage: Stage, outcome: Outcome, secs: f64) -> StageRecord {
    StageRecord { stage, outcome, secs }
}

/// A minimal XML well-formedness check: every tag closes in order,
/// attributes are quoted, text has no bare `<` or `&`. Returns the
/// element names in document order.
pub(crate) fn check_xml(xml: &str) -> Vec<String> {
    let body = xml.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n").expect("declaration");
    let (mut open, mut seen): (Vec<String>, Vec<String>) = (vec![], vec![]);
    let mut rest = body;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        assert!(!text.contains('>'), "bare > in text: {text}");
        for (i, _) in text.match_indices('&') {
            let ent = &text[i..];
            assert!(["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| ent.starts_with(e)), "bare & in text: {ent}");
        }
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        assert!(tag.matches('"').count().is_multiple_of(2) && !tag.contains('<'), "bad tag {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else {
            let name = tag.split([' ', '/']).next().unwrap().to_string();
            seen.push(name.clone());
            if !tag.ends_with('/') {
                open.push(name);
            }
        }
        rest = &rest[gt + 1..];
    }
    assert!(open.is_empty(), "unclosed {open:?}");
    assert!(rest.trim().is_empty());
    seen
}

/// The text of the first `<tag ...>...</tag>` after `after`.
pub(crate) fn element<'a>(xml: &'a str, after: &str, tag: &str) -> &'a str {
    let from = xml.find(after).unwrap_or_else(|| panic!("no {after} in {xml}"));
    let start = xml[from..].find(&format!("<{tag}")).unwrap() + from;
    let open_end = xml[start..].find('>').unwrap() + start + 1;
    let close = xml[open_end..].find(&format!("</{tag}>")).unwrap() + open_end;
    &xml[open_end..close]
}

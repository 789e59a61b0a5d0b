//! The JUnit XML writer: documents, suites and cases, and the escaping that
//! keeps any text well-formed XML.

use std::fmt::Write;

/// How a testcase ended, with the element's type attribute and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseOutcome {
    Pass,
    Failure { kind: String, message: String },
    Error { kind: String, message: String },
    Skipped { message: String },
}

/// One `<testcase>`.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub classname: String,
    pub secs: f64,
    pub outcome: CaseOutcome,
    /// The text of the failure/error/skipped element.
    pub body: String,
    pub system_out: String,
}

/// One `<testsuite>`.
#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub cases: Vec<Case>,
}

/// A whole JUnit document: `<testsuites>` with totals, then each suite with
/// its counts, the properties and its testcases.
pub fn document(name: &str, suites: &[Suite], properties: &[(String, String)]) -> String {
    let all: Vec<&Case> = suites.iter().flat_map(|s| &s.cases).collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"{}\" {}>", attr(name), counts(&all));
    for s in suites {
        let cases: Vec<&Case> = s.cases.iter().collect();
        let _ = writeln!(out, "  <testsuite name=\"{}\" {}>", attr(&s.name), counts(&cases));
        if !properties.is_empty() {
            out.push_str("    <properties>\n");
            for (k, v) in properties {
                let _ = writeln!(out, "      <property name=\"{}\" value=\"{}\"/>", attr(k), attr(v));
            }
            out.push_str("    </properties>\n");
        }
        for c in &s.cases {
            write_case(&mut out, c);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn counts(cases: &[&Case]) -> String {
    let n = |f: fn(&CaseOutcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
    let secs = cases.iter().map(|c| c.secs).sum::<f64>() + 0.0;
    format!(
        "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{secs:.3}\"",
        cases.len(),
        n(|o| matches!(o, CaseOutcome::Failure { .. })),
        n(|o| matches!(o, CaseOutcome::Error { .. })),
        n(|o| matches!(o, CaseOutcome::Skipped { .. })),
    )
}

fn write_case(out: &mut String, c: &Case) {
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
        attr(&c.name),
        attr(&c.classname),
        c.secs
    );
    if c.outcome == CaseOutcome::Pass && c.system_out.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    let element = |tag: &str, kind: Option<&str>, message: &str| {
        let kind = kind.map(|k| format!(" type=\"{}\"", attr(k))).unwrap_or_default();
        format!("      <{tag}{kind} message=\"{}\">{}</{tag}>\n", attr(message), text(&c.body))
    };
    match &c.outcome {
        CaseOutcome::Pass => {}
        CaseOutcome::Failure { kind, message } => out.push_str(&element("failure", Some(kind), message)),
        CaseOutcome::Error { kind, message } => out.push_str(&element("error", Some(kind), message)),
        CaseOutcome::Skipped { message } => out.push_str(&element("skipped", None, message)),
    }
    if !c.system_out.is_empty() {
        let _ = writeln!(out, "      <system-out>{}</system-out>", text(&c.system_out));
    }
    out.push_str("    </testcase>\n");
}

/// Element text: markup escaped, and characters XML 1.0 cannot carry (the
/// escape sequences of a console log) replaced, so the document always parses.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\t' | '\r' => out.push(ch),
            c if xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Attribute text: as [`text`], plus quotes and line breaks as references.
pub fn attr(s: &str) -> String {
    text(s).replace('"', "&quot;").replace('\n', "&#10;").replace('\r', "&#13;").replace('\t', "&#9;")
}

/// The characters XML 1.0 allows besides tab, newline and carriage return.
fn xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_is_not_xml_is_made_safe() {
        assert_eq!(text("a<b>&c\u{1}\u{7}"), "a&lt;b&gt;&amp;c\u{FFFD}\u{FFFD}");
        assert_eq!(attr("say \"hi\"\nnow"), "say &quot;hi&quot;&#10;now");
    }
}

//! A comparison for people (text sections and a summary line) and for CI
//! pages (a JUnit report of the regressions).

use super::diff::{Change, Comparison};
use super::gate::Allow;
use std::fmt::Write;

impl Comparison {
    /// The regressions as a JUnit report: one failing testcase per cell that
    /// fails the gate (body: old -> new and the reasons), the environment
    /// changes as properties, so a CI page shows why the gate closed.
    pub fn junit(&self, allow: Allow) -> String {
        use crate::report::junit::{document, Case, CaseOutcome, Suite};
        let cases = self
            .regressions(allow)
            .into_iter()
            .map(|(kind, c)| Case {
                name: c.id.clone(),
                classname: c.id.split('/').next().unwrap_or_default().to_string(),
                secs: 0.0,
                outcome: CaseOutcome::Failure {
                    kind: kind.to_string(),
                    message: format!("{}: {} -> {}", kind, c.before_status, c.after_status),
                },
                body: format!("{}\n", line(c)),
                system_out: String::new(),
            })
            .collect();
        let properties: Vec<(String, String)> = self
            .environment
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("environment.change.{}", i + 1), l.clone()))
            .collect();
        document("crtest-compare", &[Suite { name: "crtest.compare".into(), cases }], &properties)
    }

    /// A text report: non-empty sections, one line per cell, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        section(&mut out, "New failures", self.new_failures.iter().map(line));
        section(&mut out, "New CONTROL-FAILs", self.new_control_fails.iter().map(line));
        section(&mut out, "New skips", self.new_skips.iter().map(line));
        section(&mut out, "Fixed", self.fixed.iter().map(line));
        section(&mut out, "Changed reasons", self.changed_reasons.iter().map(line));
        section(&mut out, "Added", self.added.iter().cloned());
        section(&mut out, "Removed", self.removed.iter().map(|c| c.id.clone()));
        section(&mut out, "Engine and kernel changes", self.environment.iter().cloned());
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    fn summary(&self) -> String {
        [
            count(self.new_failures.len(), "new failure", "new failures"),
            count(self.new_control_fails.len(), "new CONTROL-FAIL", "new CONTROL-FAILs"),
            count(self.new_skips.len(), "new skip", "new skips"),
            count(self.fixed.len(), "fixed", "fixed"),
            count(self.changed_reasons.len(), "changed reason", "changed reasons"),
            count(self.added.len(), "added", "added"),
            count(self.removed.len(), "removed", "removed"),
        ]
        .join(", ")
    }
}

/// `  id: BEFORE -> AFTER (after reason) [was: before reason]`.
fn line(c: &Change) -> String {
    let mut s = format!("{}: {} -> {}", c.id, c.before_status, c.after_status);
    if let Some(r) = &c.after_reason {
        let _ = write!(s, " ({r})");
    }
    if let Some(r) = c.before_reason.as_ref().filter(|r| Some(*r) != c.after_reason.as_ref()) {
        let _ = write!(s, " [was: {r}]");
    }
    s
}

fn section(out: &mut String, title: &str, lines: impl ExactSizeIterator<Item = String>) {
    if lines.len() == 0 {
        return;
    }
    let _ = writeln!(out, "{title} ({}):", lines.len());
    for l in lines {
        let _ = writeln!(out, "  {l}");
    }
    out.push('\n');
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{baseline, doc, SEGV};
    use super::*;
    use crate::tools::compare::compare;
    use serde_json::json;

    #[test]
    fn render_lists_sections_and_summary() {
        let new = doc(&[
            ("counter/6.1->6.12", "FAIL", Some(SEGV)),
            ("pipe/6.1->6.12", "PASS", None),
            ("tcp/6.1->6.12", "FAIL", Some("compare: exit code differs")),
        ]);
        let text = compare(&baseline(), &new).render();
        let expected = format!(
            "New failures (1):\n  counter/6.1->6.12: PASS -> FAIL ({SEGV})\n\n\
             Fixed (1):\n  pipe/6.1->6.12: FAIL -> PASS [was: {SEGV}]\n\n\
             Changed reasons (1):\n  tcp/6.1->6.12: FAIL -> FAIL (compare: exit code differs) \
             [was: compare: output differs]\n\n\
             Removed (3):\n  filemap/6.1->6.12\n  udp/6.1->6.12\n  gone/6.1->6.12\n\n\
             1 new failure, 0 new CONTROL-FAILs, 0 new skips, 1 fixed, 1 changed reason, 0 added, 3 removed\n"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn junit_lists_each_gating_regression_with_its_reasons() {
        let mut new = baseline();
        new["cells"][0]["status"] = json!("FAIL");
        new["cells"][0]["reason"] = json!(SEGV);
        new["cells"][4]["status"] = json!("SKIP");
        new["cells"][5]["status"] = json!("SKIP");
        new["cells"][5]["reason"] = json!("no feature");
        new["engine"] = json!("criu-4.2");
        let c = compare(&baseline(), &new);
        let xml = c.junit(Allow::default());
        let names = crate::report::junit::fixture::check_xml(&xml);
        assert_eq!(names.iter().filter(|n| *n == "testcase").count(), 2, "{xml}");
        assert!(xml.contains("<testsuites name=\"crtest-compare\" tests=\"2\" failures=\"2\" errors=\"0\""), "{xml}");
        let body = crate::report::junit::fixture::element(&xml, "counter/6.1-&gt;6.12", "failure");
        assert_eq!(body, format!("counter/6.1-&gt;6.12: PASS -&gt; FAIL ({SEGV})\n"));
        assert!(xml.contains("<failure type=\"new failure\" message=\"new failure: PASS -&gt; FAIL\">"), "{xml}");
        assert!(xml.contains("<failure type=\"new skip\""), "{xml}");
        assert!(
            xml.contains("<property name=\"environment.change.1\" value=\"engines: (absent) -&gt; criu-4.2\"/>"),
            "{xml}"
        );
        // An allowed skip is not in the report; no regression, no testcase.
        let allowed = c.junit(Allow { skip: true, ..Allow::default() });
        assert!(allowed.contains("tests=\"1\""), "{allowed}");
        assert!(compare(&baseline(), &baseline()).junit(Allow::default()).contains("tests=\"0\""));
    }
}

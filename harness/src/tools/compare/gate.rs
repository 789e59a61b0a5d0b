//! The gate CI closes on: which changes are regressions, and which of them
//! a run may allow.

use super::diff::{Change, Comparison};

/// Which changes CI may accept without failing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    /// Cells of BASELINE that NEW does not have (a smaller matrix).
    pub removed: bool,
    /// Cells that ran in BASELINE and SKIP in NEW.
    pub skip: bool,
    /// Cells that became CONTROL-FAIL.
    pub control_fail: bool,
}

impl Comparison {
    /// Whether NEW is worse than BASELINE: the condition CI gates on. New
    /// failures always count; new skips and removed cells unless allowed.
    pub fn regressed(&self, allow: Allow) -> bool {
        !self.regressions(allow).is_empty()
    }

    /// The changes that fail the gate under `allow`, by kind.
    pub fn regressions(&self, allow: Allow) -> Vec<(&'static str, &Change)> {
        let mut out: Vec<(&'static str, &Change)> = self.new_failures.iter().map(|c| ("new failure", c)).collect();
        if !allow.control_fail {
            out.extend(self.new_control_fails.iter().map(|c| ("new CONTROL-FAIL", c)));
        }
        if !allow.skip {
            out.extend(self.new_skips.iter().map(|c| ("new skip", c)));
        }
        if !allow.removed {
            out.extend(self.removed.iter().map(|c| ("removed", c)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{baseline, doc, ids, SEGV};
    use super::*;
    use crate::tools::compare::compare;
    use serde_json::json;

    #[test]
    fn injected_regression_is_caught() {
        let mut new = baseline();
        new["cells"][0]["status"] = json!("FAIL");
        new["cells"][0]["reason"] = json!(SEGV);
        let c = compare(&baseline(), &new);
        assert!(c.regressed(Allow::default()));
        assert_eq!(
            c.new_failures,
            [Change {
                id: "counter/6.1->6.12".into(),
                before_status: "PASS".into(),
                after_status: "FAIL".into(),
                before_reason: None,
                after_reason: Some(SEGV.into()),
            }]
        );
        assert!(c.render().contains(&format!("  counter/6.1->6.12: PASS -> FAIL ({SEGV})\n")));
    }

    #[test]
    fn pass_to_skip_and_removed_cells_regress_unless_allowed() {
        let base = doc(&[("a/6.1->6.1", "PASS", None), ("b/6.1->6.1", "PASS", None)]);
        let new = doc(&[("a/6.1->6.1", "SKIP", Some("no feature"))]);
        let c = compare(&base, &new);
        assert_eq!(ids(&c.new_skips), ["a/6.1->6.1"]);
        assert_eq!(ids(&c.removed), ["b/6.1->6.1"]);
        assert!(c.regressed(Allow::default()));
        assert!(c.regressed(Allow { removed: true, ..Allow::default() }));
        assert!(c.regressed(Allow { skip: true, ..Allow::default() }));
        assert!(!c.regressed(Allow { removed: true, skip: true, control_fail: false }));
        assert!(c.render().contains("New skips (1):\n  a/6.1->6.1: PASS -> SKIP (no feature)\n"));
    }
}

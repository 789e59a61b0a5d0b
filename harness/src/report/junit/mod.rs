//! JUnit XML: one testsuite per workload, one testcase per cell named
//! `workload/src->dst`. FAIL is a `<failure>`, ERROR and CONTROL-FAIL an
//! `<error>`, SKIP `<skipped>`.
//!
//! What CI systems show: GitLab and GitHub's JUnit actions display the
//! element's *body* as the failure text, so the body carries the reason,
//! the control and its status, the known incompatibility, the conversion
//! steps and bounded tails of the logs of the stage that failed. Each
//! testcase's time is its own stages' (a guest's boot is shared by many
//! cells and is left out); the `<testsuites>` root carries the totals, and
//! every suite the run's `<properties>` (kernels and their packages,
//! engines and their environment, seed).
//!
//! Written by hand rather than with the `junit-report` crate, which has no
//! `<properties>`, no totals on the root and a fixed hostname and timestamp.

mod body;
mod cells;
#[cfg(test)]
pub(crate) mod fixture;
mod xml;

pub use body::failure_text;
pub use cells::{own_secs, properties, render, render_with, rewrite, write_readable, Context, JunitError};
pub use xml::{attr, document, text, Case, CaseOutcome, Suite};

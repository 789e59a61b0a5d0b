//! Bisection over an ordered axis (kernels in catalog order): find the first
//! version where a cell goes bad. Each probe is repeated to beat flakes (any
//! FAIL is bad, all PASS is good); probes that cannot decide (boot failure,
//! harness ERROR, SKIP) are skipped, never counted as bad, like syzkaller's
//! and ktest's bisections. `commands::bisect` runs the cells of `crtest bisect`.

use crate::config::formats::{Formats, StepSpec};
use crate::engine::EngineSpec;

/// What one probe of a version found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Good,
    /// The evidence: the failing cell's reason.
    Bad(String),
    /// Why this version says nothing (ERROR, SKIP, no boot).
    Skip(String),
}

/// The outcome of a bisection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub first_bad: String,
    pub evidence: String,
    pub last_good: String,
    /// Versions between the two that were skipped (the boundary is somewhere among them).
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BisectError {
    #[error("`{0}` is not on the axis ({1})")]
    NotOnAxis(String, String),
    #[error("the good version {good} must come before the bad version {bad} on the axis")]
    Order { good: String, bad: String },
    #[error("the version given as good, {0}, is not good: {1}")]
    GoodIsNot(String, String),
    #[error("the version given as bad, {0}, is not bad: {1}")]
    BadIsNot(String, String),
}

/// Bisects `axis` between `good` and `bad` (both verified first), calling
/// `probe` for each version tried and `log` with every step and its evidence.
pub fn bisect(
    axis: &[String],
    good: &str,
    bad: &str,
    probe: &mut dyn FnMut(&str) -> Probe,
    log: &mut dyn FnMut(&str),
) -> Result<Found, BisectError> {
    let pos =
        |v: &str| axis.iter().position(|a| a == v).ok_or_else(|| BisectError::NotOnAxis(v.into(), axis.join(", ")));
    let (mut lo, mut hi) = (pos(good)?, pos(bad)?);
    if lo >= hi {
        return Err(BisectError::Order { good: good.into(), bad: bad.into() });
    }
    let mut tried = |v: &str, log: &mut dyn FnMut(&str)| {
        let p = probe(v);
        log(&match &p {
            Probe::Good => format!("{v}: good"),
            Probe::Bad(why) => format!("{v}: bad: {why}"),
            Probe::Skip(why) => format!("{v}: skip: {why}"),
        });
        p
    };
    let mut evidence = match tried(bad, log) {
        Probe::Bad(why) => why,
        other => return Err(BisectError::BadIsNot(bad.into(), describe(&other))),
    };
    if let p @ (Probe::Bad(_) | Probe::Skip(_)) = tried(good, log) {
        return Err(BisectError::GoodIsNot(good.into(), describe(&p)));
    }
    // Invariant: axis[lo] is good, axis[hi] is bad; `skipped` are untestable between them.
    let mut skipped: Vec<usize> = Vec::new();
    while let Some(mid) = pick(lo, hi, &skipped) {
        match tried(&axis[mid], log) {
            Probe::Good => lo = mid,
            Probe::Bad(why) => {
                hi = mid;
                evidence = why;
            }
            Probe::Skip(_) => skipped.push(mid),
        }
    }
    Ok(Found {
        first_bad: axis[hi].clone(),
        evidence,
        last_good: axis[lo].clone(),
        skipped: skipped.into_iter().filter(|s| lo < *s && *s < hi).map(|s| axis[s].clone()).collect(),
    })
}

/// The untried index nearest the middle of (lo, hi), if any.
fn pick(lo: usize, hi: usize, skipped: &[usize]) -> Option<usize> {
    let mid = (lo + hi) / 2;
    let mut candidates: Vec<usize> = (lo + 1..hi).filter(|i| !skipped.contains(i)).collect();
    candidates.sort_by_key(|i| i.abs_diff(mid));
    candidates.first().copied()
}

/// Why a chain cannot be bisected.
#[derive(Debug, thiserror::Error)]
pub enum AxisError {
    #[error(transparent)]
    Chain(#[from] crate::config::formats::ChainError),
    #[error("the chain {from} -> {to} has no step to bisect")]
    Empty { from: String, to: String },
}

/// The axis of `crtest bisect --axis chain`: the formats of the chain
/// `from` -> `to` in order, `from` first, and the chain's steps. Point `i`
/// (i >= 1) stands for the chain's prefix of `i` steps, whose output the
/// engine of format `i` restores; point 0 is the dump restored as it is.
pub fn chain_axis(formats: &Formats, from: &str, to: &str) -> Result<(Vec<String>, Vec<StepSpec>), AxisError> {
    if !formats.versions.iter().any(|v| v == from) {
        return Err(AxisError::Chain(crate::config::formats::ChainError::UnknownFormat {
            format: from.to_string(),
            file: formats.path.clone(),
        }));
    }
    let steps = formats.chain(from, to)?;
    if steps.is_empty() {
        return Err(AxisError::Empty { from: from.to_string(), to: to.to_string() });
    }
    let axis = std::iter::once(from.to_string()).chain(steps.iter().map(|s| s.to.clone())).collect();
    Ok((axis, steps))
}

/// `step I/N FROM -> TO (CONVERTER)` for step `i` (1-based) of `steps`.
pub fn step_label(steps: &[StepSpec], i: usize) -> String {
    let s = &steps[i - 1];
    format!("step {i}/{} {} -> {} ({})", steps.len(), s.from, s.to, s.using.name())
}

/// The engine that restores images of `format` in a chain bisection: the
/// host's CRIU when it writes that format (nothing to fetch), else the first
/// entry of kernels/engines.yaml that does; None when no engine does (such
/// a step is skipped, never judged).
pub fn engine_for_format(formats: &Formats, engines: &[EngineSpec], format: &str) -> Option<String> {
    if formats.of_engine(crate::engine::HOST).as_deref() == Some(format) {
        return Some(crate::engine::HOST.to_string());
    }
    engines.iter().find(|e| formats.of_engine(&e.id).as_deref() == Some(format)).map(|e| e.id.clone())
}

fn describe(p: &Probe) -> String {
    match p {
        Probe::Good => "it passed".into(),
        Probe::Bad(why) => format!("it failed: {why}"),
        Probe::Skip(why) => format!("it could not be tested: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis() -> Vec<String> {
        ["6.1", "6.12", "6.16", "6.17", "6.18", "6.19", "7.0", "7.1", "7.2", "7.3"].map(String::from).to_vec()
    }

    fn run(first_bad: &str, skip: &[&str], good: &str, bad: &str) -> (Result<Found, BisectError>, Vec<String>) {
        let a = axis();
        let boundary = a.iter().position(|v| v == first_bad).unwrap();
        let mut probes = Vec::new();
        let mut probe = |v: &str| {
            probes.push(v.to_string());
            if skip.contains(&v) {
                Probe::Skip("VM did not boot".into())
            } else if a.iter().position(|x| x == v).unwrap() >= boundary {
                Probe::Bad(format!("vdso error on {v}"))
            } else {
                Probe::Good
            }
        };
        let r = bisect(&a, good, bad, &mut probe, &mut |_| {});
        (r, probes)
    }

    #[test]
    fn finds_the_boundary_in_log_steps() {
        let (r, probes) = run("6.16", &[], "6.12", "7.3");
        let f = r.unwrap();
        assert_eq!((f.first_bad.as_str(), f.last_good.as_str()), ("6.16", "6.12"));
        assert_eq!(f.evidence, "vdso error on 6.16");
        assert!(probes.len() <= 2 + 3, "{probes:?}");
    }

    #[test]
    fn skips_are_never_bad() {
        let (r, _) = run("7.0", &["6.19", "7.0"], "6.12", "7.3");
        let f = r.unwrap();
        // 7.0 could not be tested: the boundary lies between 6.18 (good) and 7.1 (bad).
        assert_eq!((f.first_bad.as_str(), f.last_good.as_str()), ("7.1", "6.18"));
        assert_eq!(f.skipped, vec!["6.19", "7.0"]);
    }

    fn formats(text: &str) -> Formats {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("formats.yaml");
        std::fs::write(&p, text).unwrap();
        Formats::load(&p, &crate::config::formats::tests::engines_of(&["4.1", "4.2"])).unwrap()
    }

    #[test]
    fn a_chain_is_an_axis_of_its_formats() {
        let f = formats(
            "versions: [criu-3.17, criu-4.1, criu-4.2, criu-5.0]\nconverters:\n  - {from: criu-4.2, to: criu-4.1, use: pagemap-nr-pages}\n  - {from: criu-4.1, to: criu-3.17, use: identity}\n",
        );
        let (axis, steps) = chain_axis(&f, "criu-4.2", "criu-3.17").unwrap();
        assert_eq!(axis, ["criu-4.2", "criu-4.1", "criu-3.17"]);
        assert_eq!(step_label(&steps, 2), "step 2/2 criu-4.1 -> criu-3.17 (identity)");
        assert_eq!(step_label(&steps, 1), "step 1/2 criu-4.2 -> criu-4.1 (pagemap-nr-pages)");
        assert!(chain_axis(&f, "criu-4.1", "criu-4.1").unwrap_err().to_string().contains("no step"));
        assert!(chain_axis(&f, "criu-3.17", "criu-4.2")
            .unwrap_err()
            .to_string()
            .contains("no converter criu-3.17 -> criu-4.1"));
        assert!(chain_axis(&f, "criu-9", "criu-4.1").unwrap_err().to_string().contains("criu-9 is not in"));
        // The bisection over that axis names the prefix that goes bad.
        let mut probe = |v: &str| if v == "criu-3.17" { Probe::Bad("convert".into()) } else { Probe::Good };
        let found = bisect(&axis, "criu-4.2", "criu-3.17", &mut probe, &mut |_| {}).unwrap();
        assert_eq!((found.first_bad.as_str(), found.last_good.as_str()), ("criu-3.17", "criu-4.1"));
        // A format no engine writes has no engine to restore with.
        let engines = crate::config::formats::tests::engines_of(&["4.1", "4.2"]);
        assert_eq!(engine_for_format(&f, &engines, "criu-4.1").as_deref(), Some("criu-4.1"));
        assert_eq!(engine_for_format(&f, &engines, "criu-5.0"), None);
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(matches!(run("6.16", &[], "6.17", "7.3").0, Err(BisectError::GoodIsNot(..))));
        assert!(matches!(run("7.3", &[], "6.12", "7.2").0, Err(BisectError::BadIsNot(..))));
        assert!(matches!(run("6.16", &[], "7.3", "6.12").0, Err(BisectError::Order { .. })));
        assert!(matches!(run("6.16", &[], "5.4", "7.3").0, Err(BisectError::NotOnAxis(..))));
    }
}

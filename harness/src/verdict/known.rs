//! Known incompatibilities: real kernel/engine/format incompatibilities the
//! harness has found and explained, kept as data (kernels/incompatibilities.yaml)
//! so results, the grid and later runs can tell a known FAIL from a new one.
//! Each entry names the evidence: the engine's own line it matches, the
//! control that passed, and the upstream kernel or CRIU change behind it.

use crate::config::yaml::ConfigError;
use crate::kernel::Version;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The catalog's file, relative to the project root.
pub const FILE: &str = "kernels/incompatibilities.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    incompatibilities: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    title: String,
    /// The stage the cell fails in (`dump`, `restore`, `finish`, `compare`...).
    stage: String,
    /// A substring of the cell's reason: the engine's own words.
    reason: String,
    /// Version bounds, e.g. `">= 6.16"`, `"< 5.14"`.
    #[serde(default)]
    src_kernel: Option<String>,
    #[serde(default)]
    dst_kernel: Option<String>,
    /// Image formats (engine versions) that dump / restore, e.g. [criu-3.17].
    #[serde(default)]
    dump_formats: Vec<String>,
    #[serde(default)]
    restore_formats: Vec<String>,
    upstream: Vec<String>,
    evidence: String,
}

/// A version bound: `>= V` or `< V`.
#[derive(Debug, Clone, PartialEq)]
enum Bound {
    AtLeast(Version),
    Below(Version),
}

impl Bound {
    fn parse(text: &str) -> Option<Bound> {
        let t = text.trim();
        let (ctor, rest): (fn(Version) -> Bound, &str) = match t {
            _ if t.starts_with(">=") => (Bound::AtLeast, &t[2..]),
            _ if t.starts_with('<') => (Bound::Below, &t[1..]),
            _ => return None,
        };
        Version::parse(rest.trim()).map(ctor)
    }

    fn holds(&self, v: &Version) -> bool {
        match self {
            Bound::AtLeast(b) => v >= b,
            Bound::Below(b) => v < b,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Incompatibility {
    pub id: String,
    pub title: String,
    pub upstream: Vec<String>,
    pub evidence: String,
    #[serde(skip)]
    stage: String,
    #[serde(skip)]
    reason: String,
    #[serde(skip)]
    src_kernel: Option<Bound>,
    #[serde(skip)]
    dst_kernel: Option<Bound>,
    #[serde(skip)]
    dump_formats: Vec<String>,
    #[serde(skip)]
    restore_formats: Vec<String>,
}

/// What a failed cell is matched on.
pub struct Observed<'a> {
    pub reason: &'a str,
    pub src_version: &'a Version,
    pub dst_version: &'a Version,
    pub dump_format: Option<&'a str>,
    pub restore_format: Option<&'a str>,
}

#[derive(Debug, Clone, Default)]
pub struct Known(pub Vec<Incompatibility>);

impl Known {
    /// Loads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Known, ConfigError> {
        if !path.exists() {
            return Ok(Known::default());
        }
        let (raw, text): (RawFile, String) = crate::config::yaml::load(path)?;
        let mut out: Vec<Incompatibility> = Vec::new();
        for e in raw.incompatibilities {
            let line = crate::config::yaml::line_of(&text, "incompatibilities", &format!("id: {}", e.id));
            let err = |m: String| ConfigError::new(path, line, m);
            if out.iter().any(|o| o.id == e.id) {
                return Err(err(format!("incompatibility `{}` is listed twice", e.id)));
            }
            if e.reason.trim().is_empty() || e.upstream.is_empty() || e.evidence.trim().is_empty() {
                return Err(err(format!(
                    "incompatibility `{}`: expected a reason, upstream references and evidence",
                    e.id
                )));
            }
            let bound = |b: &Option<String>| -> Result<Option<Bound>, ConfigError> {
                b.as_deref()
                    .map(|t| {
                        Bound::parse(t)
                            .ok_or_else(|| err(format!("`{t}`: expected a bound like \">= 6.16\" or \"< 5.14\"")))
                    })
                    .transpose()
            };
            out.push(Incompatibility {
                src_kernel: bound(&e.src_kernel)?,
                dst_kernel: bound(&e.dst_kernel)?,
                id: e.id,
                title: e.title,
                upstream: e.upstream,
                evidence: e.evidence,
                stage: e.stage,
                reason: e.reason,
                dump_formats: e.dump_formats,
                restore_formats: e.restore_formats,
            });
        }
        Ok(Known(out))
    }

    /// The known incompatibility a FAIL is explained by, if any: its reason
    /// holds the entry's words in the entry's stage, and the kernels and
    /// formats are within the entry's bounds.
    pub fn explain(&self, seen: &Observed) -> Option<&Incompatibility> {
        self.0.iter().find(|e| {
            let in_formats =
                |list: &[String], f: Option<&str>| list.is_empty() || f.is_some_and(|f| list.iter().any(|x| x == f));
            seen.reason.starts_with(&format!("{}: ", e.stage))
                && seen.reason.contains(&e.reason)
                && e.src_kernel.as_ref().is_none_or(|b| b.holds(seen.src_version))
                && e.dst_kernel.as_ref().is_none_or(|b| b.holds(seen.dst_version))
                && in_formats(&e.dump_formats, seen.dump_format)
                && in_formats(&e.restore_formats, seen.restore_format)
        })
    }

    pub fn get(&self, id: &str) -> Option<&Incompatibility> {
        self.0.iter().find(|e| e.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Known, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inc.yaml");
        std::fs::write(&p, text).unwrap();
        Known::load(&p)
    }

    const ONE: &str = "incompatibilities:\n  - id: so-buf-lock\n    title: t\n    stage: restore\n    reason: \"Can't set 1:72\"\n    dst_kernel: \"< 5.14\"\n    upstream: [x]\n    evidence: e\n";

    #[test]
    fn a_fail_is_explained_only_within_its_bounds() {
        let k = load(ONE).unwrap();
        let v = |t: &str| Version::parse(t).unwrap();
        let (v61, v510) = (v("6.1"), v("5.10"));
        let seen = |reason, dst| Observed {
            reason,
            src_version: &v61,
            dst_version: dst,
            dump_format: None,
            restore_format: None,
        };
        let line = "restore: Error (criu/sockets.c:461): sockets: Can't set 1:72 (len 4): Protocol not available";
        assert_eq!(k.explain(&seen(line, &v510)).map(|e| e.id.as_str()), Some("so-buf-lock"));
        assert!(k.explain(&seen(line, &v61)).is_none(), "6.1 has SO_BUF_LOCK");
        assert!(k.explain(&seen("dump: Error: Can't set 1:72", &v510)).is_none(), "another stage");
        assert!(k.explain(&seen("restore: Error: other", &v510)).is_none());
    }

    #[test]
    fn bad_entries_name_file_and_line() {
        let e = load(&ONE.replace("< 5.14", "about 5")).unwrap_err().to_string();
        assert!(e.contains("inc.yaml:2: `about 5`: expected a bound"), "{e}");
        let twice = format!("{ONE}{}", ONE.trim_start_matches("incompatibilities:\n"));
        assert!(load(&twice).unwrap_err().to_string().contains("listed twice"));
        assert!(load(&ONE.replace("upstream: [x]", "upstream: []")).is_err());
    }
}

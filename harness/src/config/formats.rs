//! Image format versions and the converters between adjacent ones.
//!
//! `converters/formats.yaml` lists the versions oldest first and one
//! converter per adjacent step and direction. A cell whose dump format is N
//! and whose restore format is N+k runs the chain N -> N+1 -> ... -> N+k (or
//! downward); a step with no converter is never replaced by an identity.
//! Which format an engine speaks is declared in `kernels/engines.yaml`.

use crate::config::yaml::{self, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFormats {
    versions: Vec<String>,
    #[serde(default)]
    converters: Vec<RawConverter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConverter {
    from: String,
    to: String,
    /// A built-in name, or a command path relative to the formats file.
    #[serde(rename = "use")]
    using: String,
}

/// How a step converts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Using {
    Identity,
    /// Decode with the sender's crit, encode with the receiver's.
    CritRecode,
    /// CRIU 4.2 -> 4.1: `pagemap_entry.nr_pages` back into field 2.
    PagemapNrPages,
    /// A command following the converter contract (see `convert.rs`).
    Command(PathBuf),
}

pub const BUILTINS: &str = "identity, crit-recode, pagemap-nr-pages";

impl Using {
    pub fn name(&self) -> String {
        match self {
            Using::Identity => "identity".into(),
            Using::CritRecode => "crit-recode".into(),
            Using::PagemapNrPages => "pagemap-nr-pages".into(),
            Using::Command(p) => p.display().to_string(),
        }
    }
}

/// One declared converter between adjacent versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepSpec {
    pub from: String,
    pub to: String,
    pub using: Using,
}

/// Why no chain joins two formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("format {format} is not in {}", file.display())]
    UnknownFormat { format: String, file: PathBuf },
    #[error("no converter {from} -> {to} is declared in {}", file.display())]
    NoConverter { from: String, to: String, file: PathBuf },
    /// An engine of the chain writes no known format.
    #[error("engine {0} has no known image format")]
    EngineFormat(String),
}

/// The validated formats file plus which format each engine speaks.
#[derive(Debug, Clone)]
pub struct Formats {
    pub path: PathBuf,
    pub versions: Vec<String>,
    pub steps: Vec<StepSpec>,
    /// Engine id (as in engines.yaml) -> format version.
    pub engine_formats: BTreeMap<String, String>,
}

impl Formats {
    /// Loads `path`, checking every converter joins adjacent known versions
    /// and every engine's format is among the versions.
    pub fn load(path: &Path, engines: &[crate::config::engines::EngineSpec]) -> Result<Formats, ConfigError> {
        let map = engines.iter().map(|e| (e.id.clone(), e.format.clone())).collect();
        Formats::load_with(path, &map)
    }

    /// Another formats file for the same engines (a matrix's `formats:`).
    pub fn reload(&self, path: &Path) -> Result<Formats, ConfigError> {
        Formats::load_with(path, &self.engine_formats)
    }

    fn load_with(path: &Path, engines: &BTreeMap<String, String>) -> Result<Formats, ConfigError> {
        let (raw, text): (RawFormats, String) = yaml::load(path)?;
        let at = |section: &str, needle: &str| yaml::line_of(&text, section, needle);
        let err = |line, m: String| ConfigError::new(path, line, m);
        let pos = |v: &str| raw.versions.iter().position(|x| x == v);
        if raw.versions.is_empty() {
            return Err(err(at("versions", "versions"), "expected at least one version in `versions`".into()));
        }
        for (i, v) in raw.versions.iter().enumerate() {
            crate::util::shell::check_name(v).map_err(|e| err(at("versions", v), format!("version {e}")))?;
            if raw.versions[..i].contains(v) {
                return Err(err(at("versions", v), format!("version `{v}` appears twice in `versions`")));
            }
        }
        let mut steps: Vec<StepSpec> = Vec::new();
        for c in &raw.converters {
            let (Some(a), Some(b)) = (pos(&c.from), pos(&c.to)) else {
                let bad = if pos(&c.from).is_none() { &c.from } else { &c.to };
                return Err(err(
                    at("converters", bad),
                    format!(
                        "converter {} -> {}: `{bad}` is not in `versions` ({})",
                        c.from,
                        c.to,
                        raw.versions.join(", ")
                    ),
                ));
            };
            if a.abs_diff(b) != 1 {
                return Err(err(
                    at("converters", &c.to),
                    format!(
                        "converter {} -> {}: expected adjacent versions (chains are composed from steps)",
                        c.from, c.to
                    ),
                ));
            }
            if steps.iter().any(|s| s.from == c.from && s.to == c.to) {
                return Err(err(
                    at("converters", &c.using),
                    format!(
                        "converter {} -> {}: a second converter for this step (expected one per step)",
                        c.from, c.to
                    ),
                ));
            }
            let using = match c.using.as_str() {
                "identity" => Using::Identity,
                "crit-recode" => Using::CritRecode,
                "pagemap-nr-pages" => Using::PagemapNrPages,
                cmd => {
                    let p = executable(path, cmd).map_err(|why| {
                        err(
                            at("converters", cmd),
                            format!(
                                "converter `{cmd}`: expected one of {BUILTINS} or an executable file: {}",
                                crate::util::error::chain(&why)
                            ),
                        )
                    })?;
                    Using::Command(p)
                }
            };
            steps.push(StepSpec { from: c.from.clone(), to: c.to.clone(), using });
        }
        for (id, format) in engines {
            if pos(format).is_none() {
                return Err(err(
                    at("versions", "versions"),
                    format!("engine {id} speaks format `{format}`, which is not in `versions`"),
                ));
            }
        }
        Ok(Formats { path: path.to_path_buf(), versions: raw.versions, steps, engine_formats: engines.clone() })
    }

    /// Whether `engine` is `host` or an engines.yaml id.
    pub fn knows_engine(&self, engine: &str) -> bool {
        engine == crate::config::engines::HOST || self.engine_formats.contains_key(engine)
    }

    /// The format an engine (an engines.yaml id, or `host`) writes.
    pub fn of_engine(&self, engine: &str) -> Option<String> {
        if engine == crate::config::engines::HOST {
            return host_format();
        }
        self.engine_formats.get(engine).cloned()
    }

    /// The steps from format `from` to format `to` (none when equal), or the
    /// first step no converter is declared for.
    pub fn chain(&self, from: &str, to: &str) -> Result<Vec<StepSpec>, ChainError> {
        if from == to {
            return Ok(vec![]);
        }
        let pos = |v: &str| {
            self.versions
                .iter()
                .position(|x| x == v)
                .ok_or_else(|| ChainError::UnknownFormat { format: v.to_string(), file: self.path.clone() })
        };
        let (mut i, j) = (pos(from)?, pos(to)?);
        let mut out = Vec::new();
        while i != j {
            let next = if j > i { i + 1 } else { i - 1 };
            let (a, b) = (&self.versions[i], &self.versions[next]);
            let step = self
                .steps
                .iter()
                .find(|s| &s.from == a && &s.to == b)
                .ok_or_else(|| ChainError::NoConverter { from: a.clone(), to: b.clone(), file: self.path.clone() })?;
            out.push(step.clone());
            i = next;
        }
        Ok(out)
    }
}

/// Why a command named in a config file cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecutableError {
    /// The path cannot be made absolute (no working directory).
    #[error("no working directory")]
    Absolute(#[source] std::io::Error),
    #[error("{}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{} is not a regular file", .0.display())]
    NotFile(PathBuf),
    #[error("{} is not executable (chmod +x)", .0.display())]
    NotExecutable(PathBuf),
}

/// The absolute path of command `cmd` named in config file `config`
/// (relative to its directory), if it is an executable regular file.
pub fn executable(config: &Path, cmd: &str) -> Result<PathBuf, ExecutableError> {
    use std::os::unix::fs::PermissionsExt;
    let p =
        std::path::absolute(config.parent().unwrap_or(Path::new(".")).join(cmd)).map_err(ExecutableError::Absolute)?;
    let meta = std::fs::metadata(&p).map_err(|source| ExecutableError::Unreadable { path: p.clone(), source })?;
    if !meta.is_file() {
        return Err(ExecutableError::NotFile(p));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(ExecutableError::NotExecutable(p));
    }
    Ok(p)
}

/// `criu-MAJOR.MINOR` of the host's CRIU, the format it writes.
fn host_format() -> Option<String> {
    static FORMAT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FORMAT
        .get_or_init(|| {
            let out = std::process::Command::new("criu").arg("--version").output().ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let v = text.lines().find_map(|l| l.strip_prefix("Version:"))?.trim().to_string();
            format_of_version(&v)
        })
        .clone()
}

/// `3.17.1` -> `criu-3.17`.
pub fn format_of_version(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    Some(format!("criu-{major}.{minor}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Engines `criu-V` speaking format `criu-V`, for each version.
    pub fn engines_of(versions: &[&str]) -> Vec<crate::config::engines::EngineSpec> {
        versions
            .iter()
            .map(|v| crate::config::engines::EngineSpec {
                id: format!("criu-{v}"),
                suite: "s".into(),
                package: "criu".into(),
                local: None,
                format: format!("criu-{v}"),
                tools: vec![],
                crit: None,
                env: Default::default(),
            })
            .collect()
    }

    fn engines() -> Vec<crate::config::engines::EngineSpec> {
        engines_of(&["3.17", "4.1", "4.2"])
    }

    fn load(text: &str) -> Result<Formats, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("formats.yaml");
        std::fs::write(&p, text).unwrap();
        std::fs::write(dir.path().join("conv.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.path().join("conv.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(dir.path().join("plain.sh"), "#!/bin/sh\n").unwrap();
        Formats::load(&p, &engines())
    }

    const THREE: &str = "versions: [criu-3.17, criu-4.1, criu-4.2]\n";

    #[test]
    fn chains_compose_adjacent_steps_both_ways() {
        let f = load(&format!(
            "{THREE}converters:\n  - {{from: criu-3.17, to: criu-4.1, use: crit-recode}}\n  - {{from: criu-4.1, to: criu-4.2, use: identity}}\n  - {{from: criu-4.2, to: criu-4.1, use: pagemap-nr-pages}}\n"
        ))
        .unwrap();
        let up = f.chain("criu-3.17", "criu-4.2").unwrap();
        assert_eq!(up.len(), 2);
        assert_eq!((up[0].using.clone(), up[1].to.as_str()), (Using::CritRecode, "criu-4.2"));
        assert_eq!(f.chain("criu-4.2", "criu-4.1").unwrap()[0].using, Using::PagemapNrPages);
        assert!(f.chain("criu-4.1", "criu-4.1").unwrap().is_empty());
        let e = f.chain("criu-4.2", "criu-3.17").unwrap_err();
        assert!(e.to_string().contains("no converter criu-4.1 -> criu-3.17"), "{e}");
    }

    #[test]
    fn bad_files_name_line_and_expectation() {
        let e =
            load(&format!("{THREE}converters:\n  - {{from: criu-3.17, to: criu-4.2, use: identity}}\n")).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("expected adjacent versions"), "{e}");
        let e = load(&format!("{THREE}converters:\n  - {{from: criu-4.1, to: criu-9, use: identity}}\n")).unwrap_err();
        assert!(e.to_string().contains("`criu-9` is not in `versions`"), "{e}");
        let e = load(&format!("{THREE}converters:\n  - {{from: criu-4.1, to: criu-4.2, use: nope.sh}}\n")).unwrap_err();
        assert!(e.to_string().contains("expected one of identity, crit-recode"), "{e}");
        let f = load(&format!("{THREE}converters:\n  - {{from: criu-4.1, to: criu-4.2, use: conv.sh}}\n")).unwrap();
        assert!(matches!(&f.steps[0].using, Using::Command(p) if p.ends_with("conv.sh")));
        assert!(load("versions: [criu-4.1]\n").unwrap_err().to_string().contains("criu-3.17"));
        let e =
            load(&format!("{THREE}converters:\n  - {{from: criu-4.1, to: criu-4.2, use: plain.sh}}\n")).unwrap_err();
        assert!(e.to_string().contains("is not executable"), "{e}");
        let e = load("versions: [criu-3.17, criu-4.1, criu-4.2, criu-4.1]\n").unwrap_err();
        assert!(e.to_string().contains("formats.yaml:1: version `criu-4.1` appears twice"), "{e}");
        let e = load(&format!(
            "{THREE}converters:\n  - {{from: criu-4.1, to: criu-4.2, use: identity}}\n  - {{from: criu-4.1, to: criu-4.2, use: conv.sh}}\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().contains("a second converter for this step"), "{e}");
    }

    #[test]
    fn host_versions_map_to_formats() {
        assert_eq!(format_of_version("3.17.1").as_deref(), Some("criu-3.17"));
        assert_eq!(format_of_version("4"), None);
    }
}

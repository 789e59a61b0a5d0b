//! The kernel catalog (which packages or local files make each kernel id) and
//! the fetched, cached kernels the VMs boot.

pub mod apt;
pub mod fetch;
pub mod pvh;

use crate::config::yaml::{self, ConfigError};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// `kernels/catalog.yaml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    kernels: Vec<RawKernel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    id: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    suite: Option<String>,
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    local: Option<LocalKernel>,
}

/// A kernel built by the user: a bzImage and, optionally, its modules tree.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LocalKernel {
    pub bzimage: PathBuf,
    #[serde(default)]
    pub modules: Option<PathBuf>,
}

/// Where a kernel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Debian packages from one suite; names may contain `*` (newest match wins).
    Debian {
        suite: String,
        packages: Vec<String>,
    },
    Local(LocalKernel),
}

/// One validated catalog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSpec {
    pub id: String,
    /// Upstream version used to order kernels and for `min_kernel` checks.
    pub version: Version,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub kernels: Vec<KernelSpec>,
    pub path: PathBuf,
}

/// Why a command-line kernel names no kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// `ids` lists the catalog's kernels.
    #[error("`{given}` is neither a catalog kernel ({ids}) nor a bzImage file")]
    Unknown { given: String, ids: String },
    #[error("{0}: not a bzImage (no kernel version in its header)")]
    NotBzImage(String),
    #[error("{given}: unreadable kernel version `{text}`")]
    BadVersion { given: String, text: String },
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (raw, text): (RawCatalog, _) = yaml::load(path)?;
        let mut kernels = Vec::new();
        for k in raw.kernels {
            let line = yaml::find_line(&text, "kernels", &format!("\"{}\"", k.id))
                .or_else(|| yaml::line_of(&text, "kernels", &k.id));
            let err = |m: String| ConfigError::new(path, line, m);
            // Ids name cache files, VM share dirs and cell ids.
            crate::util::shell::check_name(&k.id).map_err(|e| err(format!("kernel id {e}")))?;
            if kernels.iter().any(|s: &KernelSpec| s.id == k.id) {
                return Err(err(format!("kernel id `{}` appears twice", k.id)));
            }
            let version_text = k.version.clone().unwrap_or_else(|| k.id.clone());
            let version = Version::parse(&version_text).ok_or_else(|| {
                err(format!(
                    "kernel `{}`: expected a version like \"6.1\" (give `version:` when the id is not one)",
                    k.id
                ))
            })?;
            let source = match (k.suite, k.local) {
                (Some(suite), None) if !k.packages.is_empty() => Source::Debian { suite, packages: k.packages },
                (None, Some(local)) => Source::Local(local),
                _ => {
                    return Err(err(format!(
                        "kernel `{}`: expected either `suite:` with `packages:`, or `local:`",
                        k.id
                    )))
                }
            };
            kernels.push(KernelSpec { id: k.id, version, source });
        }
        Ok(Catalog { kernels, path: path.to_path_buf() })
    }

    /// Resolves a command-line kernel: a catalog id, or the path of a bzImage
    /// (added to the catalog as a local kernel; its version is read from the
    /// image's header so `min_kernel` checks still work).
    pub fn resolve(&mut self, id_or_path: &str, modules: Option<&Path>) -> Result<String, ResolveError> {
        if self.get(id_or_path).is_some() {
            return Ok(id_or_path.to_string());
        }
        let path = Path::new(id_or_path);
        if !path.is_file() {
            let ids: Vec<&str> = self.kernels.iter().map(|k| k.id.as_str()).collect();
            return Err(ResolveError::Unknown { given: id_or_path.to_string(), ids: ids.join(", ") });
        }
        let text = bzimage_version(path).ok_or_else(|| ResolveError::NotBzImage(id_or_path.to_string()))?;
        let version = Version::parse(&text)
            .ok_or_else(|| ResolveError::BadVersion { given: id_or_path.to_string(), text: text.clone() })?;
        // The id names files: keep the release's safe characters only.
        let release: String = text
            .split_whitespace()
            .next()
            .unwrap_or("kernel")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') { c } else { '_' })
            .take(50)
            .collect();
        let id = format!("local-{}", release.replace("..", "_"));
        if self.get(&id).is_none() {
            let local = LocalKernel { bzimage: path.to_path_buf(), modules: modules.map(Path::to_path_buf) };
            self.kernels.push(KernelSpec { id: id.clone(), version, source: Source::Local(local) });
        }
        Ok(id)
    }

    pub fn get(&self, id: &str) -> Option<&KernelSpec> {
        self.kernels.iter().find(|k| k.id == id)
    }

    /// Position in the catalog's version order, for upgrade/downgrade pairs.
    pub fn rank(&self, id: &str) -> Option<(Version, usize)> {
        let pos = self.kernels.iter().position(|k| k.id == id)?;
        Some((self.kernels[pos].version.clone(), pos))
    }
}

/// The version string a bzImage carries (boot protocol: `kernel_version` at
/// 0x20E points, relative to 0x200, at a NUL-terminated string).
pub fn bzimage_version(path: &Path) -> Option<String> {
    // A kernel image is tens of MB; a device or a huge file is not one.
    let data = crate::util::fsutil::read_bounded(path, 512 << 20).ok()?;
    if data.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let at = u16::from_le_bytes([*data.get(0x20E)?, *data.get(0x20F)?]) as usize + 0x200;
    let rest = data.get(at..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// A dotted kernel version, compared numerically ("6.12" > "6.2").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version(pub Vec<u32>);

impl Version {
    pub fn parse(text: &str) -> Option<Self> {
        let core = text.split(|c: char| !(c.is_ascii_digit() || c == '.')).next()?;
        let parts: Option<Vec<u32>> = core.split('.').filter(|p| !p.is_empty()).map(|p| p.parse().ok()).collect();
        parts.filter(|p| !p.is_empty()).map(Version)
    }

    /// A version written in full, as a configuration file must: one to four
    /// dot-separated numbers and nothing else (`5.13`, not `5.13rc` or `banana`).
    pub fn parse_exact(text: &str) -> Option<Self> {
        let parts: Option<Vec<u32>> =
            text.split('.').map(|p| p.parse().ok().filter(|_| p.bytes().all(|b| b.is_ascii_digit()))).collect();
        parts.filter(|p| (1..=4).contains(&p.len())).map(Version)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// A kernel ready to boot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Kernel {
    pub id: String,
    /// `uname -r` of the kernel (the modules directory name).
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/RELEASE`, if the kernel has loadable modules.
    pub modules: Option<PathBuf>,
    /// Exact Debian packages and versions, for the record.
    pub packages: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("6.12") > v("6.2"));
        assert!(v("5.10") < v("6.1"));
        assert_eq!(v("6.1.0-56-amd64"), v("6.1.0"));
        assert!(Version::parse("mytree").is_none());
    }

    fn catalog(text: &str) -> Result<Catalog, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("catalog.yaml");
        std::fs::write(&p, text).unwrap();
        Catalog::load(&p)
    }

    #[test]
    fn catalog_parses_both_sources() {
        let c = catalog(
            "kernels:\n  - id: \"6.1\"\n    suite: bookworm\n    packages: [\"linux-image-6.1.0-*-amd64-unsigned\"]\n  - id: mine\n    version: \"6.19\"\n    local: { bzimage: /tmp/bz }\n",
        )
        .unwrap();
        assert_eq!(c.kernels.len(), 2);
        assert!(matches!(c.get("mine").unwrap().source, Source::Local(_)));
        assert_eq!(c.get("mine").unwrap().version, Version(vec![6, 19]));
    }

    #[test]
    fn catalog_errors_name_the_line() {
        let err = catalog("kernels:\n  - id: \"6.1\"\n    suite: bookworm\n  - id: x\n    local: { bzimage: /b }\n")
            .unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.to_string().contains("expected either `suite:` with `packages:`"), "{err}");
        let err = catalog("kernels:\n  - id: foo\n    local: { bzimage: /b }\n").unwrap_err();
        assert!(err.to_string().contains(":2: kernel `foo`: expected a version"), "{err}");
    }
}

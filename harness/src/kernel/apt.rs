//! A private apt state, so crtest can download packages from suites the host
//! does not use (bullseye, trixie, sid...) without touching the host's apt.
//!
//! The archive URIs are read from the host's own apt sources, so nothing in
//! the repository names a mirror.

use crate::util::error::{io_at, IoAt};
use crate::util::hosttool::ToolError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the private apt state could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error("no Debian archive configured in /etc/apt/sources.list or /etc/apt/sources.list.d")]
    NoArchives,
    /// `kind` is `main` or `security`.
    #[error("the host's apt sources have no Debian {kind} archive to derive suite {suite} from")]
    NoArchiveFor { kind: &'static str, suite: String },
    #[error("apt-cache policy {0} shows no candidate")]
    NoCandidate(String),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    File(#[from] IoAt),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One archive the host's apt is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub uri: String,
    pub suites: Vec<String>,
    pub signed_by: Option<String>,
}

impl Archive {
    fn is_security(&self) -> bool {
        self.suites.iter().any(|s| s.ends_with("-security"))
    }
}

/// Parses deb822 `.sources` text (keeps `deb` entries only).
pub fn parse_deb822(text: &str) -> Vec<Archive> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else { continue };
        if !is_deb || field("Enabled").is_some_and(|e| e.eq_ignore_ascii_case("no")) {
            continue;
        }
        for uri in uris.split_whitespace() {
            out.push(Archive {
                uri: uri.to_string(),
                suites: suites.split_whitespace().map(str::to_string).collect(),
                signed_by: field("Signed-By"),
            });
        }
    }
    out
}

/// Parses one-line `sources.list` text (keeps `deb` lines only).
pub fn parse_one_line(text: &str) -> Vec<Archive> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("deb ") else { continue };
        let mut rest = rest.trim();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let (opts, after) = opts.split_once(']').unwrap_or((opts, ""));
            signed_by = opts.split_whitespace().find_map(|o| o.strip_prefix("signed-by=").map(str::to_string));
            rest = after.trim();
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            out.push(Archive { uri: uri.into(), suites: vec![suite.into()], signed_by });
        }
    }
    out
}

/// Reads every archive the host's apt knows.
pub fn host_archives() -> Result<Vec<Archive>, AptError> {
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        out.extend(parse_one_line(&text));
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            match path.extension().and_then(|e| e.to_str()) {
                Some("sources") => out.extend(parse_deb822(&text)),
                Some("list") => out.extend(parse_one_line(&text)),
                _ => {}
            }
        }
    }
    if out.is_empty() {
        return Err(AptError::NoArchives);
    }
    Ok(out)
}

/// The `sources.list` line for `suite`: security suites come from the host's
/// security archive, every other suite from its main archive.
pub fn source_line(archives: &[Archive], suite: &str) -> Result<String, AptError> {
    let want_security = suite.ends_with("-security");
    let archive = archives.iter().find(|a| a.is_security() == want_security).ok_or_else(|| {
        let kind = if want_security { "security" } else { "main" };
        AptError::NoArchiveFor { kind, suite: suite.to_string() }
    })?;
    let key = archive.signed_by.as_deref().unwrap_or("/usr/share/keyrings/debian-archive-keyring.gpg");
    Ok(format!("deb [signed-by={key}] {} {suite} main\n", archive.uri))
}

/// A private apt state directory for one suite.
pub struct PrivateApt {
    root: PathBuf,
}

impl PrivateApt {
    /// Prepares `root` (sources, lists, cache) for `suite`.
    pub fn new(root: &Path, suite: &str) -> Result<Self, AptError> {
        let line = source_line(&host_archives()?, suite)?;
        for sub in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(root.join(sub)).map_err(io_at("creating", root))?;
        }
        crate::util::fsutil::write_atomic(&root.join("sources.list"), line.as_bytes())?;
        Ok(PrivateApt { root: root.to_path_buf() })
    }

    fn options(&self) -> Vec<String> {
        let r = self.root.display();
        vec![
            format!("-oDir::Etc::SourceList={r}/sources.list"),
            "-oDir::Etc::SourceParts=/dev/null".into(),
            format!("-oDir::State::Lists={r}/lists"),
            format!("-oDir::Cache={r}/cache"),
            "-oDir::State::status=/dev/null".into(),
            "-oAPT::Sandbox::User=root".into(),
            "-oDebug::NoLocking=1".into(),
            "-qq".into(),
        ]
    }

    fn run(&self, tool: &str, args: &[&str], cwd: Option<&Path>) -> Result<String, AptError> {
        let mut cmd = Command::new(tool);
        cmd.args(self.options()).args(args);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let out = crate::util::hosttool::output(&mut cmd, &format!("{tool} {}", args.join(" ")))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn update(&self) -> Result<(), AptError> {
        self.run("apt-get", &["update"], None).map(drop)
    }

    /// Package names starting with `prefix`.
    pub fn names(&self, prefix: &str) -> Result<Vec<String>, AptError> {
        Ok(self.run("apt-cache", &["pkgnames", prefix], None)?.lines().map(str::to_string).collect())
    }

    /// Real packages `package` depends on directly (virtual ones, shown by
    /// apt in angle brackets, are left out).
    pub fn depends(&self, package: &str) -> Result<Vec<String>, AptError> {
        let text = self.run("apt-cache", &["depends", package], None)?;
        Ok(parse_depends(&text))
    }

    /// `package` and everything it needs to run (Depends, recursively;
    /// virtual packages left out).
    pub fn closure(&self, package: &str) -> Result<Vec<String>, AptError> {
        let args = [
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            "--no-pre-depends",
            package,
        ];
        let text = self.run("apt-cache", &args, None)?;
        let mut names: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with('<') && !l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Candidate version of `package`.
    pub fn version(&self, package: &str) -> Result<String, AptError> {
        let text = self.run("apt-cache", &["policy", package], None)?;
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Candidate:").map(|v| v.trim().to_string()))
            .ok_or_else(|| AptError::NoCandidate(package.to_string()))
    }

    /// Downloads `packages` (.deb files) into `dir`.
    pub fn download(&self, packages: &[String], dir: &Path) -> Result<Vec<PathBuf>, AptError> {
        let mut args = vec!["download"];
        args.extend(packages.iter().map(String::as_str));
        self.run("apt-get", &args, Some(dir))?;
        let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        debs.sort();
        Ok(debs)
    }
}

/// Package names from `apt-cache depends` output (Depends lines only).
pub fn parse_depends(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends:"))
        .map(str::trim)
        .filter(|p| !p.starts_with('<'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_skips_virtual_packages() {
        let text = "linux-image-7.3.4+deb13-amd64\n  PreDepends: linux-base\n |Depends: <dracut>\n  Depends: linux-base-7.3.4+deb13-amd64\n  Depends: linux-binary-7.3.4+deb13-amd64\n  Depends: <linux-modules-6.19>\n  Breaks: <fwupdate>\n";
        assert_eq!(parse_depends(text), vec!["linux-base-7.3.4+deb13-amd64", "linux-binary-7.3.4+deb13-amd64"]);
    }

    const DEB822: &str = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n";

    #[test]
    fn deb822_entries() {
        let a = parse_deb822(DEB822);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].suites, vec!["bookworm", "bookworm-updates"]);
        assert_eq!(a[0].signed_by.as_deref(), Some("/k.gpg"));
        assert!(a[1].is_security());
    }

    #[test]
    fn one_line_entries_with_options() {
        let a = parse_one_line("# c\ndeb [arch=amd64 signed-by=/x.gpg] http://m/debian bookworm main\ndeb-src http://m/debian bookworm main\n");
        assert_eq!(
            a,
            vec![Archive {
                uri: "http://m/debian".into(),
                suites: vec!["bookworm".into()],
                signed_by: Some("/x.gpg".into())
            }]
        );
    }

    #[test]
    fn suites_map_to_main_or_security_archive() {
        let a = parse_deb822(DEB822);
        assert_eq!(
            source_line(&a, "bullseye").unwrap(),
            "deb [signed-by=/k.gpg] http://mirror.example/debian bullseye main\n"
        );
        let sec = source_line(&a, "bookworm-security").unwrap();
        assert!(sec.contains("debian-security bookworm-security main"), "{sec}");
        let e = source_line(&a[..1], "bookworm-security").unwrap_err();
        assert!(matches!(e, AptError::NoArchiveFor { kind: "security", .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "the host's apt sources have no Debian security archive to derive suite bookworm-security from"
        );
    }
}

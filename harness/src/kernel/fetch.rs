//! Fetching kernels into the cache: Debian packages through a private apt
//! state, extracted and normalised to one layout; local kernels used in place.

use super::apt::{AptError, PrivateApt};
use super::{Kernel, KernelSpec, Source};
use crate::util::error::{io_at, IoAt};
use crate::util::fsutil;
use crate::util::hosttool::ToolError;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const MANIFEST: &str = "kernel.json";
/// Packages a kernel meta package may be split into (Debian 6.19 and later).
const KERNEL_PARTS: &[&str] = &["linux-binary-", "linux-modules-", "linux-base-"];

/// Why a kernel or an engine's packages could not be brought into the cache.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("updating the package lists of suite {suite}")]
    Update {
        suite: String,
        #[source]
        source: AptError,
    },
    #[error("kernel {id}: no package matching `{pattern}` in suite {suite}")]
    NoMatch { id: String, pattern: String, suite: String },
    #[error("kernel {0}: the packages hold no lib/modules directory")]
    NoModulesDir(String),
    #[error("kernel {id}: {} is empty", dir.display())]
    EmptyModulesDir { id: String, dir: PathBuf },
    #[error("kernel {id}: no vmlinuz for release {release} in the packages")]
    NoVmlinuz { id: String, release: String },
    #[error("kernel {id}: bzImage {} does not exist", path.display())]
    NoBzImage { id: String, path: PathBuf },
    #[error("kernel {id}: modules directory {} does not exist", path.display())]
    NoModules { id: String, path: PathBuf },
    /// `what` names the engine (or its tools) whose entry lists no package.
    #[error("{0}: no packages named")]
    NoPackages(String),
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    File(#[from] IoAt),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// The cache directory of one kernel id.
pub fn kernel_dir(cache: &Path, id: &str) -> PathBuf {
    cache.join("kernels").join(id)
}

/// The cached kernel, if it was fetched before.
pub fn cached(cache: &Path, spec: &KernelSpec) -> Option<Kernel> {
    match &spec.source {
        Source::Local(_) => local(spec).ok(),
        Source::Debian { .. } => {
            let text = std::fs::read(kernel_dir(cache, &spec.id).join(MANIFEST)).ok()?;
            serde_json::from_slice(&text).ok()
        }
    }
}

/// Suites whose lists were refreshed by this process (apt update once each).
static UPDATED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Returns the kernel, downloading and extracting it first if it is not cached.
pub fn fetch(cache: &Path, spec: &KernelSpec, log: &dyn Fn(&str)) -> Result<Kernel, FetchError> {
    if let Some(k) = cached(cache, spec) {
        return Ok(k);
    }
    let Source::Debian { suite, packages } = &spec.source else { return local(spec) };
    let apt = PrivateApt::new(&cache.join("apt").join(suite), suite)?;
    if UPDATED.lock().unwrap().insert(suite.clone()) {
        log(&format!("kernel {}: apt-get update for suite {suite}", spec.id));
        apt.update().map_err(|source| FetchError::Update { suite: suite.clone(), source })?;
    }
    let mut names = Vec::new();
    for pattern in packages {
        let prefix = pattern.split('*').next().unwrap_or(pattern);
        let found = apt.names(prefix)?;
        let name = newest_match(pattern, &found).ok_or_else(|| FetchError::NoMatch {
            id: spec.id.clone(),
            pattern: pattern.clone(),
            suite: suite.clone(),
        })?;
        names.push(name);
    }
    // Newer kernels split a meta `linux-image-*` into binary, modules and base packages.
    for name in names.clone() {
        let parts = apt.depends(&name)?;
        names.extend(parts.into_iter().filter(|p| KERNEL_PARTS.iter().any(|k| p.starts_with(k))));
    }
    let versions: Vec<String> =
        names.iter().map(|n| apt.version(n).map(|v| format!("{n}={v}"))).collect::<Result<_, AptError>>()?;
    log(&format!("kernel {}: downloading {}", spec.id, versions.join(" ")));
    std::fs::create_dir_all(cache.join("kernels"))?;
    let download = tempfile::tempdir_in(cache.join("kernels"))?;
    let debs = apt.download(&names, download.path())?;
    let staging = tempfile::tempdir_in(cache.join("kernels"))?;
    let tree = staging.path().join("tree");
    for deb in &debs {
        extract_deb(deb, &tree)?;
    }
    let kernel = normalise(&spec.id, &tree, staging.path(), versions)?;
    install(cache, &spec.id, staging, kernel)
}

/// Moves a finished staging directory into place, rewriting paths into it.
fn install(cache: &Path, id: &str, staging: tempfile::TempDir, kernel: Kernel) -> Result<Kernel, FetchError> {
    let dest = kernel_dir(cache, id);
    let _ = std::fs::remove_dir_all(&dest);
    let staged = staging.keep();
    std::fs::rename(&staged, &dest).map_err(io_at("moving kernel into", &dest))?;
    let relocate = |p: &Path| dest.join(p.strip_prefix(&staged).unwrap_or(p));
    let kernel =
        Kernel { vmlinuz: relocate(&kernel.vmlinuz), modules: kernel.modules.as_deref().map(relocate), ..kernel };
    fsutil::write_atomic(&dest.join(MANIFEST), &serde_json::to_vec_pretty(&kernel)?)?;
    Ok(kernel)
}

fn extract_deb(deb: &Path, into: &Path) -> Result<(), ToolError> {
    let mut cmd = Command::new("dpkg-deb");
    crate::util::hosttool::output(cmd.arg("-x").arg(deb).arg(into), &format!("dpkg-deb -x {}", deb.display()))?;
    Ok(())
}

/// Finds the kernel image and modules in an extracted package tree (old
/// layout: `boot/vmlinuz-R` + `lib/modules/R`; new: `usr/lib/modules/R/vmlinuz`)
/// and moves them to `staging/vmlinuz` and `staging/modules/R`.
fn normalise(id: &str, tree: &Path, staging: &Path, packages: Vec<String>) -> Result<Kernel, FetchError> {
    let mod_root = ["usr/lib/modules", "lib/modules"]
        .iter()
        .map(|p| tree.join(p))
        .find(|p| p.is_dir())
        .ok_or_else(|| FetchError::NoModulesDir(id.into()))?;
    let release = std::fs::read_dir(&mod_root)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| FetchError::EmptyModulesDir { id: id.into(), dir: mod_root.clone() })?;
    let vmlinuz = [tree.join(format!("boot/vmlinuz-{release}")), mod_root.join(&release).join("vmlinuz")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| FetchError::NoVmlinuz { id: id.into(), release: release.clone() })?;
    std::fs::rename(&vmlinuz, staging.join("vmlinuz"))?;
    std::fs::create_dir_all(staging.join("modules"))?;
    let modules = staging.join("modules").join(&release);
    std::fs::rename(mod_root.join(&release), &modules)?;
    std::fs::remove_dir_all(tree)?;
    Ok(Kernel { id: id.into(), release, vmlinuz: staging.join("vmlinuz"), modules: Some(modules), packages })
}

fn local(spec: &KernelSpec) -> Result<Kernel, FetchError> {
    let Source::Local(l) = &spec.source else { unreachable!("local() called for a packaged kernel") };
    if !l.bzimage.is_file() {
        return Err(FetchError::NoBzImage { id: spec.id.clone(), path: l.bzimage.clone() });
    }
    if let Some(m) = &l.modules {
        if !m.is_dir() {
            return Err(FetchError::NoModules { id: spec.id.clone(), path: m.clone() });
        }
    }
    let release = l
        .modules
        .as_ref()
        .and_then(|m| m.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{}-local", spec.version));
    Ok(Kernel {
        id: spec.id.clone(),
        release,
        vmlinuz: l.bzimage.clone(),
        modules: l.modules.clone(),
        packages: vec![],
    })
}

/// Shell-style match where `*` is any run of characters within one
/// dash-separated part, so `6.1.0-*-amd64` matches `6.1.0-56-amd64` but not
/// the `6.1.0-56-rt-amd64` flavour.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else { return false };
            let part = rest.find('-').unwrap_or(rest.len());
            (0..=part).any(|i| rest.is_char_boundary(i) && glob_match(tail, &rest[i..]))
        }
    }
}

/// The highest-versioned name matching `pattern`.
pub fn newest_match(pattern: &str, names: &[String]) -> Option<String> {
    names.iter().filter(|n| glob_match(pattern, n)).max_by(|a, b| natural_cmp(a, b)).cloned()
}

/// Compares digit runs numerically: "6.1.0-56" > "6.1.0-9".
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let na: u128 = std::str::from_utf8(&a[..da]).unwrap().parse().unwrap_or(0);
                let nb: u128 = std::str::from_utf8(&b[..db]).unwrap().parse().unwrap_or(0);
                match na.cmp(&nb) {
                    Ordering::Equal => (a, b) = (&a[da..], &b[db..]),
                    o => return o,
                }
            }
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => (a, b) = (&a[1..], &b[1..]),
        }
    }
}

/// An engine built from Debian packages: `spec.package` with its whole
/// dependency closure from `spec.suite`, extracted into one root directory
/// (with the merged-/usr links newer suites expect), cached.
/// Returns the engine's id (its package version) and its files.
pub fn engine_root(
    spec: &crate::config::engines::EngineSpec,
    cache: &Path,
    log: &dyn Fn(&str),
) -> Result<(String, Vec<crate::guest::cpio::Entry>), FetchError> {
    let id = package_root(cache, &spec.suite, std::slice::from_ref(&spec.package), &spec.id, &spec.id, log)?;
    Ok((id, root_entries(&engines_dir(cache).join(&spec.id).join("root"))?))
}

/// The engine's host-side tools (crit with its Python and libraries), as a
/// tree of their own: they never go into the guest.
pub fn tools_root(
    spec: &crate::config::engines::EngineSpec,
    cache: &Path,
    log: &dyn Fn(&str),
) -> Result<PathBuf, FetchError> {
    let name = format!("{}-tools", spec.id);
    package_root(cache, &spec.suite, &spec.tools, &name, &format!("{} tools", spec.id), log)?;
    Ok(engines_dir(cache).join(name).join("root"))
}

/// The cache directory holding engine trees (and their staging directories).
fn engines_dir(cache: &Path) -> PathBuf {
    cache.join("engines")
}

/// Extracts `packages` of `suite` with their whole dependency closure into
/// the `root` of engine tree `name` (once; cached) and returns
/// `PACKAGE-UPSTREAMVERSION` of the first.
fn package_root(
    cache: &Path,
    suite: &str,
    packages: &[String],
    name: &str,
    what: &str,
    log: &dyn Fn(&str),
) -> Result<String, FetchError> {
    let parent = engines_dir(cache);
    let dir = parent.join(name);
    let manifest = dir.join("engine.json");
    if let Ok(text) = std::fs::read(&manifest) {
        return Ok(serde_json::from_slice(&text)?);
    }
    let first = packages.first().ok_or_else(|| FetchError::NoPackages(what.into()))?;
    let apt = PrivateApt::new(&cache.join("apt").join(suite), suite)?;
    if UPDATED.lock().unwrap().insert(suite.to_string()) {
        log(&format!("{what}: apt-get update for suite {suite}"));
        apt.update()?;
    }
    let version = apt.version(first)?;
    let mut closure = BTreeSet::new();
    for p in packages {
        closure.extend(apt.closure(p)?);
    }
    let closure: Vec<String> = closure.into_iter().collect();
    log(&format!("{what}: downloading {} {version} and {} dependencies", packages.join(", "), closure.len() - 1));
    std::fs::create_dir_all(&parent)?;
    let download = tempfile::tempdir_in(&parent)?;
    let staging = tempfile::tempdir_in(&parent)?;
    let root = staging.path().join("root");
    for deb in apt.download(&closure, download.path())? {
        extract_deb(&deb, &root)?;
    }
    for (link, target) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        if !root.join(link).exists() && root.join(target).is_dir() {
            std::os::unix::fs::symlink(target, root.join(link))?;
        }
    }
    let upstream = version.split(['-', '+', '~']).next().unwrap_or(&version);
    let id = format!("{first}-{upstream}");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(staging.keep(), &dir)?;
    fsutil::write_atomic(&manifest, &serde_json::to_vec(&id)?)?;
    Ok(id)
}

/// Documentation the guest never reads.
const ROOT_SKIP: &[&str] =
    &["usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/lintian", "usr/share/info"];

/// Every file, link and directory under `root` as image entries.
fn root_entries(root: &Path) -> Result<Vec<crate::guest::cpio::Entry>, std::io::Error> {
    use crate::guest::cpio::Entry;
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if ROOT_SKIP.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            let kind = e.file_type()?;
            if kind.is_symlink() {
                out.push(Entry::symlink(&rel, &std::fs::read_link(&path)?.to_string_lossy()));
            } else if kind.is_dir() {
                out.push(Entry::dir(&rel));
                stack.push(path);
            } else {
                let perm = e.metadata()?.permissions().mode() & 0o7777;
                out.push(Entry::file(&rel, perm, std::fs::read(&path)?));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("linux-image-6.1.0-*-amd64-unsigned", "linux-image-6.1.0-56-amd64-unsigned"));
        assert!(!glob_match("linux-image-6.1.0-*-amd64-unsigned", "linux-image-6.1.0-56-rt-amd64-unsigned"));
        assert!(glob_match("a*", "a"));
        assert!(!glob_match("a", "ab"));
    }

    #[test]
    fn newest_is_numeric_not_lexical() {
        let names: Vec<String> = [
            "linux-image-6.12.9+deb12-amd64-unsigned",
            "linux-image-6.12.117+deb12-amd64-unsigned",
            "linux-image-6.12.117+deb12-rt-amd64-unsigned",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            newest_match("linux-image-6.12.*+deb12-amd64-unsigned", &names).as_deref(),
            Some("linux-image-6.12.117+deb12-amd64-unsigned")
        );
        assert_eq!(newest_match("linux-image-7*", &names), None);
    }

    #[test]
    fn a_missing_local_kernel_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let bzimage = dir.path().join("bzImage");
        let local = |modules| crate::kernel::LocalKernel { bzimage: bzimage.clone(), modules };
        let spec =
            |l| KernelSpec { id: "mine".into(), version: crate::kernel::Version(vec![6, 1]), source: Source::Local(l) };
        let e = fetch(dir.path(), &spec(local(None)), &|_| {}).unwrap_err();
        assert_eq!(e.to_string(), format!("kernel mine: bzImage {} does not exist", bzimage.display()));
        std::fs::write(&bzimage, b"MZ").unwrap();
        let e = fetch(dir.path(), &spec(local(Some(dir.path().join("m")))), &|_| {}).unwrap_err();
        assert!(matches!(e, FetchError::NoModules { .. }), "{e}");
        assert_eq!(fetch(dir.path(), &spec(local(None)), &|_| {}).unwrap().release, "6.1-local");
    }

    #[test]
    fn a_package_tree_without_a_release_says_which_directory_is_empty() {
        let staging = tempfile::tempdir().unwrap();
        let tree = staging.path().join("tree");
        std::fs::create_dir_all(tree.join("lib/modules")).unwrap();
        let e = normalise("6.1", &tree, staging.path(), vec![]).unwrap_err();
        assert_eq!(e.to_string(), format!("kernel 6.1: {} is empty", tree.join("lib/modules").display()));
    }

    #[test]
    fn normalise_handles_both_layouts() {
        for (vmlinuz, mods) in [
            ("boot/vmlinuz-6.1.0-1-amd64", "lib/modules/6.1.0-1-amd64"),
            ("usr/lib/modules/6.1.0-1-amd64/vmlinuz", "usr/lib/modules/6.1.0-1-amd64"),
        ] {
            let staging = tempfile::tempdir().unwrap();
            let tree = staging.path().join("tree");
            std::fs::create_dir_all(tree.join(mods).join("kernel")).unwrap();
            std::fs::create_dir_all(tree.join(vmlinuz).parent().unwrap()).unwrap();
            std::fs::write(tree.join(vmlinuz), b"MZ").unwrap();
            let k = normalise("6.1", &tree, staging.path(), vec![]).unwrap();
            assert_eq!(k.release, "6.1.0-1-amd64");
            assert_eq!(std::fs::read(&k.vmlinuz).unwrap(), b"MZ");
            assert!(k.modules.unwrap().join("kernel").is_dir());
        }
    }
}

//! Fetching kernels into the cache: Debian packages through a private apt
//! state, extracted and normalised to one layout; local kernels used in place.

use super::apt::PrivateApt;
use super::{Kernel, KernelSpec, Source};
use crate::util::fsutil;
use anyhow::{bail, Context, Result};
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const MANIFEST: &str = "kernel.json";
/// Packages a kernel meta package may be split into (Debian 6.19 and later).
const KERNEL_PARTS: &[&str] = &["linux-binary-", "linux-modules-", "linux-base-"];

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
pub fn fetch(cache: &Path, spec: &KernelSpec, log: &dyn Fn(&str)) -> Result<Kernel> {
    if let Some(k) = cached(cache, spec) {
        return Ok(k);
    }
    let Source::Debian { suite, packages } = &spec.source else { return local(spec) };
    let apt = PrivateApt::new(&cache.join("apt").join(suite), suite)?;
    if UPDATED.lock().unwrap().insert(suite.clone()) {
        log(&format!("kernel {}: apt-get update for suite {suite}", spec.id));
        apt.update().with_context(|| format!("updating the package lists of suite {suite}"))?;
    }
    let mut names = Vec::new();
    for pattern in packages {
        let prefix = pattern.split('*').next().unwrap_or(pattern);
        let found = apt.names(prefix)?;
        let name = newest_match(pattern, &found)
            .with_context(|| format!("kernel {}: no package matching `{pattern}` in suite {suite}", spec.id))?;
        names.push(name);
    }
    // Newer kernels split a meta `linux-image-*` into binary, modules and base packages.
    for name in names.clone() {
        let parts = apt.depends(&name)?;
        names.extend(parts.into_iter().filter(|p| KERNEL_PARTS.iter().any(|k| p.starts_with(k))));
    }
    let versions: Vec<String> =
        names.iter().map(|n| apt.version(n).map(|v| format!("{n}={v}"))).collect::<Result<_>>()?;
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
fn install(cache: &Path, id: &str, staging: tempfile::TempDir, kernel: Kernel) -> Result<Kernel> {
    let dest = kernel_dir(cache, id);
    let _ = std::fs::remove_dir_all(&dest);
    let staged = staging.keep();
    std::fs::rename(&staged, &dest).with_context(|| format!("moving kernel into {}", dest.display()))?;
    let relocate = |p: &Path| dest.join(p.strip_prefix(&staged).unwrap_or(p));
    let kernel =
        Kernel { vmlinuz: relocate(&kernel.vmlinuz), modules: kernel.modules.as_deref().map(relocate), ..kernel };
    fsutil::write_atomic(&dest.join(MANIFEST), &serde_json::to_vec_pretty(&kernel)?)?;
    Ok(kernel)
}

fn extract_deb(deb: &Path, into: &Path) -> Result<()> {
    let mut cmd = Command::new("dpkg-deb");
    crate::util::hosttool::output(cmd.arg("-x").arg(deb).arg(into), &format!("dpkg-deb -x {}", deb.display()))?;
    Ok(())
}

/// Finds the kernel image and modules in an extracted package tree (old
/// layout: `boot/vmlinuz-R` + `lib/modules/R`; new: `usr/lib/modules/R/vmlinuz`)
/// and moves them to `staging/vmlinuz` and `staging/modules/R`.
fn normalise(id: &str, tree: &Path, staging: &Path, packages: Vec<String>) -> Result<Kernel> {
    let mod_root = ["usr/lib/modules", "lib/modules"]
        .iter()
        .map(|p| tree.join(p))
        .find(|p| p.is_dir())
        .with_context(|| format!("kernel {id}: the packages hold no lib/modules directory"))?;
    let release = std::fs::read_dir(&mod_root)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .with_context(|| format!("kernel {id}: {} is empty", mod_root.display()))?;
    let vmlinuz = [tree.join(format!("boot/vmlinuz-{release}")), mod_root.join(&release).join("vmlinuz")]
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("kernel {id}: no vmlinuz for release {release} in the packages"))?;
    std::fs::rename(&vmlinuz, staging.join("vmlinuz"))?;
    std::fs::create_dir_all(staging.join("modules"))?;
    let modules = staging.join("modules").join(&release);
    std::fs::rename(mod_root.join(&release), &modules)?;
    std::fs::remove_dir_all(tree)?;
    Ok(Kernel { id: id.into(), release, vmlinuz: staging.join("vmlinuz"), modules: Some(modules), packages })
}

fn local(spec: &KernelSpec) -> Result<Kernel> {
    let Source::Local(l) = &spec.source else { unreachable!("local() called for a packaged kernel") };
    if !l.bzimage.is_file() {
        bail!("kernel {}: bzImage {} does not exist", spec.id, l.bzimage.display());
    }
    if let Some(m) = &l.modules {
        if !m.is_dir() {
            bail!("kernel {}: modules directory {} does not exist", spec.id, m.display());
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
) -> Result<(String, Vec<crate::guest::cpio::Entry>)> {
    let dir = cache.join("engines").join(&spec.id);
    let id = package_root(cache, &spec.suite, std::slice::from_ref(&spec.package), &dir, &spec.id, log)?;
    Ok((id, root_entries(&dir.join("root"))?))
}

/// The engine's host-side tools (crit with its Python and libraries), as a
/// tree of their own: they never go into the guest.
pub fn tools_root(spec: &crate::config::engines::EngineSpec, cache: &Path, log: &dyn Fn(&str)) -> Result<PathBuf> {
    let dir = cache.join("engines").join(format!("{}-tools", spec.id));
    package_root(cache, &spec.suite, &spec.tools, &dir, &format!("{} tools", spec.id), log)?;
    Ok(dir.join("root"))
}

/// Extracts `packages` of `suite` with their whole dependency closure into
/// `dir/root` (once; cached) and returns `PACKAGE-UPSTREAMVERSION` of the first.
fn package_root(
    cache: &Path,
    suite: &str,
    packages: &[String],
    dir: &Path,
    what: &str,
    log: &dyn Fn(&str),
) -> Result<String> {
    let manifest = dir.join("engine.json");
    if let Ok(text) = std::fs::read(&manifest) {
        return Ok(serde_json::from_slice(&text)?);
    }
    let first = packages.first().with_context(|| format!("{what}: no packages named"))?;
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
    let parent = dir.parent().context("cache dir has a parent")?;
    std::fs::create_dir_all(parent)?;
    let download = tempfile::tempdir_in(parent)?;
    let staging = tempfile::tempdir_in(parent)?;
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
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(staging.keep(), dir)?;
    fsutil::write_atomic(&manifest, &serde_json::to_vec(&id)?)?;
    Ok(id)
}

/// Documentation the guest never reads.
const ROOT_SKIP: &[&str] =
    &["usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/lintian", "usr/share/info"];

/// Every file, link and directory under `root` as image entries.
fn root_entries(root: &Path) -> Result<Vec<crate::guest::cpio::Entry>> {
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

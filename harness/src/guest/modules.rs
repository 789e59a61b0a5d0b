//! Kernel module dependency closure, read from the modules themselves.
//!
//! Debian's kernel packages ship no `modules.dep`, so the closure is computed
//! from each module's `.modinfo` `depends=` string. Modules may be plain or
//! compressed (`.ko.xz`, `.ko.zst`); the guest gets them decompressed so
//! busybox `insmod` can load them on every kernel.

use crate::util::error::{io_at, IoAt};
use crate::util::hosttool::ToolError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a kernel's modules could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// Scanning the modules dir, or reading a module file.
    #[error(transparent)]
    Read(#[from] IoAt),
    /// The decompressor of a `.ko.xz`/`.zst`/`.gz` failed.
    #[error(transparent)]
    Decompress(#[from] ToolError),
}

/// Module name as the kernel spells it: file stem with `-` folded to `_`.
pub fn module_name(file_name: &str) -> Option<String> {
    let stem = file_name
        .strip_suffix(".ko")
        .or_else(|| file_name.strip_suffix(".ko.xz"))
        .or_else(|| file_name.strip_suffix(".ko.zst"))
        .or_else(|| file_name.strip_suffix(".ko.gz"))?;
    Some(stem.replace('-', "_"))
}

/// The `depends=` list from a module's (uncompressed) bytes.
pub fn parse_depends(ko: &[u8]) -> Vec<String> {
    // .modinfo holds NUL-separated key=value strings; a key must follow a NUL.
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &ko[at + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).split(',').filter(|s| !s.is_empty()).map(|s| s.replace('-', "_")).collect()
}

/// Every loadable module of one kernel, by name.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    pub files: BTreeMap<String, PathBuf>,
    pub builtin: BTreeSet<String>,
}

impl ModuleIndex {
    /// Indexes `lib/modules/VERSION` (the directory holding `kernel/`).
    pub fn scan(modules_dir: &Path) -> Result<Self, ModuleError> {
        let mut index = ModuleIndex::default();
        walk(modules_dir, &mut |path| {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(module_name) {
                index.files.insert(name, path.to_path_buf());
            }
        })
        .map_err(io_at("scanning modules in", modules_dir))?;
        if let Ok(text) = std::fs::read_to_string(modules_dir.join("modules.builtin")) {
            index.builtin = text.lines().filter_map(|l| l.rsplit('/').next().and_then(module_name)).collect();
        }
        Ok(index)
    }
}

fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, visit)?;
        } else {
            visit(&path);
        }
    }
    Ok(())
}

/// Reads a module file, decompressing `.xz`/`.zst`/`.gz` with the host tools.
pub fn read_module(path: &Path) -> Result<Vec<u8>, ModuleError> {
    let tool = match path.extension().and_then(|e| e.to_str()) {
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => return Ok(std::fs::read(path).map_err(io_at("reading", path))?),
    };
    let out = crate::util::hosttool::output(
        Command::new(tool).arg("-dc").arg(path),
        &format!("{tool} -dc {}", path.display()),
    )?;
    Ok(out.stdout)
}

/// The result of a closure: modules in load order (dependencies first).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Closure {
    pub load_order: Vec<String>,
    /// Wanted modules that are built into the kernel (nothing to load).
    pub builtin: Vec<String>,
    /// Wanted modules this kernel has neither as a file nor built in.
    pub missing: Vec<String>,
}

/// Computes the load order for `wanted` given a dependency lookup.
/// Pure: `deps(name)` answers `None` for an unknown module.
pub fn closure(
    wanted: &[&str],
    is_builtin: &dyn Fn(&str) -> bool,
    deps: &mut dyn FnMut(&str) -> Option<Vec<String>>,
) -> Closure {
    let mut out = Closure::default();
    let mut done = BTreeSet::new();
    for name in wanted {
        let name = name.replace('-', "_");
        if is_builtin(&name) {
            out.builtin.push(name);
        } else if !visit(&name, is_builtin, deps, &mut done, &mut BTreeSet::new(), &mut out.load_order) {
            out.missing.push(name);
        }
    }
    out
}

/// Post-order DFS; returns false when `name` cannot be found.
fn visit(
    name: &str,
    is_builtin: &dyn Fn(&str) -> bool,
    deps: &mut dyn FnMut(&str) -> Option<Vec<String>>,
    done: &mut BTreeSet<String>,
    on_path: &mut BTreeSet<String>,
    order: &mut Vec<String>,
) -> bool {
    if done.contains(name) || is_builtin(name) || on_path.contains(name) {
        return true;
    }
    let Some(children) = deps(name) else { return false };
    on_path.insert(name.to_string());
    for child in children {
        // A dependency that is neither a file nor built in cannot load; let insmod say so.
        visit(&child, is_builtin, deps, done, on_path, order);
    }
    on_path.remove(name);
    done.insert(name.to_string());
    order.push(name.to_string());
    true
}

/// Loads the closure of `wanted` from a kernel's module tree, returning
/// (name, decompressed bytes) in load order.
/// A module to load: its name and decompressed bytes.
pub type Loaded = (String, Vec<u8>);

pub fn resolve(modules_dir: &Path, wanted: &[&str]) -> Result<(Closure, Vec<Loaded>), ModuleError> {
    let index = ModuleIndex::scan(modules_dir)?;
    let mut bytes: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut error = None;
    let plan = closure(wanted, &|n| index.builtin.contains(n), &mut |name| {
        let path = index.files.get(name)?;
        match read_module(path) {
            Ok(data) => {
                let deps = parse_depends(&data);
                bytes.insert(name.to_string(), data);
                Some(deps)
            }
            Err(e) => {
                error.get_or_insert(e);
                None
            }
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    let loaded = plan.load_order.iter().map(|n| (n.clone(), bytes.remove(n).unwrap_or_default())).collect();
    Ok((plan, loaded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_dashes_and_suffixes() {
        assert_eq!(module_name("9pnet_virtio.ko").as_deref(), Some("9pnet_virtio"));
        assert_eq!(module_name("nf-tables.ko.xz").as_deref(), Some("nf_tables"));
        assert_eq!(module_name("x.ko.zst").as_deref(), Some("x"));
        assert_eq!(module_name("modules.builtin"), None);
    }

    #[test]
    fn depends_is_read_from_modinfo() {
        let ko = b"\x7fELF...\0license=GPL\0depends=9pnet,netfs\0vermagic=6.1\0";
        assert_eq!(parse_depends(ko), vec!["9pnet", "netfs"]);
        assert!(parse_depends(b"\0depends=\0").is_empty());
        assert!(parse_depends(b"no modinfo").is_empty());
    }

    fn graph() -> BTreeMap<&'static str, Vec<String>> {
        BTreeMap::from([
            ("9p", vec!["9pnet".into(), "netfs".into()]),
            ("9pnet_virtio", vec!["9pnet".into(), "virtio_ring".into()]),
            ("9pnet", vec![]),
            ("netfs", vec!["fscache".into()]),
            ("fscache", vec![]),
            ("virtio_ring", vec![]),
        ])
    }

    #[test]
    fn closure_loads_dependencies_first_once() {
        let g = graph();
        let c = closure(&["9p", "9pnet_virtio"], &|_| false, &mut |n| g.get(n).cloned());
        assert_eq!(c.load_order, vec!["9pnet", "fscache", "netfs", "9p", "virtio_ring", "9pnet_virtio"]);
        assert!(c.missing.is_empty());
    }

    #[test]
    fn closure_reports_builtin_and_missing() {
        let g = graph();
        let c = closure(&["virtio_pci", "9p", "nope"], &|n| n == "virtio_pci" || n == "fscache", &mut |n| {
            g.get(n).cloned()
        });
        assert_eq!(c.builtin, vec!["virtio_pci"]);
        assert_eq!(c.missing, vec!["nope"]);
        assert_eq!(c.load_order, vec!["9pnet", "netfs", "9p"]);
    }

    #[test]
    fn closure_survives_cycles() {
        let g = BTreeMap::from([("a", vec!["b".to_string()]), ("b", vec!["a".to_string()])]);
        let c = closure(&["a"], &|_| false, &mut |n| g.get(n).cloned());
        assert_eq!(c.load_order, vec!["b", "a"]);
    }
}

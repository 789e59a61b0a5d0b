//! The guest image: a newc initramfs with busybox, our init, the kernel
//! modules CRIU needs (dependency closure), an engine's userspace and the
//! workload binaries. Cached by content hash.

use crate::engine::Engine;
use crate::guest::cpio::{self, Entry, Kind};
use crate::guest::hostlib::{is_static_elf, which};
use crate::guest::layout::{MEMDIGEST, WORKLOAD_BIN_DIR};
use crate::guest::modules::{self, ModuleError};
use crate::kernel::Kernel;
use crate::util::error::IoAt;
use crate::util::fsutil;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const INIT: &str = include_str!("../../assets/init.sh");
const MEMDIGEST_SRC: &str = include_str!("../../assets/memdigest.c");

/// Modules without which the guest cannot talk to the host.
const REQUIRED_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p"];
/// Modules CRIU probes for (kerndat) before it will dump at all.
const CRIU_MODULES: &[&str] = &[
    // libcrc32c (for nf_tables) needs the crc32c algorithm first; the guest has no modprobe.
    "crc32c_generic",
    "unix_diag",
    "inet_diag",
    "tcp_diag",
    "udp_diag",
    "raw_diag",
    "netlink_diag",
    "af_packet_diag",
    "tun",
    "veth",
    "nf_tables",
    "nft_ct",
    "nf_conntrack",
    "nft_compat",
    // CRIU dumps the conntrack table of every network namespace it dumps
    // (tcp and udp run in their own); without it netlink answers EINVAL.
    "nf_conntrack_netlink",
    // The NIC a link between two guests hot-plugs (vm/link.rs); loaded at
    // boot so a device plugged later binds at once (needs net_failover and
    // failover, which the closure adds).
    "virtio_net",
];

/// Why a guest image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The engine's environment cannot be written as the guest's env file.
    #[error(transparent)]
    Env(#[from] crate::config::engines::EnvFileError),
    #[error("building the page digest helper")]
    Memdigest(#[source] crate::config::workload::BuildError),
    #[error(transparent)]
    Modules(#[from] ModuleError),
    #[error("kernel {kernel}: required modules {missing:?} are neither in {} nor built in", dir.display())]
    MissingModules { kernel: String, missing: Vec<String>, dir: PathBuf },
    #[error("busybox-static is not installed (apt-get install busybox-static)")]
    NoBusybox,
    #[error("{} is dynamically linked; install busybox-static", .0.display())]
    DynamicBusybox(PathBuf),
    #[error("running busybox --list-full")]
    BusyboxList(#[source] std::io::Error),
    #[error(transparent)]
    File(#[from] IoAt),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A built guest image.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub initrd: PathBuf,
    pub hash: String,
    /// Notes worth showing the user (modules the kernel lacks, ...).
    pub notes: Vec<String>,
}

/// Entries keyed by path, so parents sort before children and later
/// additions never duplicate a path.
#[derive(Default)]
struct Tree(BTreeMap<String, Entry>);

impl Tree {
    fn add(&mut self, mut entry: Entry) {
        entry.path = self.through_links(&entry.path);
        let mut parent = Path::new(&entry.path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let key = p.to_string_lossy().into_owned();
            self.0.entry(key.clone()).or_insert_with(|| Entry::dir(&key));
            parent = p.parent();
        }
        self.0.insert(entry.path.clone(), entry);
    }

    /// Rewrites `bin/x` to `usr/bin/x` when `bin` is a link to `usr/bin`
    /// (merged /usr): the kernel's unpacker creates entries in archive order,
    /// and `usr/bin` sorts after `bin/...`.
    fn through_links(&self, path: &str) -> String {
        if let Some((top, rest)) = path.split_once('/') {
            if let Some(Entry { kind: Kind::Symlink(target), .. }) = self.0.get(top) {
                if !target.starts_with('/') {
                    return format!("{}/{rest}", target.trim_end_matches('/'));
                }
            }
        }
        path.to_string()
    }

    fn add_if_absent(&mut self, entry: Entry) {
        if !self.0.contains_key(&self.through_links(&entry.path)) {
            self.add(entry);
        }
    }
}

/// Builds the image for `kernel` with `engine` and `workloads`, or reuses the
/// cached one with the same content.
pub fn build(
    kernel: &Kernel,
    engine: &Engine,
    workloads: &BTreeMap<String, Vec<u8>>,
    cache: &Path,
) -> Result<GuestImage, ImageError> {
    let mut tree = Tree::default();
    let mut notes = Vec::new();
    for dir in ["proc", "sys", "dev", "tmp", "run", "root", "mnt/xfer", "var/tmp"] {
        tree.add(Entry::dir(dir));
    }
    tree.add(Entry::char_dev("dev/console", 0o600, 5, 1));
    tree.add(Entry::char_dev("dev/null", 0o666, 1, 3));
    tree.add(Entry::file("init", 0o755, INIT.as_bytes().to_vec()));
    tree.add(Entry::file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n".to_vec()));
    tree.add(Entry::file("etc/group", 0o644, b"root:x:0:\ntty:x:5:\n".to_vec()));
    tree.add(Entry::file("etc/crtest/kernel", 0o644, format!("{}\n", kernel.id).into_bytes()));
    for entry in &engine.files {
        tree.add(entry.clone());
    }
    let env = crate::config::engines::env_file(&engine.env)?;
    tree.add(Entry::file(crate::guest::layout::ENV_FILE, 0o644, env));
    add_modules(&mut tree, kernel, &mut notes)?;
    for (name, bin) in workloads {
        tree.add(Entry::file(&format!("{WORKLOAD_BIN_DIR}/{name}"), 0o755, bin.clone()));
    }
    let memdigest = crate::config::workload::compile_cached("memdigest", MEMDIGEST_SRC.as_bytes(), cache)
        .map_err(ImageError::Memdigest)?;
    tree.add(Entry::file(MEMDIGEST.trim_start_matches('/'), 0o755, memdigest));
    add_busybox(&mut tree)?;

    let entries: Vec<Entry> = tree.0.into_values().collect();
    let mut bytes = Vec::new();
    cpio::write_archive(&mut bytes, &entries)?;
    let hash = fsutil::sha256_hex(&bytes);
    let initrd = cache.join("guests").join(format!("{}-{}.cpio", kernel.id, &hash[..16]));
    if !initrd.is_file() {
        fsutil::write_atomic(&initrd, &bytes)?;
    }
    Ok(GuestImage { initrd, hash, notes })
}

fn add_modules(tree: &mut Tree, kernel: &Kernel, notes: &mut Vec<String>) -> Result<(), ImageError> {
    let Some(dir) = &kernel.modules else {
        notes.push(format!("kernel {}: no modules directory; everything must be built in", kernel.id));
        tree.add(Entry::file("etc/crtest/modules", 0o644, Vec::new()));
        return Ok(());
    };
    let wanted: Vec<&str> = REQUIRED_MODULES.iter().chain(CRIU_MODULES).copied().collect();
    let (closure, loaded) = modules::resolve(dir, &wanted)?;
    let missing: Vec<String> =
        closure.missing.iter().filter(|m| REQUIRED_MODULES.contains(&m.as_str())).cloned().collect();
    if !missing.is_empty() {
        return Err(ImageError::MissingModules { kernel: kernel.id.clone(), missing, dir: dir.clone() });
    }
    if !closure.missing.is_empty() {
        notes.push(format!("kernel {}: modules not available: {}", kernel.id, closure.missing.join(", ")));
    }
    let mut list = String::new();
    for (name, data) in loaded {
        let path = format!("lib/modules/{}/{name}.ko", kernel.release);
        list.push_str(&format!("/{path}\n"));
        tree.add(Entry::file(&path, 0o644, data));
    }
    tree.add(Entry::file("etc/crtest/modules", 0o644, list.into_bytes()));
    Ok(())
}

/// busybox-static plus a link per applet, where the engine did not put a real file.
fn add_busybox(tree: &mut Tree) -> Result<(), ImageError> {
    let busybox = which("busybox").ok_or(ImageError::NoBusybox)?;
    let data = std::fs::read(&busybox)?;
    if !is_static_elf(&data) {
        return Err(ImageError::DynamicBusybox(busybox));
    }
    tree.add(Entry::file("bin/busybox", 0o755, data));
    let out = Command::new(&busybox).arg("--list-full").output().map_err(ImageError::BusyboxList)?;
    for applet in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()) {
        tree.add_if_absent(Entry::symlink(applet, "/bin/busybox"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_from_elsewhere_keeps_its_chain() {
        let cc = std::io::Error::from_raw_os_error(2);
        let e = ImageError::Memdigest(crate::config::workload::BuildError::Cc(cc));
        assert_eq!(
            crate::util::error::chain(&e),
            "building the page digest helper: running cc (install gcc and libc6-dev): No such file or directory (os \
             error 2)"
        );
    }

    #[test]
    fn merged_usr_links_are_followed() {
        let mut t = Tree::default();
        t.add(Entry::symlink("bin", "usr/bin"));
        t.add(Entry::file("usr/bin/criu-helper", 0o755, vec![]));
        t.add_if_absent(Entry::symlink("bin/sh", "/bin/busybox"));
        t.add_if_absent(Entry::symlink("bin/criu-helper", "/bin/busybox"));
        assert!(t.0.contains_key("usr/bin/sh"));
        assert_eq!(t.0["usr/bin/criu-helper"].kind, Kind::File(vec![]));
        assert!(!t.0.contains_key("bin/sh"));
    }

    #[test]
    fn tree_adds_parents_once_and_in_order() {
        let mut t = Tree::default();
        t.add(Entry::file("usr/sbin/criu", 0o755, vec![1]));
        t.add_if_absent(Entry::symlink("usr/sbin/criu", "/bin/busybox"));
        t.add(Entry::file("usr/bin/x", 0o755, vec![]));
        let paths: Vec<&str> = t.0.keys().map(String::as_str).collect();
        assert_eq!(paths, vec!["usr", "usr/bin", "usr/bin/x", "usr/sbin", "usr/sbin/criu"]);
        assert_eq!(t.0["usr/sbin/criu"].kind, Kind::File(vec![1]));
    }
}

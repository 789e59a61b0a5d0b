//! Host programs copied into a guest: found on PATH, with the shared
//! libraries they load.

use crate::guest::cpio::{Entry, Kind};
use crate::util::error::{io_at, IoAt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a host program could not be copied with its libraries.
#[derive(Debug, thiserror::Error)]
pub enum HostProgramError {
    #[error(transparent)]
    Read(#[from] IoAt),
    #[error("running ldd")]
    Ldd(#[source] std::io::Error),
}

/// An ELF file with no PT_INTERP program header (no dynamic loader).
pub fn is_static_elf(data: &[u8]) -> bool {
    crate::guest::elf::check_static_executable(data).is_ok()
}

/// Finds `name` on PATH (plus the sbin directories root would have).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Reads a host program and the shared libraries `ldd` says it needs, as
/// image entries at the same paths.
pub fn host_program_with_libs(program: &Path) -> Result<Vec<Entry>, HostProgramError> {
    let mut entries = vec![file_entry(program, 0o755)?];
    let out = Command::new("ldd").arg(program).output().map_err(HostProgramError::Ldd)?;
    for lib in parse_ldd(&String::from_utf8_lossy(&out.stdout)) {
        entries.push(file_entry(Path::new(&lib), 0o755)?);
    }
    Ok(entries)
}

fn file_entry(path: &Path, perm: u32) -> Result<Entry, IoAt> {
    // Follow symlinks: the guest gets the content under the name asked for.
    let data = std::fs::read(path).map_err(io_at("reading", path))?;
    Ok(Entry { path: path.to_string_lossy().trim_start_matches('/').to_string(), perm, kind: Kind::File(data) })
}

/// Library paths from `ldd` output (the vdso has none).
pub fn parse_ldd(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rhs)) => rhs.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_elf_detection() {
        assert!(
            is_static_elf(&std::fs::read("/bin/busybox").unwrap_or_default()) || !Path::new("/bin/busybox").exists()
        );
        assert!(!is_static_elf(&std::fs::read("/bin/ls").unwrap()));
        assert!(!is_static_elf(b"#!/bin/sh"));
    }

    #[test]
    fn ldd_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n\t/lib64/ld-linux-x86-64.so.2 (0x2)\n";
        assert_eq!(parse_ldd(text), vec!["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]);
    }
}

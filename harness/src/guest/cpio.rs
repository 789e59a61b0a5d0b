//! A writer for the "newc" cpio format the kernel unpacks as an initramfs.
//!
//! Entries are written in the order given, with fixed owner and mtime so the
//! same content always yields the same bytes (the guest image is cached by hash).

use std::io::{self, Write};

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";

/// What an entry is; the mode's permission bits come with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// A character device node (major, minor), e.g. `dev/console`.
    CharDev(u32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, without a leading slash.
    pub path: String,
    pub perm: u32,
    pub kind: Kind,
}

impl Entry {
    pub fn dir(path: &str) -> Self {
        Entry { path: trim(path), perm: 0o755, kind: Kind::Dir }
    }
    pub fn file(path: &str, perm: u32, data: Vec<u8>) -> Self {
        Entry { path: trim(path), perm, kind: Kind::File(data) }
    }
    pub fn char_dev(path: &str, perm: u32, major: u32, minor: u32) -> Self {
        Entry { path: trim(path), perm, kind: Kind::CharDev(major, minor) }
    }
    pub fn symlink(path: &str, target: &str) -> Self {
        Entry { path: trim(path), perm: 0o777, kind: Kind::Symlink(target.to_string()) }
    }

    fn mode(&self) -> u32 {
        let kind = match self.kind {
            Kind::Dir => 0o040000,
            Kind::File(_) => 0o100000,
            Kind::Symlink(_) => 0o120000,
            Kind::CharDev(..) => 0o020000,
        };
        kind | (self.perm & 0o7777)
    }

    fn body(&self) -> &[u8] {
        match &self.kind {
            Kind::Dir | Kind::CharDev(..) => &[],
            Kind::File(data) => data,
            Kind::Symlink(target) => target.as_bytes(),
        }
    }
}

fn trim(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

/// Writes `entries` followed by the trailer. Inode numbers are assigned in order.
pub fn write_archive<W: Write>(out: &mut W, entries: &[Entry]) -> io::Result<u64> {
    let mut written = 0u64;
    for (i, entry) in entries.iter().enumerate() {
        let nlink = if entry.kind == Kind::Dir { 2 } else { 1 };
        let rdev = match entry.kind {
            Kind::CharDev(major, minor) => (major, minor),
            _ => (0, 0),
        };
        let header = Header { ino: i as u32 + 1, mode: entry.mode(), nlink, rdev };
        written += write_record(out, &entry.path, &header, entry.body(), written)?;
    }
    let trailer = Header { ino: 0, mode: 0, nlink: 1, rdev: (0, 0) };
    written += write_record(out, TRAILER, &trailer, &[], written)?;
    Ok(written)
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
}

fn write_record<W: Write>(out: &mut W, name: &str, h: &Header, body: &[u8], offset: u64) -> io::Result<u64> {
    let namesize = name.len() + 1;
    let header = format!(
        "{MAGIC}{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}{maj:08x}{min:08x}{rmaj:08x}{rmin:08x}{namesize:08x}{check:08x}",
        ino = h.ino,
        mode = h.mode,
        nlink = h.nlink,
        rmaj = h.rdev.0,
        rmin = h.rdev.1,
        uid = 0,
        gid = 0,
        mtime = 0,
        size = body.len(),
        maj = 0,
        min = 0,
        check = 0,
    );
    let mut n = offset;
    out.write_all(header.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    n += (header.len() + namesize) as u64;
    n += pad(out, n)?;
    out.write_all(body)?;
    n += body.len() as u64;
    n += pad(out, n)?;
    Ok(n - offset)
}

/// newc aligns both the name and the body to 4 bytes from the archive start.
fn pad<W: Write>(out: &mut W, at: u64) -> io::Result<u64> {
    let fill = (4 - at % 4) % 4;
    out.write_all(&[0u8; 3][..fill as usize])?;
    Ok(fill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn header_is_newc_and_aligned() {
        let mut buf = Vec::new();
        let n = write_archive(&mut buf, &[Entry::file("a", 0o644, b"xyz".to_vec())]).unwrap();
        assert_eq!(n as usize, buf.len());
        assert!(buf.starts_with(b"070701"));
        assert_eq!(buf.len() % 4, 0);
        // name "a\0" after the 110-byte header is padded to 112, then body 3 padded to 4.
        assert_eq!(&buf[110..112], b"a\0");
        assert_eq!(&buf[112..115], b"xyz");
        assert!(buf.windows(10).any(|w| w == TRAILER.as_bytes()));
    }

    #[test]
    fn same_entries_same_bytes() {
        let entries = vec![Entry::dir("bin"), Entry::symlink("bin/sh", "busybox")];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_archive(&mut a, &entries).unwrap();
        write_archive(&mut b, &entries).unwrap();
        assert_eq!(a, b);
    }

    /// GNU cpio (a separate implementation) must list and extract what we write.
    #[test]
    fn gnu_cpio_reads_it_back() {
        if Command::new("cpio").arg("--version").output().is_err() {
            eprintln!("cpio not installed; skipping the cross-check");
            return;
        }
        let entries = vec![
            Entry::dir("etc"),
            Entry::file("etc/hello", 0o600, b"hello world\n".to_vec()),
            Entry::symlink("etc/link", "hello"),
        ];
        let mut buf = Vec::new();
        write_archive(&mut buf, &entries).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("cpio")
            .args(["-idm", "--quiet"])
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&buf).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(dir.path().join("etc/hello")).unwrap(), b"hello world\n");
        assert_eq!(std::fs::read_link(dir.path().join("etc/link")).unwrap().to_str(), Some("hello"));
    }
}

//! `crtest cache`: what the cache holds (kernels, engines, guest images,
//! saved guest states, host-side tools, the rest) and deleting by age or
//! kind. Only directories crtest itself creates are touched: a cache dir
//! pointed at the wrong place (`CRTEST_CACHE=$HOME`) shows foreign entries
//! and deletes none of them. Links are never followed nor deleted through.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What a cache entry is, by the directory crtest keeps it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Kind {
    /// Extracted Debian kernels with their modules and PVH images (kernels/).
    Kernels,
    /// Engine roots: CRIU with its libraries, a guest's userspace (engines/ID).
    Engines,
    /// Guest initramfs images (guests/).
    Guests,
    /// Saved guest states that guests resume from (states/).
    States,
    /// Host-side tools: each engine's crit (engines/ID-tools) and virtme-ng (virtme/).
    Tools,
    /// Private apt state, accelerator probes and built workloads.
    Other,
}

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Kernels, Kind::Engines, Kind::Guests, Kind::States, Kind::Tools, Kind::Other];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Kernels => "kernels",
            Kind::Engines => "engines",
            Kind::Guests => "guests",
            Kind::States => "states",
            Kind::Tools => "tools",
            Kind::Other => "other",
        }
    }

    /// The kind of entry `name` in crtest's top-level directory `top`; None
    /// for a directory crtest does not create.
    fn of(top: &str, name: &str) -> Option<Kind> {
        Some(match top {
            "kernels" => Kind::Kernels,
            "engines" if name.ends_with("-tools") => Kind::Tools,
            "engines" => Kind::Engines,
            "guests" => Kind::Guests,
            "states" => Kind::States,
            "virtme" => Kind::Tools,
            "apt" | "accel-probe" | "workloads" => Kind::Other,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {}: is a symbolic link; point CRTEST_CACHE at the directory itself", .0.display())]
    Symlink(PathBuf),
    #[error("cache {}: not a directory", .0.display())]
    NotADir(PathBuf),
    #[error("cache {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("crtest cache clean: give --older-than DAYS, --kind KIND or both (nothing is deleted by default)")]
    NoCriterion,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io { path: path.to_path_buf(), source }
}

/// One deletable unit: a child of one of crtest's top-level directories.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    /// None: not crtest's (never deleted).
    pub kind: Option<Kind>,
    /// Bytes of the regular files under it (links not followed).
    pub bytes: u64,
    /// The newest modification time in it: when it was last written.
    pub modified: SystemTime,
    pub symlink: bool,
}

/// Every entry of the cache at `dir`; an absent cache is empty.
pub fn scan(dir: &Path) -> Result<Vec<Entry>, CacheError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        other => other.map_err(io(dir))?,
    };
    if meta.file_type().is_symlink() {
        return Err(CacheError::Symlink(dir.to_path_buf()));
    }
    if !meta.is_dir() {
        return Err(CacheError::NotADir(dir.to_path_buf()));
    }
    let mut entries = Vec::new();
    for top in sorted_children(dir)? {
        let top_name = file_name(&top);
        let top_meta = std::fs::symlink_metadata(&top).map_err(io(&top))?;
        if !top_meta.is_dir() || Kind::of(&top_name, "").is_none() {
            // A file, link or directory crtest does not make: shown, never deleted.
            entries.push(entry(top, None)?);
            continue;
        }
        for child in sorted_children(&top)? {
            let kind = Kind::of(&top_name, &file_name(&child));
            entries.push(entry(child, kind)?);
        }
    }
    Ok(entries)
}

fn sorted_children(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    out.sort();
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn entry(path: PathBuf, kind: Option<Kind>) -> Result<Entry, CacheError> {
    let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
    let symlink = meta.file_type().is_symlink();
    let (bytes, modified) = if symlink { (0, mtime(&meta)) } else { walk(&path, &meta) };
    Ok(Entry { path, kind, bytes, modified, symlink })
}

fn mtime(meta: &std::fs::Metadata) -> SystemTime {
    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Size and newest mtime of a tree, without following links; unreadable
/// parts count as empty (a scan must not fail on one odd file).
fn walk(path: &Path, meta: &std::fs::Metadata) -> (u64, SystemTime) {
    let mut bytes = if meta.is_file() { meta.len() } else { 0 };
    let mut newest = mtime(meta);
    if meta.is_dir() {
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else { continue };
            let (b, t) = if m.file_type().is_symlink() { (0, mtime(&m)) } else { walk(&e.path(), &m) };
            bytes += b;
            newest = newest.max(t);
        }
    }
    (bytes, newest)
}

/// Per kind: entries and bytes, every kind listed (zeros included), then
/// entries that are not crtest's.
pub fn render(dir: &Path, entries: &[Entry]) -> String {
    let mut out = format!("cache {}\n", dir.display());
    let mut total = 0;
    for kind in Kind::ALL {
        let of: Vec<&Entry> = entries.iter().filter(|e| e.kind == Some(kind)).collect();
        let bytes: u64 = of.iter().map(|e| e.bytes).sum();
        total += bytes;
        out.push_str(&format!("  {:<8} {:>5} entries {:>10}\n", kind.name(), of.len(), human(bytes)));
    }
    out.push_str(&format!("  {:<8} {:>5} entries {:>10}\n", "total", entries.len(), human(total)));
    for e in entries.iter().filter(|e| e.kind.is_none()) {
        out.push_str(&format!("  not crtest's (left alone): {}\n", e.path.display()));
    }
    out
}

/// Bytes in binary units with one decimal (`1.5 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What `crtest cache clean` deletes: entries of these kinds (any kind when
/// empty) not modified within `older_than` (any age when None).
#[derive(Debug, Clone, Default)]
pub struct Clean {
    pub older_than: Option<Duration>,
    pub kinds: Vec<Kind>,
}

impl Clean {
    fn selects(&self, e: &Entry, now: SystemTime) -> bool {
        let Some(kind) = e.kind else { return false };
        let old = self.older_than.is_none_or(|age| now.duration_since(e.modified).is_ok_and(|d| d >= age));
        !e.symlink && old && (self.kinds.is_empty() || self.kinds.contains(&kind))
    }
}

/// Deletes the entries `what` selects from the cache at `dir`; returns them.
pub fn clean(dir: &Path, what: &Clean, now: SystemTime) -> Result<Vec<Entry>, CacheError> {
    if what.older_than.is_none() && what.kinds.is_empty() {
        return Err(CacheError::NoCriterion);
    }
    let mut removed = Vec::new();
    for e in scan(dir)?.into_iter().filter(|e| what.selects(e, now)) {
        // scan() only yields children of dir's own subdirectories; check
        // anyway, as this is the one place crtest deletes by user request.
        assert!(e.path.starts_with(dir) && e.path.parent() != Some(dir), "{} is outside the cache", e.path.display());
        let meta = std::fs::symlink_metadata(&e.path).map_err(io(&e.path))?;
        // remove_dir_all does not follow links inside the tree.
        let done = if meta.is_dir() { std::fs::remove_dir_all(&e.path) } else { std::fs::remove_file(&e.path) };
        done.map_err(io(&e.path))?;
        removed.push(e);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &Path, len: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![b'x'; len]).unwrap();
    }

    /// Sets the mtime of every file under `path` (and `path`) `days` back.
    fn age(path: &Path, days: u64) {
        let when = SystemTime::now() - Duration::from_secs(days * 86400);
        let set = |p: &Path| {
            let f = std::fs::File::options().write(true).open(p).or_else(|_| std::fs::File::open(p)).unwrap();
            f.set_modified(when).unwrap();
        };
        fn all(p: &Path, out: &mut Vec<PathBuf>) {
            out.push(p.to_path_buf());
            if p.is_dir() {
                for e in std::fs::read_dir(p).unwrap() {
                    all(&e.unwrap().path(), out);
                }
            }
        }
        let mut paths = Vec::new();
        all(path, &mut paths);
        for p in paths.iter().rev() {
            set(p);
        }
    }

    fn sample() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let c = d.path();
        file(&c.join("kernels/6.1/boot/vmlinuz"), 1000);
        file(&c.join("kernels/6.12/boot/vmlinuz"), 2000);
        file(&c.join("engines/criu-4.1/usr/sbin/criu"), 300);
        file(&c.join("engines/criu-4.1-tools/usr/bin/crit"), 40);
        file(&c.join("guests/6.1-abc.cpio"), 500);
        file(&c.join("states/s1/state"), 7000);
        file(&c.join("apt/bookworm/lists"), 10);
        file(&c.join("virtme/bin/virtme-run"), 5);
        file(&c.join("notes.txt"), 3);
        file(&c.join("photos/cat.jpg"), 9);
        d
    }

    fn bytes_of(entries: &[Entry], kind: Kind) -> u64 {
        entries.iter().filter(|e| e.kind == Some(kind)).map(|e| e.bytes).sum()
    }

    #[test]
    fn scan_sorts_entries_into_kinds() {
        let d = sample();
        let entries = scan(d.path()).unwrap();
        assert_eq!(bytes_of(&entries, Kind::Kernels), 3000);
        assert_eq!(bytes_of(&entries, Kind::Engines), 300);
        assert_eq!(bytes_of(&entries, Kind::Tools), 45);
        assert_eq!(bytes_of(&entries, Kind::Guests), 500);
        assert_eq!(bytes_of(&entries, Kind::States), 7000);
        assert_eq!(bytes_of(&entries, Kind::Other), 10);
        let foreign: Vec<String> = entries.iter().filter(|e| e.kind.is_none()).map(|e| file_name(&e.path)).collect();
        assert_eq!(foreign, ["notes.txt", "photos"]);
        let text = render(d.path(), &entries);
        assert!(text.contains("  kernels      2 entries    2.9 KiB\n"), "{text}");
        assert!(text.contains("  states       1 entries    6.8 KiB\n"), "{text}");
        assert!(text.contains("not crtest's (left alone): "), "{text}");
        assert!(scan(&d.path().join("absent")).unwrap().is_empty());
    }

    #[test]
    fn clean_by_kind_and_age_keeps_the_rest() {
        let d = sample();
        let c = d.path();
        age(&c.join("kernels/6.1"), 30);
        let e = clean(c, &Clean::default(), SystemTime::now()).unwrap_err();
        assert!(matches!(e, CacheError::NoCriterion), "{e}");
        let old = Clean { older_than: Some(Duration::from_secs(7 * 86400)), kinds: vec![] };
        let removed = clean(c, &old, SystemTime::now()).unwrap();
        assert_eq!(removed.iter().map(|e| e.path.clone()).collect::<Vec<_>>(), [c.join("kernels/6.1")]);
        assert!(c.join("kernels/6.12/boot/vmlinuz").is_file());
        let states = Clean { older_than: None, kinds: vec![Kind::States, Kind::Tools] };
        let removed = clean(c, &states, SystemTime::now()).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(!c.join("states/s1").exists() && !c.join("engines/criu-4.1-tools").exists());
        assert!(!c.join("virtme/bin").exists() && c.join("virtme").is_dir());
        assert!(c.join("engines/criu-4.1/usr/sbin/criu").is_file());
        // Everything crtest's, whatever kind: foreign entries stay.
        let all = Clean { older_than: None, kinds: Kind::ALL.to_vec() };
        clean(c, &all, SystemTime::now()).unwrap();
        assert!(c.join("notes.txt").is_file() && c.join("photos/cat.jpg").is_file());
        assert_eq!(scan(c).unwrap().iter().filter(|e| e.kind.is_some()).count(), 0);
    }

    #[test]
    fn links_are_never_followed_or_cleaned() {
        let d = sample();
        let outside = tempfile::tempdir().unwrap();
        file(&outside.path().join("precious"), 100);
        std::os::unix::fs::symlink(outside.path(), d.path().join("guests/link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("kernels/6.12/outside")).unwrap();
        let entries = scan(d.path()).unwrap();
        assert_eq!(bytes_of(&entries, Kind::Guests), 500, "a link's target is not counted");
        let all = Clean { older_than: None, kinds: Kind::ALL.to_vec() };
        clean(d.path(), &all, SystemTime::now()).unwrap();
        assert!(outside.path().join("precious").is_file());
        assert!(std::fs::symlink_metadata(d.path().join("guests/link")).is_ok(), "links are left alone");
        let link = outside.path().join("cache-link");
        std::os::unix::fs::symlink(d.path(), &link).unwrap();
        assert!(matches!(scan(&link).unwrap_err(), CacheError::Symlink(_)));
    }
}

//! The memory check: a program whose pages were damaged between the dump and
//! the restore must not PASS just because it never reads them again.
//!
//! The guest helper `memdigest` (`assets/memdigest.c`), run by the same CRIU
//! action script as the fd/mapping snapshots (`post-dump` and `pre-resume`,
//! while the tree is frozen), writes one digest per 4 KiB page of the memory
//! CRIU restores from its page images into `before.mem` and `after.mem`:
//!
//! ```text
//! PID START-END PERMS OFFSET PATH<TAB>DIGEST DIGEST*N - ...
//! ```
//!
//! (`-` is a page the helper could not read, `*N` a run of N equal tokens).
//! Every page recorded at the dump must be at the same address after the
//! restore with the same digest; a difference is a FAIL naming the mapping
//! and its first differing page. Missing digests are crtest's fault: ERROR.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Why the memory check could not be made (crtest's ERROR, never a FAIL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemcheckError {
    #[error("the dump left no output directory")]
    NoDumpDir,
    /// A digest file is absent; `said` is the helper's own words for why.
    #[error("the page digests of the {when} are missing ({}: {error}); memdigest failed: {said}", path.display())]
    Missing { when: &'static str, path: PathBuf, error: String, said: String },
    /// `whose` is "the dump's" or "the restore's".
    #[error("{whose} page digests: {line}")]
    Unparsable { whose: &'static str, line: BadLine },
    #[error("the dump's page digests name no memory at all")]
    Empty,
}

/// A line of a digest file that does not parse (shown shortened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {number}: unexpected `{text}`")]
pub struct BadLine {
    pub number: usize,
    pub text: String,
}

const PAGE: u64 = 4096;

/// Mappings left out of the check, all of them the kernel's own rather than
/// memory CRIU restores from its images (like `snapshot::KERNEL_MAPPINGS`):
/// - `[vdso]`: the restoring kernel's vDSO. Same-kernel restores give it back
///   equal (measured), but across kernels (6.1 <-> 6.12, measured) the new
///   kernel's vDSO is mapped elsewhere and CRIU leaves a patched proxy of
///   the old one, unnamed and with other bytes, at the old address.
/// - `[vvar]`, `[vvar_vclock]`: the kernel's live clock data; unreadable
///   through /proc/PID/mem (`-`), and a proxy like the vDSO's across kernels.
/// - `[vsyscall]`: a fixed kernel page above the user address space (not
///   mapped in Debian's guests), never readable through /proc/PID/mem.
/// - `[uprobes]`: the kernel's uprobe trampolines (none in our guests).
///
/// Measured on real same-kernel 6.1 restores of counter, threads, bigmem,
/// pipe, namespaces, shmem_anon, sysv_ipc, forktree, memfd and filemap:
/// every page of every other mapping compares equal (the files differ only
/// where the restore merged a binary's two read-only VMAs into one, and in
/// shared anonymous memory coming back as a memfd, neither of which matters
/// to a comparison by address).
const KERNEL_MAPPINGS: &[&str] = &["[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]", "[uprobes]"];

/// A page's digest; `None` when the helper could not read the page.
type Token = Option<u64>;

/// One mapping of the helper's output.
#[derive(Debug, Clone, PartialEq)]
struct Mapping {
    pid: String,
    start: u64,
    end: u64,
    /// `START-END PERMS PATH` as the helper wrote it, for messages.
    label: String,
    /// Runs of equal tokens as (first page index, pages, token), in order.
    runs: Vec<(u64, u64, Token)>,
}

impl Mapping {
    fn pages(&self) -> u64 {
        (self.end - self.start) / PAGE
    }

    fn is_kernel(&self) -> bool {
        KERNEL_MAPPINGS.iter().any(|k| self.label.ends_with(&format!(" {k}")))
    }

    /// The run holding page `index`.
    fn run_at(&self, index: u64) -> (u64, u64, Token) {
        let i = self.runs.partition_point(|(first, ..)| *first <= index) - 1;
        self.runs[i]
    }
}

/// Parses the helper's output; errors name the line.
fn parse(text: &str) -> Result<Vec<Mapping>, BadLine> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_line(l).ok_or_else(|| BadLine { number: i + 1, text: shorten(l) }))
        .collect()
}

fn parse_line(line: &str) -> Option<Mapping> {
    // Digest tokens never hold a tab; a path could.
    let (head, digests) = line.rsplit_once('\t')?;
    let mut f = head.splitn(5, ' ');
    let (pid, range, perms, _off) = (f.next()?, f.next()?, f.next()?, f.next()?);
    let path = f.next().unwrap_or("");
    let (s, e) = range.split_once('-')?;
    let (start, end) = (u64::from_str_radix(s, 16).ok()?, u64::from_str_radix(e, 16).ok()?);
    if end <= start || (end - start) % PAGE != 0 {
        return None;
    }
    let mut runs = Vec::new();
    let mut next = 0;
    for tok in digests.split_whitespace() {
        let (digest, count) = match tok.split_once('*') {
            Some((d, n)) => (d, n.parse::<u64>().ok().filter(|n| *n > 0)?),
            None => (tok, 1),
        };
        let token = match digest {
            "-" => None,
            d => Some(u64::from_str_radix(d, 16).ok()?),
        };
        runs.push((next, count, token));
        next += count;
    }
    // A line cut short (a helper that died while writing) must not read as a shorter mapping.
    (next == (end - start) / PAGE).then(|| Mapping {
        pid: pid.to_string(),
        start,
        end,
        label: format!("{range} {perms} {path}").trim_end().to_string(),
        runs,
    })
}

fn shorten(line: &str) -> String {
    match line.char_indices().nth(80) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_string(),
    }
}

/// The restored mappings of each pid, by start address.
type Index<'a> = BTreeMap<&'a str, BTreeMap<u64, &'a Mapping>>;

fn index(maps: &[Mapping]) -> Index<'_> {
    let mut idx: Index = BTreeMap::new();
    for m in maps {
        idx.entry(m.pid.as_str()).or_default().insert(m.start, m);
    }
    idx
}

/// What became of pages `[from, from + n)` of `before`'s mapping: how many
/// of them, from the first, share one fate, and the fate.
enum Fate {
    Same,
    Differs,
    /// No digested memory at that address after the restore.
    Gone,
}

fn fate(after: &BTreeMap<u64, &Mapping>, addr: u64, want: Token, limit: u64) -> (u64, Fate) {
    let Some(m) = after.range(..=addr).next_back().map(|(_, m)| *m).filter(|m| addr < m.end) else {
        let next = after.range(addr + 1..).next().map_or(u64::MAX, |(s, _)| *s);
        return (((next - addr) / PAGE).clamp(1, limit), Fate::Gone);
    };
    let index = (addr - m.start) / PAGE;
    let (first, count, token) = m.run_at(index);
    let n = (first + count - index).min(limit);
    (n, if token == want { Fate::Same } else { Fate::Differs })
}

/// The first damage found and how much there is in all.
#[derive(Default)]
struct Damage {
    first: Option<String>,
    pages: u64,
    mappings: BTreeSet<(String, u64)>,
}

impl Damage {
    fn note(&mut self, m: &Mapping, page: u64, n: u64, fate: Fate) {
        let what = match fate {
            Fate::Same => return,
            Fate::Differs => "differs",
            Fate::Gone => "is not in the restored memory",
        };
        self.first
            .get_or_insert_with(|| format!("pid {} map {}: page {} of {} {what}", m.pid, m.label, page, m.pages()));
        self.pages += n;
        self.mappings.insert((m.pid.clone(), m.start));
    }

    fn describe(self) -> Option<String> {
        let first = self.first?;
        Some(match (self.pages, self.mappings.len()) {
            (1, _) => first,
            (p, 1) => format!("{first} ({p} pages differ)"),
            (p, n) => format!("{first} ({p} pages differ in {n} mappings)"),
        })
    }
}

/// Compares the digests taken after the restore with those taken at the
/// dump: `Ok(None)` when every page came back, `Ok(Some(why))` naming the
/// first damaged page, `Err` when a digest file does not parse.
pub fn compare(before: &str, after: &str) -> Result<Option<String>, MemcheckError> {
    let old = parse(before).map_err(|line| MemcheckError::Unparsable { whose: "the dump's", line })?;
    let new = parse(after).map_err(|line| MemcheckError::Unparsable { whose: "the restore's", line })?;
    if old.is_empty() {
        return Err(MemcheckError::Empty);
    }
    let idx = index(&new);
    let none = BTreeMap::new();
    let mut damage = Damage::default();
    for m in old.iter().filter(|m| !m.is_kernel()) {
        let after = idx.get(m.pid.as_str()).unwrap_or(&none);
        for &(first, count, token) in &m.runs {
            let mut page = first;
            while page < first + count {
                let (n, f) = fate(after, m.start + page * PAGE, token, first + count - page);
                damage.note(m, page, n, f);
                page += n;
            }
        }
    }
    Ok(damage.describe())
}

/// The page digests of both states of one C/R, as the guest left them; a
/// missing file carries the helper's own words for why.
#[derive(Debug, Clone, PartialEq)]
pub struct Digests {
    pub before: Result<String, MemcheckError>,
    pub after: Result<String, MemcheckError>,
}

impl Digests {
    /// Reads `before.mem` from the dump's share dir and `after.mem` from the
    /// restore's.
    pub fn load(dump: Option<&Path>, restore: &Path) -> Digests {
        let before = match dump {
            Some(dir) => read(dir, "before", "dump"),
            None => Err(MemcheckError::NoDumpDir),
        };
        Digests { before, after: read(restore, "after", "restore") }
    }

    /// `Ok(None)` when the memory came back intact, `Ok(Some(why))` when it
    /// did not (a FAIL), `Err` when the check could not be made (an ERROR).
    pub fn compare(&self) -> Result<Option<String>, MemcheckError> {
        match (&self.before, &self.after) {
            (Ok(b), Ok(a)) => compare(b, a),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        }
    }
}

/// `DIR/NAME.mem`, or why it is not there: what the helper wrote on stderr.
fn read(dir: &Path, name: &str, when: &'static str) -> Result<String, MemcheckError> {
    let path = dir.join(format!("{name}.mem"));
    std::fs::read_to_string(&path).map_err(|e| {
        let said = std::fs::read_to_string(dir.join(format!("{name}.mem.err"))).unwrap_or_default();
        let said = match said.trim() {
            "" => "it wrote nothing on stderr (did it run?)".to_string(),
            s => format!("it said: {}", s.lines().take(3).collect::<Vec<_>>().join("; ")),
        };
        MemcheckError::Missing { when, path: path.clone(), error: e.to_string(), said }
    })
}

/// Digest files up to this size are kept with every cell; larger ones only
/// with cells that did not pass (bigmem's are about 1.1 MiB each).
const KEPT_ALWAYS_MAX: u64 = 256 << 10;
const KEPT_MAX: u64 = 16 << 20;

/// Keeps both digest files with a cell's artifacts as `dump.mem` and
/// `restore.mem`, within the limits above.
pub fn keep(dump: Option<&Path>, restore: &Path, cell: &Path, passed: bool) {
    if let Some(d) = dump {
        keep_one(&d.join("before.mem"), &cell.join("dump.mem"), passed);
    }
    keep_one(&restore.join("after.mem"), &cell.join("restore.mem"), passed);
}

/// Copies one digest file; one too big to keep leaves a note with its size
/// instead.
fn keep_one(from: &Path, to: &Path, passed: bool) {
    let Ok(size) = from.metadata().map(|m| m.len()) else {
        return;
    };
    let limit = if passed { KEPT_ALWAYS_MAX } else { KEPT_MAX };
    if size <= limit {
        let _ = std::fs::copy(from, to);
    } else {
        let note = format!("page digests not kept: {} KiB (limit {} KiB)\n", size >> 10, limit >> 10);
        let _ = std::fs::write(to.with_extension("mem.txt"), note);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "1 00400000-00403000 r-xp 00000000 /opt/crtest/bin/counter\taa bb cc\n\
1 01000000-01100000 rw-p 00000000 [heap]\t0000000000000001*200 - 0000000000000002*55\n\
1 7ffd1000-7ffd3000 r-xp 00000000 [vdso]\t11 22\n\
1 7ffd3000-7ffd5000 r--p 00000000 [vvar]\t-*2\n\
2 10000000-10002000 rw-s 00000000 /dev/zero (deleted)\t33*2\n";

    #[test]
    fn identical_memory_compares_equal() {
        assert_eq!(compare(BEFORE, BEFORE), Ok(None));
    }

    #[test]
    fn kernel_mappings_may_change_and_move() {
        let after = BEFORE
            .replace("7ffd1000-7ffd3000 r-xp 00000000 [vdso]\t11 22", "7ff00000-7ff02000 r-xp 00000000 [vdso]\t44 55");
        assert_eq!(compare(BEFORE, &after), Ok(None));
    }

    #[test]
    fn the_first_damaged_page_is_named_with_the_total() {
        let after = BEFORE.replace("0000000000000001*200 -", "0000000000000001*3 09 0000000000000001*196 -");
        assert_eq!(
            compare(BEFORE, &after).unwrap().unwrap(),
            "pid 1 map 01000000-01100000 rw-p [heap]: page 3 of 256 differs"
        );
        let all = BEFORE.replace("aa bb cc", "ab bc cd").replace("33*2", "34*2");
        assert_eq!(
            compare(BEFORE, &all).unwrap().unwrap(),
            "pid 1 map 00400000-00403000 r-xp /opt/crtest/bin/counter: page 0 of 3 differs (5 pages differ in 2 mappings)"
        );
    }

    #[test]
    fn unreadable_pages_compare_as_such() {
        let after = BEFORE.replace("0000000000000001*200 -", "0000000000000001*200 0000000000000000");
        assert!(compare(BEFORE, &after).unwrap().unwrap().contains("page 200 of 256 differs"));
    }

    #[test]
    fn moved_or_lost_memory_is_reported_not_ignored() {
        let moved = BEFORE.replace("2 10000000-10002000", "2 20000000-20002000");
        assert_eq!(
            compare(BEFORE, &moved).unwrap().unwrap(),
            "pid 2 map 10000000-10002000 rw-s /dev/zero (deleted): page 0 of 2 is not in the restored memory (2 pages differ)"
        );
        let shrunk = BEFORE.replace(
            "01000000-01100000 rw-p 00000000 [heap]\t0000000000000001*200 - 0000000000000002*55",
            "01000000-010ff000 rw-p 00000000 [heap]\t0000000000000001*200 - 0000000000000002*54",
        );
        assert!(compare(BEFORE, &shrunk).unwrap().unwrap().contains("page 255 of 256 is not in the restored memory"));
    }

    #[test]
    fn mappings_split_or_merged_by_the_restore_compare_equal() {
        let split = BEFORE.replace(
            "1 01000000-01100000 rw-p 00000000 [heap]\t0000000000000001*200 - 0000000000000002*55",
            "1 01000000-01010000 rw-p 00000000 [heap]\t0000000000000001*16\n1 01010000-01100000 rw-p 00000000 [heap]\t0000000000000001*184 - 0000000000000002*55",
        );
        assert_eq!(compare(BEFORE, &split), Ok(None));
        assert_eq!(compare(&split, BEFORE), Ok(None));
    }

    #[test]
    fn bad_or_truncated_digests_are_errors() {
        let cut = BEFORE.replace("0000000000000002*55", "0000000000000002*5");
        assert!(compare(BEFORE, &cut)
            .unwrap_err()
            .to_string()
            .starts_with("the restore's page digests: line 2: unexpected"));
        assert!(compare("1 zz-yy rw-p 0 \t1\n", BEFORE).is_err());
        assert!(compare("", BEFORE).unwrap_err().to_string().contains("no memory"));
    }

    #[test]
    fn a_missing_file_names_what_the_helper_said() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("after.mem.err"), "memdigest: pid 7: cannot open its maps or mem: EPERM\n")
            .unwrap();
        std::fs::write(dir.path().join("before.mem"), BEFORE).unwrap();
        let d = Digests::load(Some(dir.path()), dir.path());
        let e = d.compare().unwrap_err().to_string();
        assert!(e.starts_with("the page digests of the restore are missing"), "{e}");
        assert!(e.ends_with("memdigest failed: it said: memdigest: pid 7: cannot open its maps or mem: EPERM"), "{e}");
        std::fs::write(dir.path().join("after.mem"), BEFORE).unwrap();
        assert_eq!(Digests::load(Some(dir.path()), dir.path()).compare(), Ok(None));
        assert!(Digests::load(None, dir.path()).compare().is_err());
    }

    #[test]
    fn big_files_are_kept_only_for_cells_that_did_not_pass() {
        let dir = tempfile::tempdir().unwrap();
        let (d, cell) = (dir.path(), dir.path().join("cell"));
        std::fs::create_dir(&cell).unwrap();
        std::fs::write(d.join("before.mem"), vec![b'0'; (KEPT_ALWAYS_MAX + 1) as usize]).unwrap();
        std::fs::write(d.join("after.mem"), "small").unwrap();
        keep(Some(d), d, &cell, true);
        assert!(!cell.join("dump.mem").exists());
        assert!(std::fs::read_to_string(cell.join("dump.mem.txt")).unwrap().contains("not kept"));
        assert_eq!(std::fs::read_to_string(cell.join("restore.mem")).unwrap(), "small");
        keep(Some(d), d, &cell, false);
        assert!(cell.join("dump.mem").is_file());
        // Nothing to keep is no fault.
        keep(None, &d.join("absent"), &cell, false);
    }
}

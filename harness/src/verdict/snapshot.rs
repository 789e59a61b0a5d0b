//! Process-state snapshots taken by CRIU action scripts just after the dump
//! (`post-dump`) and just before the restored tree resumes (`pre-resume`),
//! while the tree is frozen: every open fd and memory mapping of every process. Like zdtm,
//! crtest compares the two; a difference is a FAIL naming the fd or mapping.

use std::collections::BTreeSet;

/// Mappings the kernel provides per boot; they legitimately move or change
/// size between kernels.
const KERNEL_MAPPINGS: &[&str] = &["[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]", "[uprobes]"];

/// Parses snapshot lines (`PID fd N TARGET` / `PID map RANGE PERMS OFF PATH`)
/// into a normalised set. Adjacent mappings that differ only in where the
/// kernel split them are merged first (a restore may merge VMAs the original
/// process had split, e.g. a file's read-only and RELRO parts).
pub fn parse(text: &str) -> BTreeSet<String> {
    merge_maps(text.lines().collect()).iter().filter_map(|l| normalise(l)).collect()
}

/// A mapping line's parts: (pid, start, end, perms, offset, path).
fn map_parts(line: &str) -> Option<(&str, u64, u64, &str, u64, &str)> {
    let mut p = line.splitn(6, ' ');
    let (pid, kind, range, perms, off) = (p.next()?, p.next()?, p.next()?, p.next()?, p.next()?);
    if kind != "map" {
        return None;
    }
    let (s, e) = range.split_once('-')?;
    let hex = |t: &str| u64::from_str_radix(t, 16).ok();
    Some((pid, hex(s)?, hex(e)?, perms, hex(off)?, p.next().unwrap_or("").trim()))
}

fn merge_maps(lines: Vec<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        let merged = out.last().and_then(|prev| {
            let (pp, ps, pe, pperm, poff, ppath) = map_parts(prev)?;
            let (p, s, e, perm, off, path) = map_parts(line)?;
            let contiguous_file = path.is_empty() || off == poff + (pe - ps);
            (pp == p && pe == s && pperm == perm && ppath == path && contiguous_file)
                .then(|| format!("{p} map {ps:08x}-{e:08x} {perm} {poff:08x} {path}"))
        });
        match merged {
            Some(m) => *out.last_mut().unwrap() = m,
            None => out.push(line.to_string()),
        }
    }
    out
}

fn normalise(line: &str) -> Option<String> {
    let mut parts = line.splitn(3, ' ');
    let (pid, kind, rest) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
    match kind {
        "fd" => {
            let (fd, target) = rest.split_once(' ').unwrap_or((rest, ""));
            Some(format!("pid {pid} fd {fd} -> {}", strip_inode(target)))
        }
        "map" => {
            let path = rest.splitn(4, ' ').nth(3).unwrap_or("").trim();
            if KERNEL_MAPPINGS.contains(&path) {
                return None;
            }
            let mut fields = rest.trim().splitn(4, ' ');
            let (range, perms, off) = (fields.next()?, fields.next()?, fields.next()?);
            Some(format!("pid {pid} map {range} {perms} {off} {}", shared_anon_path(path)))
        }
        _ => None,
    }
}

/// CRIU restores shared anonymous memory through a memfd, so such a mapping
/// comes back named `/memfd:/dev/zero (deleted)`; it is the same memory.
fn shared_anon_path(path: &str) -> &str {
    path.strip_prefix("/memfd:").filter(|p| p.starts_with("/dev/zero")).unwrap_or(path)
}

/// `pipe:[1234]` -> `pipe`: inode numbers of pipes and sockets are new after a restore.
fn strip_inode(target: &str) -> String {
    for kind in ["pipe:[", "socket:[", "anon_inode:["] {
        if let Some(rest) = target.strip_prefix(kind) {
            // Keep anon_inode names ([eventfd], [eventpoll]...), drop numeric inodes.
            if rest.trim_end_matches(']').chars().all(|c| c.is_ascii_digit()) {
                return kind.trim_end_matches(":[").to_string();
            }
        }
    }
    target.to_string()
}

/// Where the kernel's own mappings were at dump time, per pid, adjacent
/// ones joined (newer kernels split vvar into `[vvar]` and `[vvar_vclock]`).
/// Across kernels CRIU keeps the old vDSO/vvar as a proxy at those addresses
/// (now unnamed, possibly as one mapping) and maps the new kernel's
/// elsewhere, so both are left out.
fn kernel_ranges(text: &str) -> Vec<(String, u64, u64)> {
    let mut ranges: Vec<(String, u64, u64)> = text
        .lines()
        .filter_map(map_parts)
        .filter(|(_, _, _, _, _, path)| KERNEL_MAPPINGS.contains(path))
        .map(|(pid, s, e, ..)| (pid.to_string(), s, e))
        .collect();
    ranges.sort();
    let mut joined: Vec<(String, u64, u64)> = Vec::new();
    for (pid, s, e) in ranges {
        match joined.last_mut() {
            Some((p, _, end)) if *p == pid && *end == s => *end = e,
            _ => joined.push((pid, s, e)),
        }
    }
    joined
}

/// Describes how the state after restore differs from the state at dump.
pub fn compare(before: &str, after: &str) -> Option<String> {
    let old = kernel_ranges(before);
    let in_old_vdso = |line: &&str| {
        map_parts(line).is_some_and(|(pid, s, e, ..)| old.iter().any(|(p, os, oe)| p == pid && *os <= s && e <= *oe))
    };
    let after: String = after.lines().filter(|l| !in_old_vdso(l)).map(|l| format!("{l}\n")).collect();
    let (mut b, mut a) = (parse(before), parse(&after));
    // A process whose fd table could not be listed (the hook's glob found
    // nothing to read) says nothing about its fds either way: leave them out.
    let unreadable: BTreeSet<String> = b
        .iter()
        .chain(a.iter())
        .filter_map(|l| l.strip_suffix(" fd * -> ").and_then(|p| p.strip_prefix("pid ")).map(str::to_string))
        .collect();
    let fds_of = |l: &String| unreadable.iter().any(|p| l.starts_with(&format!("pid {p} fd ")));
    b.retain(|l| !fds_of(l));
    a.retain(|l| !fds_of(l));
    if b.is_empty() {
        return Some("no processes were recorded at dump time".into());
    }
    let lost: Vec<&String> = b.difference(&a).collect();
    let gained: Vec<&String> = a.difference(&b).collect();
    let show = |v: &[&String]| v.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join("; ");
    match (lost.is_empty(), gained.is_empty()) {
        (true, true) => None,
        (false, true) => Some(format!("{} missing after restore: {}", lost.len(), show(&lost))),
        (true, false) => Some(format!("{} extra after restore: {}", gained.len(), show(&gained))),
        (false, false) => Some(format!("missing after restore: {}; instead: {}", show(&lost), show(&gained))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "200000 fd 0 /dev/null\n200000 fd 3 pipe:[4711]\n200000 fd 4 anon_inode:[eventfd]\n200000 map 00400000-004c5000 r-xp 00000000 /opt/crtest/bin/counter\n200000 map 7ffd1000-7ffd3000 r--p 00000000 [vvar]\n";

    #[test]
    fn same_state_with_new_inodes_and_vdso_is_equal() {
        let after = "200000 fd 0 /dev/null\n200000 fd 3 pipe:[99]\n200000 fd 4 anon_inode:[eventfd]\n200000 map 00400000-004c5000 r-xp 00000000 /opt/crtest/bin/counter\n200000 map 7ffe0000-7ffe4000 r--p 00000000 [vvar]\n";
        assert_eq!(compare(BEFORE, after), None);
    }

    #[test]
    fn split_mappings_compare_equal_to_merged_ones() {
        let split = "1 map 0047c000-004a4000 r--p 0007c000 /bin/p\n1 map 004a4000-004a8000 r--p 000a4000 /bin/p\n";
        let merged = "1 map 0047c000-004a8000 r--p 0007c000 /bin/p\n";
        assert_eq!(compare(split, merged), None);
        // Not contiguous in the file: stays two mappings.
        let gap = "1 map 0047c000-004a4000 r--p 0007c000 /bin/p\n1 map 004a4000-004a8000 r--p 000b0000 /bin/p\n";
        assert!(compare(gap, merged).is_some());
    }

    #[test]
    fn vdso_proxy_left_at_old_addresses_is_not_a_difference() {
        let before = "1 map 7ffd1000-7ffd5000 r--p 00000000 [vvar]\n1 map 7ffd5000-7ffd7000 r-xp 00000000 [vdso]\n1 fd 0 /dev/null\n";
        let after = "1 map 7ffd1000-7ffd5000 r--p 00000000 \n1 map 7ffd5000-7ffd7000 r-xp 00000000 \n1 map 7fe00000-7fe04000 r--p 00000000 [vvar]\n1 fd 0 /dev/null\n";
        assert_eq!(compare(before, after), None);
        // The proxy may cover a split vvar ([vvar] + [vvar_vclock]) as one mapping.
        let split = "1 map 7ffd1000-7ffd5000 r--p 00000000 [vvar]\n1 map 7ffd5000-7ffd7000 r--p 00000000 [vvar_vclock]\n1 fd 0 /dev/null\n";
        let joined =
            "1 map 7ffd1000-7ffd7000 r--p 00000000 \n1 map 7fe00000-7fe04000 r--p 00000000 [vvar]\n1 fd 0 /dev/null\n";
        assert_eq!(compare(split, joined), None);
        // An unnamed mapping elsewhere is still a difference.
        let stray = format!("{after}1 map 10000000-10001000 r--p 00000000 \n");
        assert!(compare(before, &stray).unwrap().contains("10000000-10001000"));
    }

    #[test]
    fn shared_anonymous_memory_restored_through_memfd_is_equal() {
        let before = "1 map 7f00-7f10 rw-s 00000000 /dev/zero (deleted)\n";
        let after = "1 map 7f00-7f10 rw-s 00000000 /memfd:/dev/zero (deleted)\n";
        assert_eq!(compare(before, after), None);
        assert!(compare(before, "1 map 7f00-7f10 rw-s 00000000 /memfd:other (deleted)\n").is_some());
    }

    #[test]
    fn unreadable_fd_tables_are_not_compared() {
        let before = "7 fd 0 /ns.stdio\n7 map 1000-2000 r--p 00000000 /bin/x\n";
        assert_eq!(compare(before, "7 fd * \n7 map 1000-2000 r--p 00000000 /bin/x\n"), None);
        assert!(compare(before, "7 fd * \n").unwrap().contains("map 1000-2000"));
    }

    #[test]
    fn a_lost_fd_is_named() {
        let after = "200000 fd 0 /dev/null\n200000 fd 4 anon_inode:[eventfd]\n200000 map 00400000-004c5000 r-xp 00000000 /opt/crtest/bin/counter\n";
        assert_eq!(compare(BEFORE, after).unwrap(), "1 missing after restore: pid 200000 fd 3 -> pipe");
    }

    #[test]
    fn a_moved_mapping_is_named() {
        let after = BEFORE.replace("00400000-004c5000", "00401000-004c6000");
        let d = compare(BEFORE, &after).unwrap();
        assert!(
            d.contains("missing after restore: pid 200000 map 00400000-004c5000")
                && d.contains("instead: pid 200000 map 00401000"),
            "{d}"
        );
        assert!(compare("", "x").is_some());
    }
}

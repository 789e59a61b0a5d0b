//! `crtest run --partition K/N`: split a matrix across N machines, like
//! cargo-nextest's `hash:K/N`.
//!
//! Membership hashes the cell id alone, so reordering or growing the matrix
//! never moves an existing cell to another shard, and every cell lands in
//! exactly one of the N partitions.

use super::seed::fnv1a;
use std::fmt;
use std::str::FromStr;

/// Shard K of N (K is 1-based, as typed on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid partition {input:?}: {why}; expected K/N or hash:K/N with 1 <= K <= N (e.g. 2/3)")]
pub struct ParsePartitionError {
    input: String,
    why: String,
}

impl Partition {
    /// Whether this shard runs the cell with id `cell_id`.
    pub fn contains(&self, cell_id: &str) -> bool {
        fnv1a(cell_id.as_bytes()) % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl FromStr for Partition {
    type Err = ParsePartitionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| ParsePartitionError { input: s.to_string(), why: why.to_string() };
        let spec = s.strip_prefix("hash:").unwrap_or(s);
        let (k, n) = spec.split_once('/').ok_or_else(|| err("missing '/'"))?;
        let index: u32 = k.trim().parse().map_err(|_| err("K is not a positive integer"))?;
        let count: u32 = n.trim().parse().map_err(|_| err("N is not a positive integer"))?;
        if count == 0 {
            return Err(err("N must be at least 1"));
        }
        if index == 0 || index > count {
            return Err(err("K must be between 1 and N"));
        }
        Ok(Partition { index, count })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKLOADS: [&str; 27] = [
        "bigmem",
        "counter",
        "epoll",
        "eventfd",
        "filemap",
        "flock",
        "forktree",
        "inotify",
        "memfd",
        "namespaces",
        "pipe",
        "posix_mqueue",
        "process_attrs",
        "pty",
        "record_locks",
        "shmem_anon",
        "signalfd",
        "signals",
        "sysv_ipc",
        "tcp",
        "threads",
        "timerfd",
        "timers",
        "udp",
        "unix_dgram",
        "unix_seqpacket",
        "unix_stream",
    ];
    const KERNELS: [&str; 3] = ["5.10", "6.1", "6.12"];

    /// 27 workloads x 3x3 kernel pairs = 243 ids.
    fn ids() -> Vec<String> {
        let mut ids = Vec::new();
        for w in WORKLOADS {
            for src in KERNELS {
                for dst in KERNELS {
                    ids.push(format!("{w}/{src}->{dst}"));
                }
            }
        }
        ids
    }

    fn all(n: u32) -> Vec<Partition> {
        (1..=n).map(|index| Partition { index, count: n }).collect()
    }

    #[test]
    fn parses_good_inputs() {
        assert_eq!("2/3".parse(), Ok(Partition { index: 2, count: 3 }));
        assert_eq!("hash:1/1".parse(), Ok(Partition { index: 1, count: 1 }));
        assert_eq!("hash:4/4".parse(), Ok(Partition { index: 4, count: 4 }));
    }

    #[test]
    fn rejects_bad_inputs() {
        for bad in ["", "3", "0/3", "4/3", "1/0", "a/3", "1/b", "-1/3", "1/3/5", "count:1/2", "1/ "] {
            let e = bad.parse::<Partition>().expect_err(bad).to_string();
            assert!(e.contains("expected K/N or hash:K/N"), "{bad}: {e}");
        }
        let e = "4/3".parse::<Partition>().expect_err("K > N").to_string();
        assert!(e.contains("K must be between 1 and N"), "{e}");
    }

    #[test]
    fn display_round_trips() {
        let p = Partition { index: 2, count: 5 };
        assert_eq!(p.to_string(), "2/5");
        assert_eq!(p.to_string().parse(), Ok(p));
    }

    #[test]
    fn every_cell_in_exactly_one_partition() {
        for n in 1..=5 {
            for id in ids() {
                let hits = all(n).iter().filter(|p| p.contains(&id)).count();
                assert_eq!(hits, 1, "{id} with N={n}");
            }
        }
    }

    #[test]
    fn partitions_are_balanced() {
        let ids = ids();
        assert_eq!(ids.len(), 243);
        for p in all(3) {
            let size = ids.iter().filter(|id| p.contains(id)).count();
            assert!((50..=110).contains(&size), "partition {p} has {size} cells");
        }
    }

    #[test]
    fn membership_is_stable() {
        // Pinned so a change of hash (which would reshuffle CI shards) is caught.
        let p = |s: &str| all(5).into_iter().find(|p| p.contains(s)).map(|p| p.index);
        assert_eq!(p("counter/6.1->6.12"), Some(1));
        assert_eq!(p("pipe/5.10->6.1"), Some(3));
    }
}

//! Guest kinds and the names built from them. A kind is a kernel running its
//! own engine (`6.12`), or another engine the matrix pairs it with
//! (`6.12@criu-4.2`). The name is what cell ids, results and reports carry;
//! the typed [`GuestKind`] is what the plan and the run work with.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestKind {
    pub kernel: String,
    /// None: the kernel's own engine (`kernel_engines`, else `engine`).
    pub engine: Option<String>,
}

impl GuestKind {
    pub fn new(kernel: &str, engine: Option<&str>) -> Self {
        GuestKind { kernel: kernel.to_string(), engine: engine.map(str::to_string) }
    }

    /// Parses a kind's name; every name parses (a kernel id has no `@`).
    pub fn parse(name: &str) -> Self {
        match name.split_once('@') {
            Some((k, e)) => GuestKind::new(k, Some(e)),
            None => GuestKind::new(name, None),
        }
    }

    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for GuestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.engine {
            None => f.write_str(&self.kernel),
            Some(e) => write!(f, "{}@{e}", self.kernel),
        }
    }
}

/// A kind's name from its parts.
pub fn kind(kernel: &str, engine: Option<&str>) -> String {
    GuestKind::new(kernel, engine).name()
}

/// The kernel of a kind's name.
pub fn kernel_of(kind: &str) -> &str {
    kind.split_once('@').map_or(kind, |(k, _)| k)
}

/// The engine a kind's name carries, when it names one.
pub fn engine_in(kind: &str) -> Option<&str> {
    kind.split_once('@').map(|(_, e)| e)
}

/// A workload in a mode, as cell ids, grids and dumps name it: the workload
/// alone in `dump` mode (ids of plain dumps never change), else
/// `WORKLOAD+MODE` (`counter+predump`).
pub fn label(workload: &str, mode: crate::config::mode::Mode) -> String {
    match mode.is_dump() {
        true => workload.to_string(),
        false => format!("{workload}+{mode}"),
    }
}

/// `LABEL/SRC->DST`, where LABEL is the workload and its mode (see [`label`]).
pub fn cell_id(workload: &str, src: &str, dst: &str) -> String {
    format!("{workload}/{src}->{dst}")
}

/// What a partition hashes: a dump, so one shard does a (workload, source
/// kind)'s dump, every restore of it and its control.
pub fn dump_key(workload: &str, src_kind: &str) -> String {
    format!("{workload}/{src_kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in ["6.12", "6.12@criu-4.2", "7.3@local-3f2a"] {
            assert_eq!(GuestKind::parse(name).name(), name);
        }
        let k = GuestKind::parse("6.12@criu-4.2");
        assert_eq!((k.kernel.as_str(), k.engine.as_deref()), ("6.12", Some("criu-4.2")));
        assert_eq!(kernel_of("6.12@criu-4.2"), "6.12");
        assert!(GuestKind::parse("6.1") < GuestKind::parse("6.1@criu-4.1"));
    }
}

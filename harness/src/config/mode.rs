//! C/R modes: how a cell's memory travels from the dumping guest to the
//! restoring one.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Stop, dump everything, copy, restore.
    #[default]
    Dump,
    /// Pre-dump rounds while the workload runs (memory tracking), then a
    /// final dump of what changed since; restored from the chain of dirs.
    Predump,
    /// The target guest runs `criu page-server`; the dump sends its pages
    /// there over a link between the guests.
    PageServer,
    /// The target restores with `--lazy-pages`, fetching pages on demand
    /// from the source's page server.
    Lazy,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Dump, Mode::Predump, Mode::PageServer, Mode::Lazy];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Dump => "dump",
            Mode::Predump => "predump",
            Mode::PageServer => "page-server",
            Mode::Lazy => "lazy",
        }
    }

    pub fn parse(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn is_dump(&self) -> bool {
        *self == Mode::Dump
    }

    /// Engine features the mode needs on both kernels (`criu check
    /// --feature`): memory tracking for pre-dumps, userfaultfd for lazy
    /// restores.
    pub fn features(self) -> &'static [&'static str] {
        match self {
            Mode::Dump | Mode::PageServer => &[],
            Mode::Predump => &["mem_dirty_track"],
            Mode::Lazy => &["uffd-noncoop"],
        }
    }

    /// Whether pages travel over a link between the two guests while both
    /// run (page server, lazy pages), so the dump happens in the linked
    /// phase with the target guest up.
    pub fn is_linked(self) -> bool {
        matches!(self, Mode::PageServer | Mode::Lazy)
    }

    /// Every mode's name, for messages.
    pub fn names() -> String {
        Mode::ALL.map(Mode::name).join(", ")
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.name()), Some(m));
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{}\"", m.name()));
        }
        assert_eq!(Mode::parse("pre-dump"), None);
        assert!(Mode::default().is_dump());
    }
}

//! `crtest cache`: what the cache holds, and cleaning it by age or kind.

use crate::cli::CacheCommand;
use crate::tools::cache;
use anyhow::Result;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Shows or cleans the cache at `dir`.
pub fn cache(dir: &Path, command: CacheCommand, out: &mut dyn Write) -> Result<i32> {
    match command {
        CacheCommand::Show => writeln!(out, "{}", cache::render(dir, &cache::scan(dir)?).trim_end())?,
        CacheCommand::Clean { older_than, kinds } => {
            let older_than = older_than.map(|d| Duration::from_secs(d.saturating_mul(86400)));
            let removed = cache::clean(dir, &cache::Clean { older_than, kinds }, SystemTime::now())?;
            for e in &removed {
                writeln!(out, "removed {} ({})", e.path.display(), cache::human(e.bytes))?;
            }
            let freed: u64 = removed.iter().map(|e| e.bytes).sum();
            writeln!(out, "removed {} entries, {} freed", removed.len(), cache::human(freed))?;
        }
    }
    Ok(0)
}

//! C/R modes at run time: how a cell's dump is taken and how its pages reach
//! its restore. Each mode's file holds all that it does differently from a
//! plain dump (`predump.rs`, `page_server.rs`, `lazy.rs`); the cell's states
//! (`cell.rs`) ask the cell's [`Pages`] wherever a mode may differ, and know
//! no mode by name. A mode's name, engine features and whether it is linked
//! are data in `config/mode.rs`; its guest operations are in
//! `engine/scripts/modes.rs`.

mod lazy;
mod page_server;
mod predump;

use super::Ctx;
use crate::config::mode::Mode;
use crate::config::workload::Workload;
use crate::engine::{GuestOp, OpPaths};
use crate::plan::Cell;
use crate::verdict::Outcome;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};

/// Why a mode could not put a cell's images together (crtest's ERROR).
#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    #[error("joining the page server's pages")]
    Join(#[source] std::io::Error),
    #[error("linking pre-dump dirs")]
    LinkParents(#[source] std::io::Error),
}

/// Where a cell's pages are, and what that changes in its states. Every
/// method has the plain dump's behaviour as its default.
pub trait Pages: Send + Sync {
    /// The dir holding the image dirs to convert: the dump's share dir, or
    /// one put together under `scratch` from what travelled apart.
    fn images(&self, dump: &Path, _scratch: &Path) -> Result<PathBuf, PagesError> {
        Ok(dump.to_path_buf())
    }

    /// The image dirs under [`Pages::images`], parents first: each goes
    /// through the conversion chain on its own.
    fn image_dirs(&self, _images: &Path) -> Vec<String> {
        vec!["img".to_string()]
    }

    /// Relinks the converted image dirs under `root` as the engine expects.
    fn relink(&self, _root: &Path, _dirs: &[String]) -> Result<(), PagesError> {
        Ok(())
    }

    /// The restore of dump `dump` (root task `pid`) as op `op`.
    fn restore(&self, op: &OpPaths, dump: &OpPaths, w: &Workload, pid: u32, cell: &str) -> GuestOp {
        GuestOp::restore(op, dump, w, pid, cell)
    }

    /// A restored program's failure `why`, with what the mode knows of its
    /// cause (`restored`: the restore's share dir).
    fn explain_failure(&self, _restored: &Path, why: &str) -> String {
        why.to_string()
    }

    /// What is left to check once the restored program finished: `Some`
    /// outcome of the source side's own end, as a second dump stage.
    fn after_finish(&self, _ctx: &Ctx) -> Option<Outcome> {
        None
    }

    /// Keeps the mode's own logs in the cell's artifacts dir `dir`.
    fn keep(&self, _dir: &Path) {}
}

/// A plain dump's pages: in the image dir, restored from there.
pub struct WithImages;

impl Pages for WithImages {}

/// The pages of a cell dumped in the source phase (every mode not linked).
pub fn of_source_phase(mode: Mode) -> Box<dyn Pages> {
    match mode {
        Mode::Predump => Box::new(predump::Chain),
        _ => Box::new(WithImages),
    }
}

/// The source phase's dump of `w` after step `after` in `mode`.
pub fn source_dump(mode: Mode, op: &OpPaths, w: &Workload, after: u32, timeout: u32) -> GuestOp {
    match mode {
        Mode::Predump => predump::dump(op, w, after, timeout),
        _ => GuestOp::dump(op, w, after, timeout),
    }
}

/// A linked cell's dump on `src` (already started as op `op`) after step
/// `after`, its pages going to `target` as its mode says, and where they
/// then are.
pub fn linked_dump(
    ctx: &Ctx,
    cell: &Cell,
    (src, target): (&str, &str),
    op: &OpPaths,
    after: u32,
) -> (Outcome, Box<dyn Pages>) {
    let port = next_port();
    match cell.mode {
        Mode::PageServer => page_server::dump(ctx, cell, (src, target), op, after, port),
        Mode::Lazy => lazy::dump(ctx, cell, src, op, after, port),
        m => (Outcome::Broken(format!("mode {m} does not dump in the linked phase")), Box::new(WithImages)),
    }
}

/// A port for one cell's page server (on the link only).
fn next_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(27000);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

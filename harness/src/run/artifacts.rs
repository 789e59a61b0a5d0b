//! What a cell leaves for the report: transcripts, engine logs, states and
//! page digests of every cell, and the images of cells that did not pass.

use super::{Ctx, OpRecord};
use crate::plan::Cell;
use crate::verdict::Status;
use std::path::{Path, PathBuf};

/// The largest dump image set kept with a cell that did not pass.
const IMAGES_KEPT_MAX: u64 = 32 << 20;

/// Keeps transcripts and engine logs of every cell, and the images of
/// cells that did not pass.
pub fn save(
    ctx: &Ctx,
    cell: &Cell,
    status: Status,
    reference: &OpRecord,
    dump: &OpRecord,
    restored: &Path,
) -> Option<String> {
    if (ctx.setup.interrupted)() {
        return None;
    }
    let rel = format!("cells/{}/{}--{}", cell.label(), cell.src_kind(), cell.dst_kind());
    let dir = ctx.artifacts.join(&rel);
    std::fs::create_dir_all(&dir).ok()?;
    let copy = |from: Option<PathBuf>, name: &str| {
        if let Some(f) = from.filter(|f| f.is_file()) {
            let _ = std::fs::copy(f, dir.join(name));
        }
    };
    copy(reference.out.as_ref().map(|d| d.join("transcript")), "reference.transcript");
    copy(dump.out.as_ref().map(|d| d.join("dump.log")), "dump.log");
    // A predump cell's rounds: pre-dump1.log, pre-dump2.log...
    for round in 1.. {
        let name = format!("pre-dump{round}.log");
        match dump.out.as_ref().map(|d| d.join(&name)).filter(|f| f.is_file()) {
            Some(f) => copy(Some(f), &name),
            None => break,
        }
    }
    copy(Some(restored.join("restore.log")), "restore.log");
    copy(Some(restored.join("lazy-pages.log")), "lazy-pages.log");
    copy(Some(restored.join("transcript")), "restored.transcript");
    copy(Some(restored.join("stdout")), "restored.stdout");
    copy(Some(restored.join("dmesg")), "restore.dmesg");
    copy(dump.out.as_ref().map(|d| d.join("dmesg")), "dump.dmesg");
    copy(dump.out.as_ref().map(|d| d.join("before.snap")), "dump.state");
    copy(Some(restored.join("after.snap")), "restore.state");
    crate::verdict::memcheck::keep(dump.out.as_deref(), restored, &dir, status == Status::Pass);
    if status != Status::Pass {
        if let Some(img) = dump.out.as_ref().map(|d| d.join("img")).filter(|d| d.is_dir()) {
            // Big memory images would swamp the results; say where they were instead.
            let size = crate::util::fsutil::dir_size(&img);
            if size <= IMAGES_KEPT_MAX {
                let _ = crate::util::fsutil::copy_dir(&img, &dir.join("images"));
            } else {
                let note = format!("images not kept: {} MiB (limit {} MiB)\n", size >> 20, IMAGES_KEPT_MAX >> 20);
                let _ = std::fs::write(dir.join("images.txt"), note);
            }
        }
    }
    Some(rel)
}

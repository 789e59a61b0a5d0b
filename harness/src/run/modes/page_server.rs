//! Mode `page-server`: the target guest runs `criu page-server` on the link,
//! the source dumps its pages straight to it, and what it received joins
//! the dump's other images on the host before the conversion.

use super::{Pages, PagesError};
use crate::engine::{GuestOp, OpPaths};
use crate::plan::Cell;
use crate::run::Ctx;
use crate::verdict::Outcome;
use crate::vm::link::ADDRS;
use std::path::{Path, PathBuf};

/// Dumps `cell` on `src` to a page server on `target` at `port`.
pub fn dump(
    ctx: &Ctx,
    cell: &Cell,
    (src, target): (&str, &str),
    op: &OpPaths,
    after: u32,
    port: u16,
) -> (Outcome, Box<dyn Pages>) {
    let wl = ctx.workload(&cell.workload);
    let addr = ADDRS[1].to_string();
    let ps = ctx.op_id('p');
    let outcome = match ctx.run_op(target, &GuestOp::page_server(&ps, &addr, port)) {
        Outcome::Ok => {
            let dumped = ctx.run_op(src, &GuestOp::dump_to_page_server(op, wl, after, ctx.op_timeout(), &addr, port));
            // The page server ends with the dump's connection, whatever the dump did.
            let collected = ctx.run_op(target, &GuestOp::collect_pages(&ps, ctx.op_timeout()));
            if dumped == Outcome::Ok {
                collected
            } else {
                dumped
            }
        }
        other => other,
    };
    (outcome, Box::new(Received { pages: ctx.pool.outbox(target, &ps).join("ps") }))
}

/// Pages received by the target's page server: its pagemap and pages, here
/// on the host.
pub struct Received {
    pages: PathBuf,
}

impl Pages for Received {
    /// A dir under `scratch` joining the dump's images with the pages.
    fn images(&self, dump: &Path, scratch: &Path) -> Result<PathBuf, PagesError> {
        let joined = scratch.join("joined");
        join(&[dump.join("img"), self.pages.clone()], &joined.join("img")).map_err(PagesError::Join)?;
        Ok(joined)
    }

    fn keep(&self, dir: &Path) {
        let log = self.pages.parent().map(|d| d.join("page-server.log")).filter(|l| l.is_file());
        if let Some(log) = log {
            let _ = std::fs::copy(log, dir.join("page-server.log"));
        }
    }
}

/// Copies the regular files of `dirs` (but the page server's log) into `to`.
fn join(dirs: &[PathBuf], to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for dir in dirs {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_file() && e.file_name() != "page-server.log" {
                std::fs::copy(e.path(), to.join(e.file_name()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_pages_join_the_images_and_the_log_is_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let (dump, ps, scratch, keep) =
            (dir.path().join("d"), dir.path().join("p/ps"), dir.path().join("s"), dir.path().join("k"));
        for (d, f) in [(dump.join("img"), "core-1.img"), (ps.clone(), "pages-1.img"), (ps.clone(), "page-server.log")] {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(f), f).unwrap();
        }
        std::fs::write(dir.path().join("p/page-server.log"), "log").unwrap();
        let received = Received { pages: ps };
        let images = received.images(&dump, &scratch).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(images.join("img"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["core-1.img", "pages-1.img"]);
        std::fs::create_dir_all(&keep).unwrap();
        received.keep(&keep);
        assert_eq!(std::fs::read_to_string(keep.join("page-server.log")).unwrap(), "log");
        // Pages that never arrived are crtest's ERROR, named as such.
        let gone = Received { pages: dir.path().join("nope") };
        let e = gone.images(&dump, &dir.path().join("s2")).unwrap_err();
        assert!(crate::util::error::chain(&e).starts_with("joining the page server's pages: "), "{e}");
    }
}

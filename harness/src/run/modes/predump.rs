//! Mode `predump`: pre-dump rounds with memory tracking while the workload
//! runs, then the final dump of what changed since. Each round's image dir
//! is converted on its own and relinked as the next one's parent.

use super::{Pages, PagesError};
use crate::config::workload::Workload;
use crate::engine::{GuestOp, OpPaths};
use std::path::Path;

/// How many pre-dump rounds a `predump` cell's dump has.
const ROUNDS: u32 = 2;

pub fn dump(op: &OpPaths, w: &Workload, after: u32, timeout: u32) -> GuestOp {
    GuestOp::predump(op, w, after, ROUNDS, timeout)
}

/// Pages in a chain of image dirs: the pre-dump rounds, then the dump.
pub struct Chain;

impl Pages for Chain {
    /// The pre-dump rounds (`pre/1`, `pre/2`...) in order, then `img`.
    fn image_dirs(&self, images: &Path) -> Vec<String> {
        let mut rounds: Vec<u32> = std::fs::read_dir(images.join("pre"))
            .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default();
        rounds.sort();
        rounds.into_iter().map(|r| format!("pre/{r}")).chain(["img".to_string()]).collect()
    }

    /// Gives each converted image dir its `parent` link to the one before
    /// it, as CRIU's `--prev-images-dir` left them before the move.
    fn relink(&self, root: &Path, dirs: &[String]) -> Result<(), PagesError> {
        for pair in dirs.windows(2) {
            let (parent, child) = (&pair[0], &pair[1]);
            let up = "../".repeat(child.matches('/').count() + 1);
            std::os::unix::fs::symlink(format!("{up}{parent}"), root.join(child).join("parent"))
                .map_err(PagesError::LinkParents)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_come_first_in_order_and_link_to_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["pre/10", "pre/2", "pre/1", "img"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let dirs = Chain.image_dirs(dir.path());
        assert_eq!(dirs, ["pre/1", "pre/2", "pre/10", "img"]);
        Chain.relink(dir.path(), &dirs).unwrap();
        let link = |d: &str| std::fs::read_link(dir.path().join(d).join("parent")).unwrap();
        assert_eq!(link("pre/2"), Path::new("../../pre/1"));
        assert_eq!(link("img"), Path::new("../pre/10"));
        assert!(!dir.path().join("pre/1/parent").exists());
        // A plain dump has one dir and nothing to link.
        assert_eq!(super::super::WithImages.image_dirs(dir.path()), ["img"]);
    }
}

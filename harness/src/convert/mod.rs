//! Image conversion between format versions: a step of its own in every cell,
//! between the dump and the restore.
//!
//! Built in: `identity`, `crit-recode` and `pagemap-nr-pages` (see
//! `formats.rs` for how steps chain). A user converter is any command following the
//! contract `CMD IN_DIR OUT_DIR`, with `CRTEST_FROM` and `CRTEST_TO` naming
//! the format versions, exit status 0 on success and messages on stderr.

mod builtin;
mod chain;
mod converter;
pub mod crit;
mod external;
pub mod images;
mod step;

pub use builtin::{CritRecode, Identity, PagemapNrPages};
pub use chain::{build, check_input_dir, run_chain, steps, ImageDirError, NoCritError, Step};
pub use converter::{ConvertError, Converter};
pub use external::{External, ExternalError, CONVERTER_TIMEOUT};
pub use step::{run_step, StepRecord};

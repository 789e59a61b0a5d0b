//! Small helpers with no project knowledge: files, host tools, shell quoting.

pub mod error;
pub mod fsutil;
pub mod hosttool;
pub mod shell;

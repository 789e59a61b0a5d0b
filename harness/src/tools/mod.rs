//! Commands built on finished runs or on repeated runs: bisect, bench,
//! compare, merge, and the cache.

pub mod bench;
pub mod bisect;
pub mod cache;
pub mod compare;
pub mod merge;

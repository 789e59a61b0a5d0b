//! crtest: a checkpoint/restart compatibility harness across Linux kernels.
//!
//! Data flows one way: matrix -> plan -> VMs -> checkpoint/convert/restore ->
//! verdicts -> reports.

pub mod bench;
pub mod bisect;
pub mod cache;
pub mod cli;
pub mod compare;
pub mod convert;
pub mod cpio;
pub mod crit;
pub mod elf;
pub mod engine;
pub mod formats;
pub mod fsutil;
pub mod glob;
pub mod guest;
pub mod images;
pub mod kernel;
pub mod known;
pub mod matrix;
pub mod memcheck;
pub mod merge;
pub mod modules;
pub mod partition;
pub mod plan;
pub mod prepare;
pub mod qmp;
pub mod reaper;
pub mod report;
pub mod runner;
pub mod session;
pub mod shell;
pub mod snapshot;
pub mod tool;
pub mod verdict;
pub mod virtme;
pub mod vm;
pub mod vmstate;
pub mod workload;
pub mod yaml;

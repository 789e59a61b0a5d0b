//! crtest: a checkpoint/restart compatibility harness across Linux kernels.
//!
//! Data flows one way: matrix -> plan -> VMs -> checkpoint/convert/restore ->
//! verdicts -> reports.

pub mod cli;
pub mod commands;
pub mod config;
pub mod convert;
pub mod engine;
pub mod event;
pub mod guest;
pub mod kernel;
pub mod plan;
pub mod prepare;
pub mod report;
pub mod result;
pub mod run;
pub mod session;
pub mod tools;
pub mod util;
pub mod verdict;
pub mod vm;

//! `report.html`: one self-contained page (inline CSS and a little vanilla
//! JS, nothing fetched) to see why cells failed: the run's metadata, a heat
//! map of PASS / ran per source x target kind, a small grid per workload,
//! then every cell, those no known incompatibility explains first.
//!
//! The page stays small for thousands of cells: each cell is one closed
//! `<details>` line, and its story (stages, chain, transcript diff, logs,
//! links) is JSON in a `<script type="application/json">` block that the
//! script renders when the cell is opened. Every string from the results
//! or the artifacts is escaped here (HTML) or set as text by the script,
//! never parsed as markup.

mod escape;
#[cfg(test)]
mod fixture;
mod grids;
mod page;
mod sections;

pub use escape::{esc, relative_href};
pub use page::{from_json, render, rewrite, PageError, Roots};

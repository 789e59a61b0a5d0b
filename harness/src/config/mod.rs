//! What the user writes: the matrix, the workload library, the engine and
//! format catalogs, and the YAML loading that names file and line on errors.

pub mod engines;
pub mod formats;
pub mod glob;
pub mod matrix;
pub mod mode;
pub mod workload;
pub mod yaml;

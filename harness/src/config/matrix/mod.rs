//! The matrix file: which kernels, workloads and kernel pairs to run.
//! Raw YAML (`deny_unknown_fields`) is kept apart from the validated form.

mod raw;
#[cfg(test)]
pub(crate) mod tests;
mod validate;
mod validated;

pub use validate::expand;
pub use validated::{AccelChoice, AccelError, EnginePair, Matrix, Timeouts, MEMORY_MB, PAIR_KINDS, STEP_MS, TIMEOUT_S};

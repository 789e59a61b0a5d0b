//! How a cell's images travel from the dumping engine to the restoring one:
//! the engines, their image formats and the conversion chain between them,
//! worked out once here for the plan, the run and `crtest convert`.

use crate::config::formats::{ChainError, Formats, StepSpec};
use crate::config::matrix::Matrix;
use serde::Serialize;

/// A runnable cell's route, resolved by the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The engines as the matrix names them (`host`, `criu-4.1`).
    pub dump_engine: String,
    pub restore_engine: String,
    /// The image formats they write and read; the engine's name where one
    /// engine is on both sides and its format is not known.
    pub from_format: String,
    pub to_format: String,
    /// The format steps between them (none within one format).
    pub chain: Vec<StepSpec>,
    /// Which PID range the dump's tree gets (see init.sh `tune`): one per
    /// (workload, source kernel) from their positions in the matrix, so a
    /// dump gets the same PIDs whatever the filters or partition.
    pub pid_slot: usize,
    /// The step after which the source dumps (`seed::dump_point`); set once
    /// the run's seed is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump_after: Option<u32>,
}

/// The engine a guest kind runs: its own, else the kernel's in the matrix.
pub fn engine_of<'m>(matrix: &'m Matrix, kind: &'m str) -> &'m str {
    match super::kind::engine_in(kind) {
        Some(e) => e,
        None => matrix.engines.get(kind).map(String::as_str).unwrap_or(crate::config::engines::HOST),
    }
}

/// The one chain rule: the formats of the two engines and the steps between
/// them. One engine on both sides needs no chain, whatever its format is
/// called; otherwise both formats must be known and every step declared
/// (never replaced by a silent identity).
pub fn chain(
    formats: &Formats,
    dump_engine: &str,
    restore_engine: &str,
) -> Result<(String, String, Vec<StepSpec>), ChainError> {
    let format = |e: &str| formats.of_engine(e).ok_or_else(|| ChainError::EngineFormat(e.to_string()));
    if dump_engine == restore_engine {
        let f = format(dump_engine).unwrap_or_else(|_| dump_engine.to_string());
        return Ok((f.clone(), f, vec![]));
    }
    let (from, to) = (format(dump_engine)?, format(restore_engine)?);
    let steps = formats.chain(&from, &to)?;
    Ok((from, to, steps))
}

/// Why images of the dump engine cannot reach the restore engine.
pub fn missing_chain(formats: &Formats, dump_engine: &str, restore_engine: &str) -> Option<String> {
    chain(formats, dump_engine, restore_engine).err().map(|why| format!("{dump_engine} -> {restore_engine}: {why}"))
}

/// The route between two kinds, or None when no chain joins their formats.
pub fn resolve(matrix: &Matrix, src_kind: &str, dst_kind: &str, pid_slot: usize) -> Option<Route> {
    let (a, b) = (engine_of(matrix, src_kind), engine_of(matrix, dst_kind));
    let (from_format, to_format, chain) = chain(&matrix.formats, a, b).ok()?;
    Some(Route {
        dump_engine: a.to_string(),
        restore_engine: b.to_string(),
        from_format,
        to_format,
        chain,
        pid_slot,
        dump_after: None,
    })
}

//! From raw to validated: every check a matrix file passes at load, each
//! error naming the file, the line and what was expected.
//!
//! Checks run in a fixed order (names, numbers, pairs, accel, engines, the
//! `vm` section, the converter) so a file with several mistakes always
//! reports the same one first.

use super::raw::{RawEnginePair, RawMatrix, RawPair, RawPairs, RawVm};
use super::validated::{AccelChoice, EnginePair, Matrix, Timeouts, MEMORY_MB, PAIR_KINDS, STEP_MS, TIMEOUT_S};
use crate::config::formats::Formats;
use crate::config::mode::Mode;
use crate::config::workload::Library;
use crate::config::yaml::{self, ConfigError};
use crate::kernel::Catalog;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The matrix file and its text: where an error found after parsing is.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    /// The line of `needle` in `section` (parsing keeps no spans).
    fn at(&self, section: &str, needle: &str) -> Option<usize> {
        yaml::line_of(self.text, section, needle)
    }

    fn err(&self, line: Option<usize>, message: String) -> ConfigError {
        ConfigError::new(self.path, line, message)
    }

    /// `engine` is `host` or has a format in `formats`.
    fn engine_known(&self, formats: &Formats, engine: &str, section: &str) -> Result<(), ConfigError> {
        if formats.knows_engine(engine) {
            return Ok(());
        }
        let mut known: Vec<&str> = formats.engine_formats.keys().map(String::as_str).collect();
        known.insert(0, crate::config::engines::HOST);
        Err(self
            .err(self.at(section, engine), format!("unknown engine `{engine}`: expected one of {}", known.join(", "))))
    }
}

/// `value` (default `default`) if within `range`, else an error naming
/// the field and the range.
fn in_range<T: PartialOrd + Copy + std::fmt::Display>(
    field: &str,
    value: Option<T>,
    default: T,
    range: &std::ops::RangeInclusive<T>,
) -> Result<T, (String, String)> {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        return Ok(v);
    }
    Err((v.to_string(), format!("{field} {v}: expected {}..={}", range.start(), range.end())))
}

/// A QEMU `-cpu` value: a model and comma-separated flags.
fn valid_cpu(cpu: &str) -> bool {
    (1..=128).contains(&cpu.len())
        && cpu.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ',' | '=' | '+' | '-'))
}

/// The first entry of `items` that appears twice, if any.
fn first_duplicate(items: &[String]) -> Option<&String> {
    items.iter().enumerate().find(|(i, x)| items[..*i].contains(x)).map(|(_, x)| x)
}

impl Matrix {
    pub fn load(path: &Path, catalog: &Catalog, library: &Library, formats: &Formats) -> Result<Matrix, ConfigError> {
        let (raw, text): (RawMatrix, String) = yaml::load(path)?;
        let src = Source { path, text: &text };
        let formats = match &raw.formats {
            None => formats.clone(),
            Some(f) => formats.reload(&path.parent().unwrap_or(Path::new(".")).join(f))?,
        };
        let library = library.with_programs(&raw.programs, path, &text)?;
        check_names(&src, &raw, catalog, &library)?;
        let located = |section: &'static str| {
            let src = &src;
            move |(v, m): (String, String)| src.err(src.at(section, &v), m)
        };
        let memory_mb = in_range("vm.memory_mb", raw.vm.memory_mb, 2048, &MEMORY_MB).map_err(located("vm"))?;
        let step_ms = in_range("step_ms", raw.step_ms, 100, &STEP_MS).map_err(located("step_ms"))?;
        let boot_s = in_range("timeouts.boot", raw.timeouts.boot, 180, &TIMEOUT_S).map_err(located("timeouts"))?;
        let op_s =
            in_range("timeouts.operation", raw.timeouts.operation, 180, &TIMEOUT_S).map_err(located("timeouts"))?;
        let mut kernels = raw.kernels.clone();
        kernels.sort_by_key(|k| catalog.rank(k));
        kernels.dedup();
        let Pairs { kernels: pairs, engines: engine_pairs } = resolve_pairs(&src, &formats, raw.pairs, &kernels)?;
        let accel = match raw.vm.accel.as_deref() {
            None => AccelChoice::Auto,
            Some(a) => a.parse::<AccelChoice>().map_err(|m| src.err(src.at("vm", a), m.to_string()))?,
        };
        let engines = kernel_engines(&src, &formats, raw.engine, &raw.kernel_engines, &kernels)?;
        if pairs.is_empty() && engine_pairs.is_empty() {
            return Err(src.err(
                src.at("pairs", "pairs").or(src.at("kernels", "kernels")),
                format!("the pairs select no cell: expected {PAIR_KINDS} that yields at least one pair"),
            ));
        }
        let vm = check_vm(&src, raw.vm)?;
        let modes = modes(&src, raw.modes.as_deref())?;
        let converter = converter(&src, raw.converter.as_deref())?;
        Ok(Matrix {
            path: path.to_path_buf(),
            kernels,
            workloads: raw.workloads,
            modes,
            pairs,
            timeouts: Timeouts { boot: Duration::from_secs(boot_s), operation: Duration::from_secs(op_s) },
            memory_mb,
            cpu: vm.cpu,
            pvh: vm.pvh,
            restore_in_dumping_guest: vm.restore_in_dumping_guest,
            accel,
            step_ms,
            engines,
            engine_pairs,
            converter,
            library,
            formats,
        })
    }
}

/// The matrix's modes: known names, none twice, `dump` when not given.
fn modes(src: &Source, raw: Option<&[String]>) -> Result<Vec<Mode>, ConfigError> {
    let Some(raw) = raw else { return Ok(vec![Mode::Dump]) };
    if raw.is_empty() {
        return Err(src.err(src.at("modes", "modes"), format!("modes: expected at least one of {}", Mode::names())));
    }
    if let Some(m) = first_duplicate(raw) {
        return Err(src.err(src.at("modes", m), format!("mode `{m}` is listed twice")));
    }
    raw.iter()
        .map(|m| {
            Mode::parse(m).ok_or_else(|| {
                src.err(src.at("modes", m), format!("unknown mode `{m}`: expected one of {}", Mode::names()))
            })
        })
        .collect()
}

/// Kernels in the catalog, workloads in the library, at least one of each,
/// none twice.
fn check_names(src: &Source, raw: &RawMatrix, catalog: &Catalog, library: &Library) -> Result<(), ConfigError> {
    for k in &raw.kernels {
        if catalog.get(k).is_none() {
            let known: Vec<&str> = catalog.kernels.iter().map(|k| k.id.as_str()).collect();
            return Err(src.err(
                src.at("kernels", k),
                format!("unknown kernel `{k}`: expected one of the catalog's ids ({})", known.join(", ")),
            ));
        }
    }
    for w in &raw.workloads {
        if library.get(w).is_none() {
            return Err(src.err(src.at("workloads", w), format!("unknown workload `{w}`: see `crtest workloads list`")));
        }
    }
    if raw.kernels.is_empty() || raw.workloads.is_empty() {
        let section = if raw.kernels.is_empty() { "kernels" } else { "workloads" };
        return Err(src.err(src.at(section, section), "expected at least one kernel and one workload".into()));
    }
    for (section, list) in [("kernels", &raw.kernels), ("workloads", &raw.workloads)] {
        if let Some(d) = first_duplicate(list) {
            return Err(src.err(src.at(section, d), format!("{section}: `{d}` appears twice (each cell has one id)")));
        }
    }
    Ok(())
}

/// What `pairs:` selects.
struct Pairs {
    /// (source, target) kernel pairs, in kernel order.
    kernels: Vec<(String, String)>,
    /// Pairs run with engines of their own.
    engines: Vec<EnginePair>,
}

/// The pairs of `pairs:` (default `all`) over `kernels`.
fn resolve_pairs(
    src: &Source,
    formats: &Formats,
    raw: Option<RawPairs>,
    kernels: &[String],
) -> Result<Pairs, ConfigError> {
    let kind = |kind: &str| {
        expand(kind, kernels)
            .ok_or_else(|| src.err(src.at("pairs", kind), format!("unknown pairs `{kind}`: expected {PAIR_KINDS}")))
    };
    let mut engine_pairs = Vec::new();
    let list = match raw.unwrap_or(RawPairs::One("all".into())) {
        RawPairs::One(k) => return Ok(Pairs { kernels: kind(&k)?, engines: engine_pairs }),
        RawPairs::Many(list) => list,
    };
    let mut out = Vec::new();
    for item in list {
        match item {
            RawPair::Kind(k) => out.extend(kind(&k)?),
            RawPair::Explicit([s, d]) => {
                for k in [&s, &d] {
                    if !kernels.contains(k) {
                        return Err(src.err(
                            src.at("pairs", k),
                            format!("pair [{s}, {d}]: kernel `{k}` is not in this matrix's `kernels`"),
                        ));
                    }
                }
                out.push((s, d));
            }
            RawPair::Engines(p) => add_engine_pairs(src, formats, &p, kernels, &mut engine_pairs)?,
        }
    }
    let pos = |k: &String| kernels.iter().position(|x| x == k);
    out.sort_by_key(|(s, d)| (pos(s), pos(d)));
    out.dedup();
    Ok(Pairs { kernels: out, engines: engine_pairs })
}

/// Adds the (dump, restore) engine combinations of one `pairs:` entry that
/// `out` does not have yet.
fn add_engine_pairs(
    src: &Source,
    formats: &Formats,
    p: &RawEnginePair,
    kernels: &[String],
    out: &mut Vec<EnginePair>,
) -> Result<(), ConfigError> {
    for k in [&p.src, &p.dst] {
        if !kernels.contains(k) {
            return Err(src.err(
                src.at("pairs", k),
                format!("pair {} -> {}: kernel `{k}` is not in this matrix's `kernels`", p.src, p.dst),
            ));
        }
    }
    let given = [&p.dump_engine, &p.restore_engine];
    let combos: Vec<(String, String)> = match (given, p.engines.is_empty()) {
        ([Some(a), Some(b)], true) => vec![(a.clone(), b.clone())],
        ([None, None], false) => {
            p.engines.iter().flat_map(|a| p.engines.iter().map(move |b| (a.clone(), b.clone()))).collect()
        }
        _ => {
            return Err(src.err(
                src.at("pairs", &p.src),
                format!(
                    "pair {} -> {}: expected both dump_engine and restore_engine, or `engines:` (every combination)",
                    p.src, p.dst
                ),
            ))
        }
    };
    for (a, b) in combos {
        src.engine_known(formats, &a, "pairs")?;
        src.engine_known(formats, &b, "pairs")?;
        let pair = EnginePair { src: p.src.clone(), dst: p.dst.clone(), dump_engine: a, restore_engine: b };
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    Ok(())
}

/// The engine of each kernel: `engine:` (default `host`) unless
/// `kernel_engines:` names another; every engine known, every kernel the
/// matrix's.
fn kernel_engines(
    src: &Source,
    formats: &Formats,
    default: Option<String>,
    overrides: &BTreeMap<String, String>,
    kernels: &[String],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let default = default.unwrap_or_else(|| crate::config::engines::HOST.to_string());
    src.engine_known(formats, &default, "engine")?;
    for e in overrides.values() {
        src.engine_known(formats, e, "kernel_engines")?;
    }
    for k in overrides.keys() {
        if !kernels.contains(k) {
            return Err(src
                .err(src.at("kernel_engines", k), format!("kernel_engines: `{k}` is not in this matrix's `kernels`")));
        }
    }
    Ok(kernels.iter().map(|k| (k.clone(), overrides.get(k).unwrap_or(&default).clone())).collect())
}

/// The checked words of the `vm:` section (its numbers and accel are
/// checked with the others).
struct VmChoice {
    cpu: String,
    pvh: bool,
    restore_in_dumping_guest: bool,
}

fn check_vm(src: &Source, vm: RawVm) -> Result<VmChoice, ConfigError> {
    let cpu = match vm.cpu {
        None => "max".into(),
        Some(cpu) if valid_cpu(&cpu) => cpu,
        Some(cpu) => {
            return Err(src.err(
                src.at("vm", &cpu),
                format!(
                    "vm.cpu `{}`: expected a QEMU CPU model like max or qemu64,+avx (A-Z a-z 0-9 _ . , = + -)",
                    crate::util::shell::printable(&cpu)
                ),
            ))
        }
    };
    let pvh = match vm.boot.as_deref() {
        None | Some("pvh") => true,
        Some("bzimage") => false,
        Some(other) => return Err(src.err(src.at("vm", other), format!("vm.boot `{other}`: expected pvh or bzimage"))),
    };
    let restore_in_dumping_guest = match vm.restore_in.as_deref() {
        None | Some("other-guest") => false,
        Some("dumping-guest") => true,
        Some(other) => {
            let why = format!("vm.restore_in `{other}`: expected other-guest or dumping-guest");
            return Err(src.err(src.at("restore_in", other), why));
        }
    };
    Ok(VmChoice { cpu, pvh, restore_in_dumping_guest })
}

/// `converter:`: None for `identity`, else an executable file.
fn converter(src: &Source, converter: Option<&str>) -> Result<Option<PathBuf>, ConfigError> {
    match converter {
        None | Some("identity") => Ok(None),
        Some(cmd) => crate::config::formats::executable(src.path, cmd).map(Some).map_err(|why| {
            src.err(
                src.at("converter", cmd),
                format!(
                    "converter `{cmd}`: expected `identity` or an executable file: {}",
                    crate::util::error::chain(&why)
                ),
            )
        }),
    }
}

/// Expands a pair kind over `kernels` (already in version order).
pub fn expand(kind: &str, kernels: &[String]) -> Option<Vec<(String, String)>> {
    let keep: fn(usize, usize) -> bool = match kind {
        "all" => |_, _| true,
        "diagonal" => |s, d| s == d,
        "upgrade" => |s, d| s < d,
        "downgrade" => |s, d| s > d,
        _ => return None,
    };
    let mut out = Vec::new();
    for (i, s) in kernels.iter().enumerate() {
        for (j, d) in kernels.iter().enumerate() {
            if keep(i, j) {
                out.push((s.clone(), d.clone()));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::matrix;
    use super::*;

    #[test]
    fn pair_kinds() {
        let k: Vec<String> = ["5.10", "6.1", "6.12"].map(String::from).to_vec();
        assert_eq!(expand("all", &k).unwrap().len(), 9);
        assert_eq!(expand("diagonal", &k).unwrap().len(), 3);
        let up = expand("upgrade", &k).unwrap();
        assert_eq!(up.len(), 3);
        assert!(up.contains(&("5.10".into(), "6.12".into())));
        assert!(expand("downgrade", &k).unwrap().contains(&("6.12".into(), "6.1".into())));
        assert!(expand("sideways", &k).is_none());
    }

    #[test]
    fn kernels_sorted_by_version_not_text() {
        let m = matrix("kernels: [\"6.12\", \"5.10\", \"6.1\"]\nworkloads: [counter]\npairs: upgrade\n").unwrap();
        assert_eq!(m.kernels, vec!["5.10", "6.1", "6.12"]);
        assert_eq!(m.pairs[0], ("5.10".to_string(), "6.1".to_string()));
    }

    #[test]
    fn mixed_pair_list() {
        let m = matrix(
            "kernels: [\"5.10\", \"6.1\"]\nworkloads: [counter]\npairs:\n  - diagonal\n  - [\"6.1\", \"5.10\"]\n",
        )
        .unwrap();
        assert_eq!(m.pairs.len(), 3);
    }

    #[test]
    fn errors_name_file_line_and_expectation() {
        let e = matrix("kernels:\n  - \"6.1\"\n  - \"9.9\"\nworkloads: [counter]\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(
            e.to_string().contains("unknown kernel `9.9`: expected one of the catalog's ids (5.10, 6.1, 6.12)"),
            "{e}"
        );
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [counter]\npairs: sideways\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().contains("expected all, diagonal"), "{e}");
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [nope]\n").unwrap_err();
        assert!(e.to_string().contains("matrix.yaml:2: unknown workload `nope`"), "{e}");
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [counter]\ntimeouts:\n  boot: soon\n").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [counter]\nvm: {cpu: \"max -S\"}\n").unwrap_err();
        assert!(e.to_string().contains("matrix.yaml:3: vm.cpu `max -S`: expected a QEMU CPU model"), "{e}");
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [counter]\nvm: {memory_mb: 0}\n").unwrap_err();
        assert!(e.to_string().contains("matrix.yaml:3: vm.memory_mb 0: expected 256..=65536"), "{e}");
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [counter]\npairs: []\n").unwrap_err();
        assert!(e.to_string().contains("matrix.yaml:3: the pairs select no cell"), "{e}");
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [counter, counter]\n").unwrap_err();
        assert!(e.to_string().contains("matrix.yaml:2: workloads: `counter` appears twice"), "{e}");
        let e = matrix("kernels: [\"6.1\"]\nworkloads: [counter]\npairs: [[\"6.1\", \"5.10\"]]\n").unwrap_err();
        assert!(e.to_string().contains("kernel `5.10` is not in this matrix's `kernels`"), "{e}");
    }
}

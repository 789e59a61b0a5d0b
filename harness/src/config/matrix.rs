//! The matrix file: which kernels, workloads and kernel pairs to run.
//! Raw YAML (`deny_unknown_fields`) is kept apart from the validated form.

use crate::config::workload::Library;
use crate::config::yaml::{self, ConfigError};
use crate::kernel::Catalog;
use crate::vm::qemu::Accel;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    kernels: Vec<String>,
    workloads: Vec<String>,
    #[serde(default)]
    pairs: Option<RawPairs>,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    vm: RawVm,
    /// Milliseconds each workload step sleeps (CRTEST_STEP_MS).
    #[serde(default)]
    step_ms: Option<u32>,
    /// The engine every kernel's guest runs (`host` by default), and
    /// per-kernel overrides (CRIU 3.17 cannot run on 6.13 and newer).
    #[serde(default)]
    engine: Option<String>,
    #[serde(default)]
    kernel_engines: std::collections::BTreeMap<String, String>,
    /// `identity` (default) or the path of a converter command (relative to
    /// the matrix file) following the contract in `convert.rs`.
    #[serde(default)]
    converter: Option<String>,
    /// The user's own programs, described like library workloads plus `path`.
    #[serde(default)]
    programs: Vec<crate::config::workload::Workload>,
    /// A formats file replacing the project's `converters/formats.yaml`
    /// (relative to the matrix file).
    #[serde(default)]
    formats: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPairs {
    One(String),
    Many(Vec<RawPair>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPair {
    Kind(String),
    Explicit([String; 2]),
    Engines(RawEnginePair),
}

/// A kernel pair run with other engines than the kernels' own: a dump and a
/// restore engine, or `engines:` for every (dump, restore) combination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnginePair {
    src: String,
    dst: String,
    dump_engine: Option<String>,
    restore_engine: Option<String>,
    #[serde(default)]
    engines: Vec<String>,
}

/// A kernel pair with the engine that dumps and the one that restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnginePair {
    pub src: String,
    pub dst: String,
    pub dump_engine: String,
    pub restore_engine: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    boot: Option<u64>,
    operation: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    /// `pvh` (default: boot the uncompressed kernel directly) or `bzimage`.
    boot: Option<String>,
    memory_mb: Option<u32>,
    cpu: Option<String>,
    accel: Option<String>,
    /// `other-guest` (default: a second guest of the target kind restores,
    /// as a migration would) or `dumping-guest`.
    restore_in: Option<String>,
}

/// How to choose the accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM only after a probe boot succeeds, else TCG.
    Auto,
    Force(Accel),
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Force(Accel::Kvm)),
            "tcg" => Ok(AccelChoice::Force(Accel::Tcg)),
            other => Err(format!("expected accel auto, kvm or tcg, got `{other}`")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub boot: Duration,
    pub operation: Duration,
}

/// A validated matrix.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub path: PathBuf,
    pub kernels: Vec<String>,
    pub workloads: Vec<String>,
    /// (source, target) kernel pairs in catalog order.
    pub pairs: Vec<(String, String)>,
    pub timeouts: Timeouts,
    pub memory_mb: u32,
    pub cpu: String,
    /// Boot the PVH entry of the uncompressed kernel rather than the bzImage.
    pub pvh: bool,
    /// Restore in the guest that dumped (`vm.restore_in: dumping-guest`).
    pub restore_in_dumping_guest: bool,
    pub accel: AccelChoice,
    pub step_ms: u32,
    /// The engine of each kernel of the matrix.
    pub engines: std::collections::BTreeMap<String, String>,
    /// Pairs run with engines of their own (see `RawEnginePair`).
    pub engine_pairs: Vec<EnginePair>,
    /// None for identity, else the converter command used between images of
    /// one format (chains between formats come from `formats`).
    pub converter: Option<PathBuf>,
    pub formats: crate::config::formats::Formats,
    /// The library plus this matrix's `programs:`.
    pub library: Library,
}

/// Ranges of the matrix's numbers, checked at load (and documented there).
pub const MEMORY_MB: std::ops::RangeInclusive<u32> = 256..=65536;
pub const STEP_MS: std::ops::RangeInclusive<u32> = 1..=60_000;
/// Seconds: a guest operation may take minutes under TCG, never more than a day.
pub const TIMEOUT_S: std::ops::RangeInclusive<u64> = 1..=86_400;

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

pub const PAIR_KINDS: &str = "all, diagonal, upgrade, downgrade, or a list of [src, dst]";

impl Matrix {
    pub fn load(
        path: &Path,
        catalog: &Catalog,
        library: &Library,
        formats: &crate::config::formats::Formats,
    ) -> Result<Matrix, ConfigError> {
        let (raw, text): (RawMatrix, String) = yaml::load(path)?;
        let at = |section: &str, needle: &str| yaml::line_of(&text, section, needle);
        let err = |line, m: String| ConfigError::new(path, line, m);
        let formats = match &raw.formats {
            None => formats.clone(),
            Some(f) => formats.reload(&path.parent().unwrap_or(Path::new(".")).join(f))?,
        };
        let engine_known = |e: &str, section: &str| {
            if formats.knows_engine(e) {
                return Ok(());
            }
            let mut known: Vec<&str> = formats.engine_formats.keys().map(String::as_str).collect();
            known.insert(0, crate::engine::HOST);
            Err(err(at(section, e), format!("unknown engine `{e}`: expected one of {}", known.join(", "))))
        };
        let mut engine_pairs = Vec::new();
        let library = library.with_programs(&raw.programs, path, &text)?;
        for k in &raw.kernels {
            if catalog.get(k).is_none() {
                let known: Vec<&str> = catalog.kernels.iter().map(|k| k.id.as_str()).collect();
                return Err(err(
                    at("kernels", k),
                    format!("unknown kernel `{k}`: expected one of the catalog's ids ({})", known.join(", ")),
                ));
            }
        }
        for w in &raw.workloads {
            if library.get(w).is_none() {
                return Err(err(at("workloads", w), format!("unknown workload `{w}`: see `crtest workloads list`")));
            }
        }
        if raw.kernels.is_empty() || raw.workloads.is_empty() {
            let section = if raw.kernels.is_empty() { "kernels" } else { "workloads" };
            return Err(err(at(section, section), "expected at least one kernel and one workload".into()));
        }
        for (section, list) in [("kernels", &raw.kernels), ("workloads", &raw.workloads)] {
            if let Some(d) = first_duplicate(list) {
                return Err(err(at(section, d), format!("{section}: `{d}` appears twice (each cell has one id)")));
            }
        }
        let located = |section: &'static str| move |(v, m): (String, String)| err(at(section, &v), m);
        let memory_mb = in_range("vm.memory_mb", raw.vm.memory_mb, 2048, &MEMORY_MB).map_err(located("vm"))?;
        let step_ms = in_range("step_ms", raw.step_ms, 100, &STEP_MS).map_err(located("step_ms"))?;
        let boot_s = in_range("timeouts.boot", raw.timeouts.boot, 180, &TIMEOUT_S).map_err(located("timeouts"))?;
        let op_s =
            in_range("timeouts.operation", raw.timeouts.operation, 180, &TIMEOUT_S).map_err(located("timeouts"))?;
        let mut kernels = raw.kernels.clone();
        kernels.sort_by_key(|k| catalog.rank(k));
        kernels.dedup();
        let pairs = match raw.pairs.unwrap_or(RawPairs::One("all".into())) {
            RawPairs::One(kind) => expand(&kind, &kernels)
                .ok_or_else(|| err(at("pairs", &kind), format!("unknown pairs `{kind}`: expected {PAIR_KINDS}")))?,
            RawPairs::Many(list) => {
                let mut out = Vec::new();
                for item in list {
                    match item {
                        RawPair::Kind(kind) => out.extend(expand(&kind, &kernels).ok_or_else(|| {
                            err(at("pairs", &kind), format!("unknown pairs `{kind}`: expected {PAIR_KINDS}"))
                        })?),
                        RawPair::Explicit([s, d]) => {
                            for k in [&s, &d] {
                                if !kernels.contains(k) {
                                    return Err(err(
                                        at("pairs", k),
                                        format!("pair [{s}, {d}]: kernel `{k}` is not in this matrix's `kernels`"),
                                    ));
                                }
                            }
                            out.push((s, d));
                        }
                        RawPair::Engines(p) => {
                            for k in [&p.src, &p.dst] {
                                if !kernels.contains(k) {
                                    return Err(err(
                                        at("pairs", k),
                                        format!(
                                            "pair {} -> {}: kernel `{k}` is not in this matrix's `kernels`",
                                            p.src, p.dst
                                        ),
                                    ));
                                }
                            }
                            let given = [&p.dump_engine, &p.restore_engine];
                            let combos: Vec<(String, String)> = match (given, p.engines.is_empty()) {
                                ([Some(a), Some(b)], true) => vec![(a.clone(), b.clone())],
                                ([None, None], false) => p
                                    .engines
                                    .iter()
                                    .flat_map(|a| p.engines.iter().map(move |b| (a.clone(), b.clone())))
                                    .collect(),
                                _ => {
                                    return Err(err(
                                        at("pairs", &p.src),
                                        format!("pair {} -> {}: expected both dump_engine and restore_engine, or `engines:` (every combination)", p.src, p.dst),
                                    ))
                                }
                            };
                            for (a, b) in combos {
                                engine_known(&a, "pairs")?;
                                engine_known(&b, "pairs")?;
                                let pair = EnginePair {
                                    src: p.src.clone(),
                                    dst: p.dst.clone(),
                                    dump_engine: a,
                                    restore_engine: b,
                                };
                                if !engine_pairs.contains(&pair) {
                                    engine_pairs.push(pair);
                                }
                            }
                        }
                    }
                }
                let pos = |k: &String| kernels.iter().position(|x| x == k);
                out.sort_by_key(|(s, d)| (pos(s), pos(d)));
                out.dedup();
                out
            }
        };
        let accel = match raw.vm.accel.as_deref() {
            None => AccelChoice::Auto,
            Some(a) => a.parse().map_err(|m| err(at("vm", a), m))?,
        };
        let default_engine = raw.engine.clone().unwrap_or_else(|| crate::engine::HOST.to_string());
        engine_known(&default_engine, "engine")?;
        for e in raw.kernel_engines.values() {
            engine_known(e, "kernel_engines")?;
        }
        for k in raw.kernel_engines.keys() {
            if !kernels.contains(k) {
                return Err(err(
                    at("kernel_engines", k),
                    format!("kernel_engines: `{k}` is not in this matrix's `kernels`"),
                ));
            }
        }
        if pairs.is_empty() && engine_pairs.is_empty() {
            return Err(err(
                at("pairs", "pairs").or(at("kernels", "kernels")),
                format!("the pairs select no cell: expected {PAIR_KINDS} that yields at least one pair"),
            ));
        }
        let engines =
            kernels.iter().map(|k| (k.clone(), raw.kernel_engines.get(k).unwrap_or(&default_engine).clone())).collect();
        Ok(Matrix {
            path: path.to_path_buf(),
            kernels,
            workloads: raw.workloads,
            pairs,
            timeouts: Timeouts { boot: Duration::from_secs(boot_s), operation: Duration::from_secs(op_s) },
            memory_mb,
            cpu: match raw.vm.cpu {
                None => "max".into(),
                Some(cpu) if valid_cpu(&cpu) => cpu,
                Some(cpu) => {
                    return Err(err(
                        at("vm", &cpu),
                        format!(
                            "vm.cpu `{}`: expected a QEMU CPU model like max or qemu64,+avx (A-Z a-z 0-9 _ . , = + -)",
                            crate::util::shell::printable(&cpu)
                        ),
                    ))
                }
            },
            pvh: match raw.vm.boot.as_deref() {
                None | Some("pvh") => true,
                Some("bzimage") => false,
                Some(other) => return Err(err(at("vm", other), format!("vm.boot `{other}`: expected pvh or bzimage"))),
            },
            restore_in_dumping_guest: match raw.vm.restore_in.as_deref() {
                None | Some("other-guest") => false,
                Some("dumping-guest") => true,
                Some(other) => {
                    let why = format!("vm.restore_in `{other}`: expected other-guest or dumping-guest");
                    return Err(err(at("restore_in", other), why));
                }
            },
            accel,
            step_ms,
            engines,
            engine_pairs,
            converter: match raw.converter.as_deref() {
                None | Some("identity") => None,
                Some(cmd) => Some(crate::config::formats::executable(path, cmd).map_err(|why| {
                    err(
                        at("converter", cmd),
                        format!("converter `{cmd}`: expected `identity` or an executable file: {why}"),
                    )
                })?),
            },
            library,
            formats,
        })
    }
}

impl Matrix {
    /// A matrix made on the command line (`crtest cell`, `crtest bisect`),
    /// with the defaults a matrix file would get.
    pub fn for_pairs(
        library: &Library,
        formats: &crate::config::formats::Formats,
        workload: &str,
        pairs: Vec<(String, String)>,
    ) -> Matrix {
        let mut kernels: Vec<String> = pairs.iter().flat_map(|(s, d)| [s.clone(), d.clone()]).collect();
        kernels.dedup();
        Matrix {
            path: PathBuf::from("(command line)"),
            kernels,
            workloads: vec![workload.to_string()],
            pairs,
            timeouts: Timeouts { boot: Duration::from_secs(180), operation: Duration::from_secs(180) },
            memory_mb: 2048,
            cpu: "max".into(),
            pvh: true,
            restore_in_dumping_guest: false,
            accel: AccelChoice::Auto,
            step_ms: 100,
            engines: Default::default(),
            engine_pairs: vec![],
            converter: None,
            library: library.clone(),
            formats: formats.clone(),
        }
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
pub(crate) mod tests {
    use super::*;

    pub fn fixtures() -> (tempfile::TempDir, Catalog, Library) {
        let dir = tempfile::tempdir().unwrap();
        let cat = dir.path().join("catalog.yaml");
        std::fs::write(
            &cat,
            "kernels:\n  - id: \"5.10\"\n    suite: bullseye\n    packages: [a]\n  - id: \"6.1\"\n    suite: bookworm\n    packages: [b]\n  - id: \"6.12\"\n    suite: bookworm-security\n    packages: [c]\n",
        )
        .unwrap();
        let wl = dir.path().join("wl");
        std::fs::create_dir(&wl).unwrap();
        std::fs::write(wl.join("workloads.yaml"), "- name: counter\n  summary: s\n  steps: 10\n  dump_after: 3\n- name: pipe\n  summary: s\n  steps: 10\n  dump_after: 3\n  min_kernel: \"6.0\"\n").unwrap();
        std::fs::write(wl.join("counter.c"), "").unwrap();
        std::fs::write(wl.join("pipe.c"), "").unwrap();
        let catalog = Catalog::load(&cat).unwrap();
        let library = Library::load(&wl).unwrap();
        (dir, catalog, library)
    }

    /// Formats criu-4.1 and criu-4.2 (engines of those names), converters
    /// in one direction only.
    pub fn formats(dir: &Path) -> crate::config::formats::Formats {
        let p = dir.join("formats.yaml");
        std::fs::write(
            &p,
            "versions: [criu-4.1, criu-4.2]\nconverters:\n  - {from: criu-4.2, to: criu-4.1, use: pagemap-nr-pages}\n",
        )
        .unwrap();
        crate::config::formats::Formats::load(&p, &crate::config::formats::tests::engines_of(&["4.1", "4.2"])).unwrap()
    }

    pub fn matrix(text: &str) -> Result<Matrix, ConfigError> {
        let (dir, catalog, library) = fixtures();
        let p = dir.path().join("matrix.yaml");
        std::fs::write(&p, text).unwrap();
        Matrix::load(&p, &catalog, &library, &formats(dir.path()))
    }

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

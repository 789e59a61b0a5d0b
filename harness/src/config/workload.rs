//! The workload library: `workloads/workloads.yaml` descriptions and the
//! static binaries built from `workloads/NAME.c`.

use crate::config::yaml::{self, ConfigError};
use crate::kernel::Version;
use crate::util::error::{io_at, IoAt};
use crate::util::fsutil::{self, ReadError};
use crate::util::shell::EnvKeyError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// glibc >= 2.35 registers rseq, which CRIU cannot dump on kernels before
/// 5.13 (no PTRACE_GET_RSEQ_CONFIGURATION); workloads run without it unless
/// their description sets GLIBC_TUNABLES itself.
pub const DEFAULT_ENV: &[(&str, &str)] = &[("GLIBC_TUNABLES", "glibc.pthread.rseq=0")];

/// One entry of `workloads.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    /// Source file stem when several entries share one program (defaults to `name`).
    #[serde(default)]
    pub program: Option<String>,
    pub summary: String,
    #[serde(default)]
    pub exercises: Vec<String>,
    pub steps: u32,
    pub dump_after: u32,
    #[serde(default)]
    pub dump_opts: Vec<String>,
    #[serde(default)]
    pub restore_opts: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub skip_reason: Option<String>,
    /// A file in the workload's directory holding the pid CRIU must dump
    /// (e.g. the init of a pid namespace the program created), when that is
    /// not the started program itself.
    #[serde(default)]
    pub dump_root: Option<String>,
    /// A user's own static executable instead of a library program; it runs
    /// with `args` in a directory of its own and ends by exiting.
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Where a user program's transcript is: `stdout` (default) or a file
    /// name relative to its directory. Every line counts as a step.
    #[serde(default)]
    pub transcript: Option<String>,
    /// Engines (by image format version) known to lack what this workload
    /// needs: its cells on them are SKIP with the reason, unless the run
    /// asks for known gaps too (`--run-known-gaps`). An engine not listed,
    /// e.g. a newer CRIU, always runs it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_gaps: Vec<KnownGap>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KnownGap {
    pub formats: Vec<String>,
    pub reason: String,
}

impl Workload {
    /// The file, relative to the workload's directory, holding its transcript.
    pub fn transcript_file(&self) -> &str {
        match self.transcript.as_deref() {
            None | Some("stdout") => "transcript",
            Some(file) => file,
        }
    }

    /// The program this entry runs (`workloads/PROGRAM.c`).
    pub fn program(&self) -> &str {
        self.program.as_deref().unwrap_or(&self.name)
    }

    /// The environment the workload runs with (defaults, then its own).
    pub fn environment(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> =
            DEFAULT_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.extend(self.env.clone());
        env
    }

    /// Why this workload cannot run on a kernel of `version`, if it cannot.
    /// The known gap of the engine writing `format`, if any.
    pub fn known_gap(&self, format: &str) -> Option<String> {
        let gap = self.known_gaps.iter().find(|g| g.formats.iter().any(|f| f == format))?;
        Some(format!("known gap of {format} (--run-known-gaps runs it): {}", gap.reason))
    }

    pub fn skip_on(&self, version: &Version) -> Option<String> {
        let min = Version::parse(self.min_kernel.as_deref()?)?;
        (*version < min).then(|| {
            let why = self.skip_reason.clone().unwrap_or_else(|| "declared minimum kernel".into());
            format!("{} needs kernel >= {min}: {why}", self.name)
        })
    }
}

#[derive(Debug, Clone)]
pub struct Library {
    pub dir: PathBuf,
    pub workloads: Vec<Workload>,
}

/// Steps a workload may declare: enough for a dump point strictly inside,
/// few enough that a transcript stays small.
pub const STEPS: std::ops::RangeInclusive<u32> = 2..=100_000;

/// Largest user program read (a static executable; the guest carries it
/// in memory).
pub const PROGRAM_MAX_BYTES: u64 = 64 << 20;

/// Why a workload description cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// The name is not safe as a file name and shell word.
    #[error("workload name {0}")]
    Name(String),
    /// A file field (`program`, `dump_root`, `transcript`) is not safe.
    #[error("workload `{name}`: {field} {why}")]
    Field { name: String, field: &'static str, why: String },
    #[error("workload `{name}`: {key}")]
    EnvKey { name: String, key: EnvKeyError },
    #[error(
        "workload `{name}`: expected steps in {}..={} and 0 < dump_after < steps, got dump_after {dump_after} with steps {steps}",
        STEPS.start(),
        STEPS.end()
    )]
    Steps { name: String, steps: u32, dump_after: u32 },
    #[error("workload `{name}`: min_kernel expects a version like \"5.13\", got `{min}`")]
    MinKernel { name: String, min: String },
    /// An engine option (shown escaped) that would break the guest script.
    #[error("workload `{name}`: engine option `{option}` has a newline or NUL")]
    EngineOption { name: String, option: String },
}

/// Why the binaries of workloads could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("program {} of workload {workload}", path.display())]
    Program {
        path: PathBuf,
        workload: String,
        #[source]
        error: ReadError,
    },
    #[error("running cc (install gcc and libc6-dev)")]
    Cc(#[source] std::io::Error),
    #[error("compiling {} failed:\n{stderr}", src.display())]
    Compile { src: PathBuf, stderr: String },
    #[error(transparent)]
    IoAt(#[from] IoAt),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Workload {
    /// Checks what the scripts and the file layout rely on: names and file
    /// fields from a safe character set, env keys that are identifiers,
    /// steps and dump point in range, a parseable `min_kernel`.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        let name = &self.name;
        crate::util::shell::check_name(name).map_err(|e| WorkloadError::Name(e.0))?;
        let field = |field: &'static str, v: &Option<String>| match v {
            Some(v) => crate::util::shell::check_name(v).map_err(|why| WorkloadError::Field {
                name: name.clone(),
                field,
                why: why.0,
            }),
            None => Ok(()),
        };
        field("program", &self.program)?;
        field("dump_root", &self.dump_root)?;
        field("transcript", &self.transcript)?;
        for key in self.env.keys() {
            crate::util::shell::check_env_key(key).map_err(|key| WorkloadError::EnvKey { name: name.clone(), key })?;
        }
        if !STEPS.contains(&self.steps) || self.dump_after == 0 || self.dump_after >= self.steps {
            return Err(WorkloadError::Steps { name: name.clone(), steps: self.steps, dump_after: self.dump_after });
        }
        if let Some(min) = &self.min_kernel {
            if Version::parse_exact(min).is_none() {
                return Err(WorkloadError::MinKernel { name: name.clone(), min: min.clone() });
            }
        }
        for o in self.dump_opts.iter().chain(&self.restore_opts) {
            if o.contains('\0') || o.contains('\n') {
                let option = o.escape_debug().to_string();
                return Err(WorkloadError::EngineOption { name: name.clone(), option });
            }
        }
        Ok(())
    }
}

impl Library {
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join("workloads.yaml");
        let (workloads, text): (Vec<Workload>, _) = yaml::load(&path)?;
        for (i, w) in workloads.iter().enumerate() {
            let line = yaml::line_of(&text, "- name", &w.name);
            let err = |m: String| ConfigError::new(&path, line, m);
            w.validate().map_err(|e| err(e.to_string()))?;
            if workloads[..i].iter().any(|o| o.name == w.name) {
                return Err(err(format!("workload `{}` appears twice", w.name)));
            }
            if w.path.is_some() {
                return Err(err(format!(
                    "workload `{}`: `path:` belongs to a matrix's `programs:`, not to the library",
                    w.name
                )));
            }
            if !dir.join(format!("{}.c", w.program())).is_file() {
                return Err(err(format!(
                    "workload `{}`: expected its source at {}/{}.c",
                    w.name,
                    dir.display(),
                    w.program()
                )));
            }
        }
        Ok(Library { dir: dir.to_path_buf(), workloads })
    }

    /// This library plus a matrix's own `programs:` (user executables).
    pub fn with_programs(&self, programs: &[Workload], matrix: &Path, text: &str) -> Result<Library, ConfigError> {
        let mut lib = self.clone();
        for p in programs {
            let err = |m: String| ConfigError::new(matrix, yaml::line_of(text, "programs", &p.name), m);
            p.validate().map_err(|e| err(format!("program: {e}")))?;
            if lib.get(&p.name).is_some() {
                return Err(err(format!("program `{}`: a workload of that name exists already", p.name)));
            }
            if p.program.is_some() {
                return Err(err(format!(
                    "program `{}`: expected `path:` only; `program:` names a library source and cannot go with it",
                    p.name
                )));
            }
            let path = p
                .path
                .as_ref()
                .ok_or_else(|| err(format!("program `{}`: expected `path:` to a static executable", p.name)))?;
            // Relative paths are read from the working directory, as before;
            // made absolute so later reads see the same file.
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let data = fsutil::read_bounded(&path, PROGRAM_MAX_BYTES).map_err(|e| {
                err(format!("program `{}`: {}: {}", p.name, path.display(), crate::util::error::chain(&e)))
            })?;
            crate::guest::elf::check_static_executable(&data).map_err(|why| {
                err(format!(
                    "program `{}`: {} is not a statically linked x86_64 executable: {why}",
                    p.name,
                    path.display()
                ))
            })?;
            let mut p = p.clone();
            p.path = Some(path);
            lib.workloads.push(p);
        }
        Ok(lib)
    }

    pub fn get(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }

    /// Builds (or takes from the cache) the static binary of each program
    /// the named workloads run, keyed by program.
    pub fn build(&self, names: &[String], cache: &Path) -> Result<BTreeMap<String, Vec<u8>>, BuildError> {
        let common = std::fs::read(self.dir.join("common.h")).unwrap_or_default();
        let mut programs: Vec<&str> = names.iter().filter_map(|n| self.get(n)).map(Workload::program).collect();
        programs.sort();
        programs.dedup();
        let mut out = BTreeMap::new();
        for w in names.iter().filter_map(|n| self.get(n)) {
            if let Some(path) = &w.path {
                let bin = fsutil::read_bounded(path, PROGRAM_MAX_BYTES).map_err(|error| BuildError::Program {
                    path: path.clone(),
                    workload: w.name.clone(),
                    error,
                })?;
                out.insert(w.name.clone(), bin);
            }
        }
        let users: Vec<String> = out.keys().cloned().collect();
        for name in programs.into_iter().filter(|p| !users.iter().any(|u| u == p)) {
            let src = self.dir.join(format!("{name}.c"));
            let mut key = std::fs::read(&src).map_err(io_at("reading", &src))?;
            key.extend_from_slice(&common);
            key.extend_from_slice(CC_ARGS.join(" ").as_bytes());
            let bin = cache.join("workloads").join(&fsutil::sha256_hex(&key)[..16]).join(name);
            if !bin.is_file() {
                compile(&src, &bin)?;
            }
            out.insert(name.to_string(), std::fs::read(&bin)?);
        }
        Ok(out)
    }
}

/// Compiles a self-contained C program of crtest's own (a guest helper)
/// the way workloads are, cached by its source.
pub fn compile_cached(name: &str, source: &[u8], cache: &Path) -> Result<Vec<u8>, BuildError> {
    let mut key = source.to_vec();
    key.extend_from_slice(CC_ARGS.join(" ").as_bytes());
    let dir = cache.join("workloads").join(&fsutil::sha256_hex(&key)[..16]);
    let bin = dir.join(name);
    if !bin.is_file() {
        let src = dir.join(format!("{name}.c"));
        std::fs::create_dir_all(&dir).map_err(io_at("creating", &dir))?;
        fsutil::write_atomic(&src, source)?;
        compile(&src, &bin)?;
    }
    Ok(std::fs::read(&bin).map_err(io_at("reading", &bin))?)
}

const CC_ARGS: &[&str] = &["-static", "-O2", "-Wall", "-Werror"];

fn compile(src: &Path, bin: &Path) -> Result<(), BuildError> {
    let dir = bin.parent().unwrap();
    std::fs::create_dir_all(dir)?;
    let tmp = bin.with_extension("tmp");
    let out = Command::new("cc")
        .args(CC_ARGS)
        .arg("-o")
        .arg(&tmp)
        .arg(src)
        .args(["-lpthread", "-lrt"])
        .output()
        .map_err(BuildError::Cc)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        return Err(BuildError::Compile { src: src.to_path_buf(), stderr });
    }
    std::fs::rename(&tmp, bin)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(yaml: &str) -> Result<Library, ConfigError> {
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::write(dir.join("workloads.yaml"), yaml).unwrap();
        std::fs::write(dir.join("a.c"), "int main(){return 0;}").unwrap();
        Library::load(&dir)
    }

    #[test]
    fn loads_and_checks_dump_point() {
        let l = lib("- name: a\n  summary: s\n  steps: 10\n  dump_after: 3\n").unwrap();
        assert_eq!(l.get("a").unwrap().environment()["GLIBC_TUNABLES"], "glibc.pthread.rseq=0");
        let err = lib("- name: a\n  summary: s\n  steps: 10\n  dump_after: 10\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("workloads.yaml:1: workload `a`: expected steps in 2..=100000 and 0 < dump_after < steps"),
            "{err}"
        );
    }

    #[test]
    fn hostile_fields_are_refused_with_their_line() {
        let base = "- name: a\n  summary: s\n  steps: 10\n  dump_after: 3\n";
        for (extra, expect) in [
            ("  program: \"$(touch /tmp/x)\"\n", "program `$(touch /tmp/x)`: expected 1 to 64"),
            ("  dump_root: ../../etc/passwd\n", "dump_root `../../etc/passwd`"),
            ("  transcript: \"a;b\"\n", "transcript `a;b`"),
            ("  env: {\"A;rm\": x}\n", "env key `A;rm`: expected a shell identifier"),
            ("  min_kernel: banana\n", "min_kernel expects a version"),
            ("  min_kernel: \"5.13rc\"\n", "min_kernel expects a version"),
            ("  path: /bin/true\n", "`path:` belongs to a matrix's `programs:`"),
        ] {
            let err = lib(&format!("{base}{extra}")).unwrap_err();
            assert!(err.to_string().starts_with(&format!("{}:1: ", err.path.display())), "{err}");
            assert!(err.to_string().contains(expect), "{extra}: {err}");
        }
        let err = lib("- name: \"x/../y\"\n  summary: s\n  steps: 10\n  dump_after: 3\n").unwrap_err();
        assert!(err.to_string().contains("workload name `x/../y`"), "{err}");
        let err = lib(&format!("{base}- name: a\n  summary: s\n  steps: 10\n  dump_after: 3\n")).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
        let err = lib("- name: a\n  summary: s\n  steps: 4294967295\n  dump_after: 3\n").unwrap_err();
        assert!(err.to_string().contains("expected steps in 2..=100000"), "{err}");
    }

    #[test]
    fn missing_source_and_unknown_field() {
        let err = lib("- name: b\n  summary: s\n  steps: 10\n  dump_after: 3\n").unwrap_err();
        assert!(err.to_string().contains("expected its source at"), "{err}");
        let err = lib("- name: a\n  summary: s\n  steps: 10\n  dump_after: 3\n  colour: red\n").unwrap_err();
        assert_eq!(err.line, Some(5));
    }

    #[test]
    fn an_unreadable_program_is_named_with_its_cause_once() {
        let mut l = lib("- name: a\n  summary: s\n  steps: 10\n  dump_after: 3\n").unwrap();
        let mut p = l.workloads[0].clone();
        (p.name, p.path) = ("p".into(), Some("/nonexistent/prog".into()));
        l.workloads.push(p);
        let e = l.build(&["p".into()], Path::new("/nonexistent")).unwrap_err();
        assert_eq!(
            crate::util::error::chain(&e),
            "program /nonexistent/prog of workload p: cannot read: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn skip_below_min_kernel() {
        let mut w = lib("- name: a\n  summary: s\n  steps: 10\n  dump_after: 3\n").unwrap().workloads.remove(0);
        w.min_kernel = Some("5.13".into());
        w.skip_reason = Some("rseq".into());
        assert_eq!(w.skip_on(&Version(vec![5, 10])).as_deref(), Some("a needs kernel >= 5.13: rseq"));
        assert_eq!(w.skip_on(&Version(vec![6, 1])), None);
    }
}

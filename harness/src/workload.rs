//! The workload library: `workloads/workloads.yaml` descriptions and the
//! static binaries built from `workloads/NAME.c`.

use crate::fsutil;
use crate::kernel::Version;
use crate::yaml::{self, ConfigError};
use anyhow::{bail, Context, Result};
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

impl Library {
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join("workloads.yaml");
        let (workloads, text): (Vec<Workload>, _) = yaml::load(&path)?;
        for (i, w) in workloads.iter().enumerate() {
            let line = yaml::line_of(&text, "- name", &w.name);
            let err = |m: String| ConfigError::new(&path, line, m);
            if workloads[..i].iter().any(|o| o.name == w.name) {
                return Err(err(format!("workload `{}` appears twice", w.name)));
            }
            if w.dump_after == 0 || w.dump_after >= w.steps {
                return Err(err(format!(
                    "workload `{}`: expected 0 < dump_after < steps, got dump_after {} with steps {}",
                    w.name, w.dump_after, w.steps
                )));
            }
            if w.path.is_none() && !dir.join(format!("{}.c", w.program())).is_file() {
                return Err(err(format!(
                    "workload `{}`: expected its source at {}/{}.c",
                    w.name,
                    dir.display(),
                    w.program()
                )));
            }
            if let Some(min) = &w.min_kernel {
                if Version::parse(min).is_none() {
                    return Err(err(format!(
                        "workload `{}`: min_kernel expects a version like \"5.13\", got `{min}`",
                        w.name
                    )));
                }
            }
        }
        Ok(Library { dir: dir.to_path_buf(), workloads })
    }

    /// This library plus a matrix's own `programs:` (user executables).
    pub fn with_programs(&self, programs: &[Workload], matrix: &Path, text: &str) -> Result<Library, ConfigError> {
        let mut lib = self.clone();
        for p in programs {
            let err = |m: String| ConfigError::new(matrix, yaml::line_of(text, "programs", &p.name), m);
            if lib.get(&p.name).is_some() {
                return Err(err(format!("program `{}`: a workload of that name exists already", p.name)));
            }
            let path = p
                .path
                .as_ref()
                .ok_or_else(|| err(format!("program `{}`: expected `path:` to a static executable", p.name)))?;
            let data = std::fs::read(path)
                .map_err(|e| err(format!("program `{}`: cannot read {}: {e}", p.name, path.display())))?;
            if !crate::guest::is_static_elf(&data) {
                return Err(err(format!(
                    "program `{}`: {} is not a statically linked x86_64 executable",
                    p.name,
                    path.display()
                )));
            }
            if p.dump_after == 0 || p.dump_after >= p.steps {
                return Err(err(format!("program `{}`: expected 0 < dump_after < steps", p.name)));
            }
            lib.workloads.push(p.clone());
        }
        Ok(lib)
    }

    pub fn get(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }

    /// Builds (or takes from the cache) the static binary of each program
    /// the named workloads run, keyed by program.
    pub fn build(&self, names: &[String], cache: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
        let common = std::fs::read(self.dir.join("common.h")).unwrap_or_default();
        let mut programs: Vec<&str> = names.iter().filter_map(|n| self.get(n)).map(Workload::program).collect();
        programs.sort();
        programs.dedup();
        let mut out = BTreeMap::new();
        for w in names.iter().filter_map(|n| self.get(n)) {
            if let Some(path) = &w.path {
                let bin = std::fs::read(path)
                    .with_context(|| format!("reading program {} of workload {}", path.display(), w.name))?;
                out.insert(w.name.clone(), bin);
            }
        }
        let users: Vec<String> = out.keys().cloned().collect();
        for name in programs.into_iter().filter(|p| !users.iter().any(|u| u == p)) {
            let src = self.dir.join(format!("{name}.c"));
            let mut key = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
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
pub fn compile_cached(name: &str, source: &[u8], cache: &Path) -> Result<Vec<u8>> {
    let mut key = source.to_vec();
    key.extend_from_slice(CC_ARGS.join(" ").as_bytes());
    let dir = cache.join("workloads").join(&fsutil::sha256_hex(&key)[..16]);
    let bin = dir.join(name);
    if !bin.is_file() {
        let src = dir.join(format!("{name}.c"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        fsutil::write_atomic(&src, source)?;
        compile(&src, &bin)?;
    }
    std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))
}

const CC_ARGS: &[&str] = &["-static", "-O2", "-Wall", "-Werror"];

fn compile(src: &Path, bin: &Path) -> Result<()> {
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
        .context("running cc (install gcc and libc6-dev)")?;
    if !out.status.success() {
        bail!("compiling {} failed:\n{}", src.display(), String::from_utf8_lossy(&out.stderr));
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
        assert!(err.to_string().contains("workloads.yaml:1: workload `a`: expected 0 < dump_after < steps"), "{err}");
    }

    #[test]
    fn missing_source_and_unknown_field() {
        let err = lib("- name: b\n  summary: s\n  steps: 10\n  dump_after: 3\n").unwrap_err();
        assert!(err.to_string().contains("expected its source at"), "{err}");
        let err = lib("- name: a\n  summary: s\n  steps: 10\n  dump_after: 3\n  colour: red\n").unwrap_err();
        assert_eq!(err.line, Some(5));
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

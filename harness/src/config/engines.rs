//! `kernels/engines.yaml`: the engines a matrix may name, and the
//! environment each needs.

use crate::config::yaml::{self, ConfigError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The host's own CRIU.
pub const HOST: &str = "host";

/// One entry of `kernels/engines.yaml`: an engine built from a Debian suite
/// (`suite` and `package`), or a CRIU binary of your own (`local`).
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EngineSpec {
    pub id: String,
    #[serde(default)]
    pub suite: String,
    #[serde(default)]
    pub package: String,
    /// A `criu` binary you built (static, or dynamic: its shared libraries
    /// are collected from the host with ldd, like the host's CRIU). Relative
    /// paths are relative to the engines file.
    #[serde(default)]
    pub local: Option<PathBuf>,
    /// The image format this engine writes and reads (see `formats.rs`).
    pub format: String,
    /// Packages holding the engine's crit (host-side only, never in guests).
    #[serde(default)]
    pub tools: Vec<String>,
    /// A local engine's crit: a directory holding the `pycriu` package of
    /// your CRIU build (a built tree's `lib/`), run by the host's python3.
    /// Relative paths are relative to the engines file.
    #[serde(default)]
    pub crit: Option<PathBuf>,
    /// Environment the engine's own process needs on every kernel (e.g.
    /// glibc's rseq off for CRIU 3.17). The host's CRIU of the same version
    /// gets it too.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngines {
    engines: Vec<EngineSpec>,
}

/// The engines catalog; `host` is always there.
pub fn load_catalog(path: &Path) -> Result<Vec<EngineSpec>, ConfigError> {
    let (mut raw, text): (RawEngines, _) = yaml::load(path)?;
    for e in &mut raw.engines {
        // Engine ids name guest kinds, VMs and directories.
        let bad = crate::util::shell::check_name(&e.id)
            .err()
            .map(|e| e.to_string())
            .or_else(|| env_file(&e.env).err().map(|e| crate::util::error::chain(&e)))
            .or_else(|| check_source(e).err().map(|e| e.to_string()));
        if let Some(why) = bad {
            let line = yaml::line_of(&text, "engines", &e.id);
            return Err(ConfigError::new(path, line, format!("engine `{}`: {why}", e.id)));
        }
        // The binary itself is checked when a run uses it: a missing one
        // must not stop runs of the other engines.
        let here = path.parent().unwrap_or(Path::new("."));
        for p in [e.local.as_mut(), e.crit.as_mut()].into_iter().flatten() {
            *p = here.join(&*p);
        }
    }
    Ok(raw.engines)
}

/// An engine entry that is neither or both of Debian-built and local.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("expected `suite` and `package` (a Debian-built engine) or `local: PATH`")]
    Neither,
    #[error("`local` names a binary: expected no `suite`, `package` or `tools` beside it")]
    Both,
    #[error("`crit` is a local engine's own crit: expected `local: PATH` beside it (a Debian-built engine's crit comes with its `tools`)")]
    CritWithoutLocal,
}

/// An entry is either built from Debian (suite, package, tools) or local.
fn check_source(e: &EngineSpec) -> Result<(), SourceError> {
    match (&e.local, e.suite.is_empty() || e.package.is_empty()) {
        (None, _) if e.crit.is_some() => Err(SourceError::CritWithoutLocal),
        (None, false) => Ok(()),
        (None, true) => Err(SourceError::Neither),
        (Some(_), _) if !e.suite.is_empty() || !e.package.is_empty() || !e.tools.is_empty() => Err(SourceError::Both),
        (Some(_), _) => Ok(()),
    }
}

/// An engine env entry the guest's env file cannot carry safely.
#[derive(Debug, thiserror::Error)]
#[error("engine env `{key}={value}`: keys and values may hold only letters, digits and _.,:=/-")]
pub struct EnvFileError {
    pub key: String,
    pub value: String,
}

/// The engine environment file of a guest image, one `KEY=VALUE` a line.
pub fn env_file(env: &BTreeMap<String, String>) -> Result<Vec<u8>, EnvFileError> {
    let safe = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.,:=/-".contains(&b));
    let mut out = String::new();
    for (k, v) in env {
        if !(safe(k) && !k.contains('=') && safe(v)) {
            return Err(EnvFileError { key: k.clone(), value: v.clone() });
        }
        out.push_str(&format!("{k}={v}\n"));
    }
    Ok(out.into_bytes())
}

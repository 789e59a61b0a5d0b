//! The C/R engine: which userspace runs in the guest (the catalog, engines
//! fetched from Debian, the host's, or a binary given by path), the scripts
//! that drive it (`scripts`), their exits (`exit`), the operations built
//! from them (`ops`) and the engine's logs (`log`).

pub mod exit;
pub mod log;
pub mod ops;
pub mod scripts;

pub use crate::config::engines::{env_file, load_catalog, EngineSpec, HOST};
pub use crate::guest::layout::ENV_FILE;
pub use exit::{rc, ScriptExit};
pub use log::{error_line, error_lines};
pub use ops::{GuestOp, OpKind};
pub use scripts::OpPaths;

use crate::guest::cpio::Entry;
use crate::guest::hostlib::{self, HostProgramError};
use crate::kernel::fetch::FetchError;
use crate::util::error::{io_at, IoAt};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A C/R engine at a version, with the files it needs in the guest.
#[derive(Debug, Clone)]
pub struct Engine {
    /// e.g. `criu-3.17.1`.
    pub id: String,
    pub files: Vec<Entry>,
    /// The environment every run of the engine gets in the guest (see
    /// `env` in kernels/engines.yaml).
    pub env: BTreeMap<String, String>,
}

/// Why an engine's userspace could not be had.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `ids` lists the catalog's engines.
    #[error("unknown engine `{id}`: expected host or one of {ids}")]
    Unknown { id: String, ids: String },
    /// The catalog's local engine `id` cannot be used.
    #[error("engine {id}")]
    Local {
        id: String,
        #[source]
        source: Box<EngineError>,
    },
    #[error("criu is not installed on the host (apt-get install criu)")]
    NoHostCriu,
    #[error("running criu --version")]
    HostVersion(#[source] std::io::Error),
    /// The host's `criu --version` printed no version: what it printed.
    #[error("unexpected `criu --version` output: {0}")]
    HostVersionOutput(String),
    #[error(transparent)]
    Binary(#[from] LocalEngineError),
    #[error(transparent)]
    Read(#[from] IoAt),
    #[error(transparent)]
    Libraries(#[from] HostProgramError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

/// Returns the engine `id` names: `host`, a local binary, or a Debian-built
/// one (fetched and cached on first use).
pub fn resolve(id: &str, catalog: &[EngineSpec], cache: &Path, log: &dyn Fn(&str)) -> Result<Engine, EngineError> {
    if id == HOST {
        let mut host = Engine::host_criu()?;
        // The host's CRIU needs what the catalog's engine of its version needs.
        host.env = env_of_version(catalog, host.id.trim_start_matches("criu-"));
        return Ok(host);
    }
    let spec = catalog.iter().find(|e| e.id == id).ok_or_else(|| {
        let ids: Vec<&str> = catalog.iter().map(|e| e.id.as_str()).collect();
        EngineError::Unknown { id: id.to_string(), ids: ids.join(", ") }
    })?;
    match &spec.local {
        Some(path) => {
            let mut engine = Engine::local_criu(path)
                .map_err(|source| EngineError::Local { id: id.to_string(), source: Box::new(source) })?;
            engine.env = spec.env.clone();
            Ok(engine)
        }
        None => {
            let (id, files) = crate::kernel::fetch::engine_root(spec, cache, log)?;
            Ok(Engine { id, files, env: spec.env.clone() })
        }
    }
}

/// The env of the catalog's engine of CRIU `version` (`criu-3.17` for
/// `3.17.1`): a CRIU not built by Debian needs what Debian's build of its
/// version needs.
fn env_of_version(catalog: &[EngineSpec], version: &str) -> BTreeMap<String, String> {
    let id = format!("criu-{version}");
    catalog
        .iter()
        .filter(|s| s.local.is_none())
        .find(|s| id == s.id || id.starts_with(&format!("{}.", s.id)))
        .map(|s| s.env.clone())
        .unwrap_or_default()
}

/// Whether an `--engine` value names a binary rather than an engine id
/// (ids never hold `/`).
pub fn is_path(engine: &str) -> bool {
    engine.contains('/')
}

/// Largest engine binary accepted (a CRIU is a few MiB).
pub const LOCAL_MAX_BYTES: u64 = 256 << 20;

/// Why a binary given as an engine cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LocalEngineError {
    /// Nothing there: in `git bisect run`, a build that produced no binary.
    #[error("{0}: no such file (the build produced no criu binary)")]
    Missing(PathBuf),
    /// Something that is not a CRIU binary: a mistake in the arguments.
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
    /// An executable that cannot say its version: the CRIU under test is
    /// broken (its version decides the format it writes).
    #[error("{0}: `criu --version` {1}")]
    Broken(PathBuf, String),
}

/// A binary checked to be usable as an engine, with its content.
struct Binary {
    path: PathBuf,
    data: Vec<u8>,
}

/// Checks `path` is a regular, executable x86-64 ELF file of bounded size.
fn check_binary(path: &Path) -> Result<Binary, LocalEngineError> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let invalid = |why: String| LocalEngineError::Invalid(path.clone(), why);
    let meta = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LocalEngineError::Missing(path)),
        Err(e) => return Err(invalid(e.to_string())),
        Ok(m) => m,
    };
    if !meta.is_file() {
        return Err(invalid("expected a regular file (a criu binary)".into()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(invalid("not executable (chmod +x)".into()));
    }
    if meta.len() > LOCAL_MAX_BYTES {
        return Err(invalid(format!("{} bytes: expected at most {LOCAL_MAX_BYTES}", meta.len())));
    }
    let data = std::fs::read(&path).map_err(|e| invalid(e.to_string()))?;
    crate::guest::elf::check_executable(&data).map_err(|why| invalid(format!("{why}: expected a criu binary")))?;
    Ok(Binary { path, data })
}

/// How long `criu --version` may take.
const VERSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// `3.17.1` from `criu --version` of the binary at `path`.
fn version_of(path: &Path) -> Result<String, LocalEngineError> {
    let broken = |why: String| LocalEngineError::Broken(path.to_path_buf(), why);
    let mut child = Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| broken(format!("could not run: {e}")))?;
    let start = std::time::Instant::now();
    // A broken build may hang: never wait for it forever.
    while child.try_wait().map_err(|e| broken(e.to_string()))?.is_none() {
        if start.elapsed() > VERSION_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(broken(format!("did not finish in {}s", VERSION_TIMEOUT.as_secs())));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().map_err(|e| broken(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match (out.status.success(), parse_version(&text)) {
        (true, Some(v)) => Ok(v),
        (true, None) => Err(broken(format!("printed no `Version:` line: {}", crate::util::shell::printable(&text)))),
        (false, _) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            Err(broken(format!("failed ({}) {}", out.status, crate::util::shell::printable(last)).trim_end().into()))
        }
    }
}

/// The `Version:` of `criu --version` output.
fn parse_version(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_string())).filter(|v| !v.is_empty())
}

/// The catalog entry of a CRIU binary given by path (`--engine PATH`): id
/// `local-` and 12 hex digits of the binary's SHA-256 (a safe name for guest
/// kinds and cell ids; another build is another id), the format of its
/// version (`criu-MAJOR.MINOR`, as for the host's CRIU) and the env of the
/// catalog's engine of that version.
pub fn local_spec(path: &Path, catalog: &[EngineSpec]) -> Result<EngineSpec, LocalEngineError> {
    let bin = check_binary(path)?;
    let version = version_of(&bin.path)?;
    let format = crate::config::formats::format_of_version(&version)
        .ok_or_else(|| LocalEngineError::Broken(bin.path.clone(), format!("version `{version}` is not MAJOR.MINOR")))?;
    Ok(EngineSpec {
        id: format!("local-{}", &crate::util::fsutil::sha256_hex(&bin.data)[..12]),
        suite: String::new(),
        package: String::new(),
        local: Some(bin.path),
        format,
        tools: vec![],
        crit: None,
        env: env_of_version(catalog, &version),
    })
}

impl Engine {
    /// The host's CRIU with its shared libraries.
    pub fn host_criu() -> Result<Self, EngineError> {
        let criu = hostlib::which("criu").ok_or(EngineError::NoHostCriu)?;
        let out = Command::new(&criu).arg("--version").output().map_err(EngineError::HostVersion)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = parse_version(&text).ok_or_else(|| EngineError::HostVersionOutput(text.to_string()))?;
        Ok(Engine { id: format!("criu-{version}"), files: criu_files(&criu)?, env: BTreeMap::new() })
    }

    /// A CRIU binary of your own, with the host's shared libraries it
    /// needs (none when static). Its id says where it came from:
    /// `criu-3.17.1 (/path/to/criu)`.
    pub fn local_criu(path: &Path) -> Result<Self, EngineError> {
        let bin = check_binary(path)?;
        let version = version_of(&bin.path)?;
        let files = criu_files(&bin.path)?;
        Ok(Engine { id: format!("criu-{version} ({})", bin.path.display()), files, env: BTreeMap::new() })
    }
}

/// A criu binary and its shared libraries as guest files; the guest looks
/// for criu at /usr/sbin/criu whatever the host path.
fn criu_files(criu: &Path) -> Result<Vec<Entry>, EngineError> {
    let data = std::fs::read(criu).map_err(io_at("reading", criu))?;
    let mut files = match hostlib::is_static_elf(&data) {
        true => vec![Entry::file("usr/sbin/criu", 0o755, data)],
        false => hostlib::host_program_with_libs(criu)?,
    };
    files[0].path = "usr/sbin/criu".into();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(text: &str) -> Result<Vec<EngineSpec>, crate::config::yaml::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("engines.yaml"), text).unwrap();
        load_catalog(&dir.path().join("engines.yaml"))
    }

    #[test]
    fn local_entries_name_a_binary_and_nothing_to_fetch() {
        let ok = catalog("engines:\n  - {id: mine, local: build/criu, format: criu-4.1, env: {A: b}}\n").unwrap();
        let local = ok[0].local.as_deref().unwrap();
        assert!(local.is_absolute() && local.ends_with("build/criu"), "{local:?}");
        let e = catalog("engines:\n  - {id: mine, local: criu, suite: sid, format: criu-4.1}\n").unwrap_err();
        assert!(e.to_string().contains("engines.yaml:2: engine `mine`: `local` names a binary"), "{e}");
        let e = catalog("engines:\n  - {id: x, format: criu-4.1}\n").unwrap_err();
        assert!(e.to_string().contains("expected `suite` and `package`"), "{e}");
        // A local engine's own crit, relative to the file like its binary; never a Debian engine's.
        let ok = catalog("engines:\n  - {id: x, local: criu, format: criu-4.1, crit: build/lib}\n").unwrap();
        assert!(ok[0].crit.as_deref().is_some_and(|c| c.is_absolute() && c.ends_with("build/lib")), "{ok:?}");
        let e = catalog("engines:\n  - {id: x, suite: sid, package: criu, format: criu-4.1, crit: c}\n").unwrap_err();
        assert!(e.to_string().contains("`crit` is a local engine's own crit"), "{e}");
    }

    #[test]
    fn resolve_names_the_engine_that_cannot_be_had() {
        let mut specs = crate::config::formats::tests::engines_of(&["4.1"]);
        let e = resolve("criu-9", &specs, Path::new("/nonexistent"), &|_| {}).unwrap_err();
        assert_eq!(e.to_string(), "unknown engine `criu-9`: expected host or one of criu-4.1");
        let dir = tempfile::tempdir().unwrap();
        specs[0].local = Some(dir.path().join("criu"));
        let e = resolve("criu-4.1", &specs, dir.path(), &|_| {}).unwrap_err();
        let EngineError::Local { source, .. } = &e else { panic!("{e}") };
        assert!(matches!(**source, EngineError::Binary(LocalEngineError::Missing(_))), "{e}");
        let want = format!("engine criu-4.1: {}/criu: no such file", dir.path().display());
        assert!(crate::util::error::chain(&e).starts_with(&want), "{}", crate::util::error::chain(&e));
    }

    #[test]
    fn a_binary_by_path_is_checked_and_named_by_content() {
        let specs = crate::config::formats::tests::engines_of(&["3.17", "4.1"]);
        let mut specs = specs;
        specs[0].env.insert("GLIBC_TUNABLES".into(), "glibc.pthread.rseq=0".into());
        let dir = tempfile::tempdir().unwrap();
        let missing = local_spec(&dir.path().join("criu/criu"), &specs).unwrap_err();
        assert!(matches!(missing, LocalEngineError::Missing(_)), "{missing}");
        assert!(matches!(local_spec(dir.path(), &specs), Err(LocalEngineError::Invalid(..))));
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\necho Version: 3.17.1\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let e = local_spec(&script, &specs).unwrap_err();
        assert!(e.to_string().ends_with("not an ELF file: expected a criu binary"), "{e}");
        let falsy = dir.path().join("false");
        std::fs::copy("/bin/false", &falsy).unwrap();
        let e = local_spec(&falsy, &specs).unwrap_err();
        assert!(matches!(e, LocalEngineError::Broken(..)) && e.to_string().contains("failed (exit status: 1)"), "{e}");
        let Some(host) = hostlib::which("criu") else { return };
        let copy = dir.path().join("criu-copy");
        std::fs::copy(&host, &copy).unwrap();
        let spec = local_spec(&copy, &specs).unwrap();
        assert!(spec.id.starts_with("local-") && spec.id.len() == 18, "{}", spec.id);
        crate::util::shell::check_name(&spec.id).unwrap();
        if spec.format == "criu-3.17" {
            assert_eq!(spec.env["GLIBC_TUNABLES"], "glibc.pthread.rseq=0");
        }
        let engine = Engine::local_criu(&copy).unwrap();
        assert!(engine.id.starts_with("criu-") && engine.id.ends_with(&format!(" ({})", copy.display())));
        assert_eq!(engine.files[0].path, "usr/sbin/criu");
    }
}

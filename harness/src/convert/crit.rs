//! Each format version's own crit (CRIU's image tool, Python), run on the
//! host from the engine's tools tree with that tree's loader, libraries and
//! Python, so every version decodes and encodes with its own definitions.

use crate::util::error::{io_at, IoAt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Decodes (`check`, `decode`) or encodes (`encode`) the named files of a
/// directory in one Python process: `MODE SRC DST NAME...`. Which files are
/// images is decided in Rust ([`is_raw`]).
const SCRIPT: &str = r#"
import json, os, sys
import pycriu
mode, src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
for name in names:
    path = os.path.join(src, name)
    try:
        if mode == 'encode':
            with open(path) as f:
                img = json.load(f)
            with open(os.path.join(dst, name[:-5]), 'wb') as f:
                pycriu.images.dump(img, f)
        else:
            with open(path, 'rb') as f:
                img = pycriu.images.load(f)
            if mode == 'decode':
                with open(os.path.join(dst, name + '.json'), 'w') as f:
                    json.dump(img, f)
    except Exception as e:
        sys.stderr.write('%s: %s: %s\n' % (name, type(e).__name__, e))
        sys.exit(1)
print(len(names))
"#;

/// The crit of every format in `formats`, each fetched once.
pub fn for_formats(
    formats: impl IntoIterator<Item = String>,
    engines: &[crate::config::engines::EngineSpec],
    cache: &Path,
    log: &dyn Fn(&str),
) -> Result<std::collections::BTreeMap<String, Crit>, FindCritError> {
    let wanted: std::collections::BTreeSet<String> = formats.into_iter().collect();
    wanted.into_iter().map(|f| Ok((f.clone(), Crit::for_format(&f, engines, cache, log)?))).collect()
}

/// Whether an image file is raw data that crit does not decode: pages,
/// tarballs, anything not named `*.img`.
pub fn is_raw(name: &str) -> bool {
    name.starts_with("pages-") || name.ends_with(".tar.gz.img") || !name.ends_with(".img")
}

/// The file names in `dir`, sorted.
pub fn file_names(dir: &Path) -> Result<Vec<String>, IoAt> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_at("reading", dir))? {
        names.push(e.map_err(io_at("reading", dir))?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Why a crit run did not decode or encode every image. Only `Rejected`
/// puts the images at fault; the rest are crtest's or the tools tree's.
#[derive(Debug, thiserror::Error)]
pub enum CritError {
    /// An image does not decode: the last line of crit's stderr.
    #[error("{format}'s crit: {line}")]
    Rejected { format: String, line: String },
    /// crit failed otherwise: the last line of its stderr.
    #[error("crit of {format} could not run: {line}")]
    Failed { format: String, line: String },
    #[error("crit of {format}: unexpected output")]
    Output { format: String },
    #[error("crit of {format}")]
    Start {
        format: String,
        #[source]
        source: CritStartError,
    },
}

/// Why crit could not be started.
#[derive(Debug, thiserror::Error)]
pub enum CritStartError {
    /// Listing the images to hand it.
    #[error(transparent)]
    List(#[from] IoAt),
    #[error("no dynamic loader in {}", root.display())]
    NoLoader { root: PathBuf },
    #[error("no python3.N in {}/usr/bin", root.display())]
    NoPython { root: PathBuf },
    #[error(transparent)]
    Spawn(#[from] std::io::Error),
}

/// Why there is no crit for a format.
#[derive(Debug, thiserror::Error)]
pub enum FindCritError {
    #[error("crit {}: expected a directory holding the pycriu package (a built CRIU tree's lib/)", dir.display())]
    NotPycriu { dir: PathBuf },
    #[error("no engine with `tools` speaks format {format}: its crit is unknown")]
    NoEngine { format: String },
    /// Fetching the engine's tools tree failed (its own words and causes).
    #[error(transparent)]
    Tools(#[from] crate::kernel::fetch::FetchError),
}

/// A crit of one format version.
#[derive(Debug, Clone)]
pub struct Crit {
    pub format: String,
    /// The engine's tools tree (a Debian root with crit and its Python).
    root: PathBuf,
    /// A local engine's `pycriu` directory, run by the host's python3
    /// instead of a tools tree.
    pycriu: Option<PathBuf>,
}

/// The host's Python, for a local engine's crit.
const HOST_PYTHON: &str = "/usr/bin/python3";

impl Crit {
    pub fn new(format: &str, root: &Path) -> Crit {
        Crit { format: format.to_string(), root: root.to_path_buf(), pycriu: None }
    }

    /// A local engine's crit: `dir` holds the `pycriu` package of its build.
    pub fn local(format: &str, dir: &Path) -> Result<Crit, FindCritError> {
        if !dir.join("pycriu/__init__.py").is_file() {
            return Err(FindCritError::NotPycriu { dir: dir.to_path_buf() });
        }
        Ok(Crit { format: format.to_string(), root: PathBuf::new(), pycriu: Some(dir.to_path_buf()) })
    }

    /// The crit of `format`, from the engine of engines.yaml that speaks it
    /// (its tools tree is fetched and cached on first use).
    pub fn for_format(
        format: &str,
        engines: &[crate::config::engines::EngineSpec],
        cache: &Path,
        log: &dyn Fn(&str),
    ) -> Result<Crit, FindCritError> {
        // A local engine's own crit speaks for its format first.
        if let Some(dir) = engines.iter().filter(|e| e.format == format).find_map(|e| e.crit.as_deref()) {
            return Crit::local(format, dir);
        }
        let spec = engines
            .iter()
            .find(|e| e.format == format && !e.tools.is_empty())
            .ok_or_else(|| FindCritError::NoEngine { format: format.to_string() })?;
        let root = crate::kernel::fetch::tools_root(spec, cache, log)?;
        Ok(Crit::new(format, &root))
    }

    /// Inside-the-root path of a file, following links within the root.
    fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let mut p = self.root.join(rel);
        for _ in 0..8 {
            match std::fs::read_link(&p) {
                Ok(t) if t.is_absolute() => p = self.root.join(t.strip_prefix("/").ok()?),
                Ok(t) => p = p.parent()?.join(t),
                Err(_) => return p.exists().then_some(p),
            }
        }
        None
    }

    /// `usr/bin/python3.N` (the `python3` link is in a package left out of
    /// the closure, since crit depends on the virtual `python3:any`).
    fn python_binary(&self) -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.root.join("usr/bin"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.strip_prefix("python3.").is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
            })
            .collect();
        found.sort();
        found.pop()
    }

    fn python(&self, mode: &str, src: &Path, dst: &Path, names: &[String]) -> Result<Command, CritStartError> {
        if let Some(dir) = &self.pycriu {
            let mut cmd = Command::new(HOST_PYTHON);
            cmd.arg("-c").arg(SCRIPT).arg(mode).arg(src).arg(dst).args(names);
            cmd.env("PYTHONPATH", dir).env("PYTHONDONTWRITEBYTECODE", "1").env_remove("PYTHONHOME");
            return Ok(cmd);
        }
        let loader = self
            .resolve("usr/lib64/ld-linux-x86-64.so.2")
            .or_else(|| self.resolve("lib64/ld-linux-x86-64.so.2"))
            .ok_or_else(|| CritStartError::NoLoader { root: self.root.clone() })?;
        let python = self.python_binary().ok_or_else(|| CritStartError::NoPython { root: self.root.clone() })?;
        let lib = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]
            .map(|d| self.root.join(d).display().to_string())
            .join(":");
        let mut cmd = Command::new(loader);
        cmd.arg("--library-path")
            .arg(lib)
            .arg(python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(mode)
            .arg(src)
            .arg(dst)
            .args(names)
            .env("PYTHONHOME", self.root.join("usr"))
            .env("PYTHONPATH", self.root.join("usr/lib/python3/dist-packages"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("PYTHONSTARTUP");
        Ok(cmd)
    }

    /// Runs the script; an image crit rejects is `Rejected` (the images are
    /// at fault), anything else is `Tool` (crtest's or the tree's fault).
    fn run(&self, mode: &str, src: &Path, dst: &Path) -> Result<usize, CritError> {
        let out =
            self.start(mode, src, dst).map_err(|source| CritError::Start { format: self.format.clone(), source })?;
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        let format = self.format.clone();
        match out.status.code() {
            Some(0) => String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| CritError::Output { format }),
            // The script's own exit for an image that does not decode.
            Some(1) if line.contains(".img") => Err(CritError::Rejected { format, line }),
            _ => Err(CritError::Failed { format, line }),
        }
    }

    /// Runs the script over the images of `src` that `mode` works on.
    fn start(&self, mode: &str, src: &Path, dst: &Path) -> Result<std::process::Output, CritStartError> {
        let names: Vec<String> = file_names(src)?
            .into_iter()
            .filter(|n| if mode == "encode" { n.ends_with(".img.json") } else { !is_raw(n) })
            .collect();
        Ok(self.python(mode, src, dst, &names)?.output()?)
    }

    /// Decodes every image of `dir`; returns how many, or the first that
    /// does not decode with crit's own words.
    pub fn check(&self, dir: &Path) -> Result<usize, CritError> {
        self.run("check", dir, Path::new("-"))
    }

    /// Every image of `dir` as `NAME.img.json` in `out`.
    pub fn decode(&self, dir: &Path, out: &Path) -> Result<usize, CritError> {
        self.run("decode", dir, out)
    }

    /// Every `NAME.img.json` of `dir` as `NAME.img` in `out`.
    pub fn encode(&self, dir: &Path, out: &Path) -> Result<usize, CritError> {
        self.run("encode", dir, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_tools_fetch_keeps_its_causes() {
        let apt = crate::kernel::apt::AptError::NoArchives;
        let e = FindCritError::from(crate::kernel::fetch::FetchError::Update { suite: "trixie".into(), source: apt });
        assert_eq!(
            crate::util::error::chain(&e),
            "updating the package lists of suite trixie: no Debian archive configured in /etc/apt/sources.list or \
             /etc/apt/sources.list.d"
        );
    }
}

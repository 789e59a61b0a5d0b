//! The C/R engine: which userspace runs in the guest and the scripts that
//! drive it (start a workload, dump, restore, wait for the end).
//!
//! Scripts are plain busybox `sh`, written into the VM's 9p share and run by
//! the guest init. Their exit codes are the contract below; they never decide
//! verdicts, they only report what happened.

use crate::config::workload::Workload;
use crate::guest::cpio::Entry;
use crate::guest::image::{self, MEMDIGEST, WORKLOAD_BIN_DIR};
use crate::util::shell::quote;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Exit codes of the guest scripts.
pub mod rc {
    pub const OK: i32 = 0;
    pub const SETUP: i32 = 2;
    pub const EXITED_BEFORE_DUMP: i32 = 10;
    pub const DUMP_POINT_TIMEOUT: i32 = 11;
    pub const NO_ROOM: i32 = 12;
    pub const DUMP_FAILED: i32 = 20;
    pub const RESTORE_FAILED: i32 = 21;
    pub const COPY_FAILED: i32 = 30;
    pub const DIED: i32 = 40;
    pub const FINISH_TIMEOUT: i32 = 41;
}

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
pub fn load_catalog(path: &Path) -> Result<Vec<EngineSpec>, crate::config::yaml::ConfigError> {
    let (mut raw, text): (RawEngines, _) = crate::config::yaml::load(path)?;
    for e in &mut raw.engines {
        // Engine ids name guest kinds, VMs and directories.
        let bad = crate::util::shell::check_name(&e.id)
            .err()
            .or_else(|| env_file(&e.env).err().map(|e| format!("{e:#}")))
            .or_else(|| check_source(e).err());
        if let Some(why) = bad {
            let line = crate::config::yaml::line_of(&text, "engines", &e.id);
            return Err(crate::config::yaml::ConfigError::new(path, line, format!("engine `{}`: {why}", e.id)));
        }
        // The binary itself is checked when a run uses it: a missing one
        // must not stop runs of the other engines.
        if let Some(local) = &mut e.local {
            *local = path.parent().unwrap_or(Path::new(".")).join(&*local);
        }
    }
    Ok(raw.engines)
}

/// An entry is either built from Debian (suite, package, tools) or local.
fn check_source(e: &EngineSpec) -> Result<(), String> {
    match (&e.local, e.suite.is_empty() || e.package.is_empty()) {
        (None, false) => Ok(()),
        (None, true) => Err("expected `suite` and `package` (a Debian-built engine) or `local: PATH`".into()),
        (Some(_), _) if !e.suite.is_empty() || !e.package.is_empty() || !e.tools.is_empty() => {
            Err("`local` names a binary: expected no `suite`, `package` or `tools` beside it".into())
        }
        (Some(_), _) => Ok(()),
    }
}

/// Returns the engine `id` names: `host`, a local binary, or a Debian-built
/// one (fetched and cached on first use).
pub fn resolve(id: &str, catalog: &[EngineSpec], cache: &Path, log: &dyn Fn(&str)) -> Result<Engine> {
    if id == HOST {
        let mut host = Engine::host_criu()?;
        // The host's CRIU needs what the catalog's engine of its version needs.
        host.env = env_of_version(catalog, host.id.trim_start_matches("criu-"));
        return Ok(host);
    }
    let spec = catalog.iter().find(|e| e.id == id).with_context(|| {
        let ids: Vec<&str> = catalog.iter().map(|e| e.id.as_str()).collect();
        format!("unknown engine `{id}`: expected host or one of {}", ids.join(", "))
    })?;
    match &spec.local {
        Some(path) => {
            let mut engine = Engine::local_criu(path).with_context(|| format!("engine {id}"))?;
            engine.env = spec.env.clone();
            Ok(engine)
        }
        None => crate::kernel::fetch::engine_root(spec, cache, log),
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

/// The host's own CRIU.
pub const HOST: &str = "host";

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
        env: env_of_version(catalog, &version),
    })
}

impl Engine {
    /// The host's CRIU with its shared libraries.
    pub fn host_criu() -> Result<Self> {
        let criu = image::which("criu").context("criu is not installed on the host (apt-get install criu)")?;
        let out = Command::new(&criu).arg("--version").output().context("running criu --version")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = parse_version(&text).with_context(|| format!("unexpected `criu --version` output: {text}"))?;
        Ok(Engine { id: format!("criu-{version}"), files: criu_files(&criu)?, env: BTreeMap::new() })
    }

    /// A CRIU binary of your own, with the host's shared libraries it
    /// needs (none when static). Its id says where it came from:
    /// `criu-3.17.1 (/path/to/criu)`.
    pub fn local_criu(path: &Path) -> Result<Self> {
        let bin = check_binary(path)?;
        let version = version_of(&bin.path)?;
        let files = criu_files(&bin.path)?;
        Ok(Engine { id: format!("criu-{version} ({})", bin.path.display()), files, env: BTreeMap::new() })
    }
}

/// A criu binary and its shared libraries as guest files; the guest looks
/// for criu at /usr/sbin/criu whatever the host path.
fn criu_files(criu: &Path) -> Result<Vec<Entry>> {
    let data = std::fs::read(criu).with_context(|| format!("reading {}", criu.display()))?;
    let mut files = match image::is_static_elf(&data) {
        true => vec![Entry::file("usr/sbin/criu", 0o755, data)],
        false => image::host_program_with_libs(criu)?,
    };
    files[0].path = "usr/sbin/criu".into();
    Ok(files)
}

/// Paths one guest operation uses.
#[derive(Debug, Clone)]
pub struct OpPaths {
    /// Unique per operation within a run; names dirs in the guest and share.
    pub id: String,
}

impl OpPaths {
    pub fn new(id: &str) -> Self {
        OpPaths { id: id.to_string() }
    }
    /// The workload's own directory in the guest (tmpfs).
    fn dir(&self) -> String {
        format!("/run/crtest/{}", self.id)
    }
    /// Where the op leaves results in the share (`out/ID` on the host side).
    fn out(&self) -> String {
        format!("/mnt/xfer/out/{}", self.id)
    }
}

/// Where the guest image keeps the engine's environment (`KEY=VALUE` lines).
pub const ENV_FILE: &str = "etc/crtest/engine.env";

/// Every script runs the engine through this function, so the engine's own
/// environment (ENV_FILE, validated to hold no blanks or quotes) applies to
/// each dump, restore and check, and to nothing else.
const CRIU_FN: &str = "criu() { env $(cat /etc/crtest/engine.env 2>/dev/null) /usr/sbin/criu \"$@\"; }\n";

/// The engine environment file of a guest image, one `KEY=VALUE` a line.
pub fn env_file(env: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let safe = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.,:=/-".contains(&b));
    let mut out = String::new();
    for (k, v) in env {
        anyhow::ensure!(
            safe(k) && !k.contains('=') && safe(v),
            "engine env `{k}={v}`: keys and values may hold only letters, digits and _.,:=/-"
        );
        out.push_str(&format!("{k}={v}\n"));
    }
    Ok(out.into_bytes())
}

const PRELUDE: &str = r#"set -u
alive() { [ -d "/proc/$1" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }
"#;

/// The lines every guest script starts with.
fn prelude() -> String {
    format!("{PRELUDE}{CRIU_FN}")
}

/// Shell that writes an action script for CRIU: at `post-dump` and
/// `pre-resume` (the tree is frozen, the restorer already gone) it records every fd and memory
/// mapping of process `pid` and its descendants into `file`, like zdtm does,
/// and the digest of every page CRIU restores from its images into `mem`
/// (see `memcheck`). The script always succeeds: a helper that fails must
/// not read as a failed dump, so it leaves its stderr in `mem.err` instead.
fn snapshot_hook(hook: &str, file: &str, mem: &str, pid: &str) -> String {
    format!(
        r#"cat >{hook} <<'SNAP'
#!/bin/sh
case "$CRTOOLS_SCRIPT_ACTION" in post-dump|pre-resume) ;; *) exit 0 ;; esac
# On restore the root task may have another host pid (a pid namespace's init).
[ -n "${{CRTOOLS_INIT_PID:-}}" ] && ROOT=$CRTOOLS_INIT_PID
# The tree: $ROOT and its descendants, from every process's parent pid.
for d in /proc/[0-9]*; do echo "${{d#/proc/}} $(sed 's/.*) //' $d/stat 2>/dev/null | cut -d' ' -f2)"; done >/tmp/ppids.$$
tree=" $ROOT "
while :; do
    more=$(while read -r p pp; do case "$tree" in *" $pp "*) case "$tree" in *" $p "*) ;; *) echo "$p" ;; esac ;; esac; done </tmp/ppids.$$)
    [ -n "$more" ] || break
    tree="$tree$(echo $more) "
done
# Processes are named by their pid in their own pid namespace, and paths
# relative to their own root: a restored namespace's processes get other
# host pids, and its root may show at another host path.
for p in $tree; do
    d=/proc/$p
    n=$(sed -n 's/^NSpid:.*[[:space:]]\([0-9][0-9]*\)$/\1/p' $d/status)
    r=$(readlink $d/root); [ "$r" = / ] && r=
    rel() {{ case "$1" in "$r"/*) [ -n "$r" ] && echo "${{1#"$r"}}" && return ;; esac; echo "$1"; }}
    for f in $d/fd/*; do echo "${{n:-$p}} fd ${{f##*/}} $(rel "$(readlink $f)")"; done
    while read -r range perms off dev ino path; do echo "${{n:-$p}} map $range $perms $off $(rel "$path")"; done <$d/maps
done >"$SNAPFILE"
{MEMDIGEST} $tree >"$MEMFILE.tmp" 2>"$MEMFILE.err" && mv "$MEMFILE.tmp" "$MEMFILE"
exit 0
SNAP
chmod +x {hook}
export ROOT={pid} SNAPFILE={file} MEMFILE={mem}
"#
    )
}

/// Starts `w` in the background in its own session; `pid_base` pins its PID
/// (the dumped tree keeps its PIDs on restore, so each dump gets a range).
pub fn start_script(op: &OpPaths, w: &Workload, steps: u32, step_ms: u32, pid_base: Option<u32>) -> String {
    // `env` takes each assignment as one word, so the key is quoted too.
    let env: Vec<String> = w.environment().iter().map(|(k, v)| quote(&format!("{k}={v}"))).collect();
    let bump = pid_base
        .map(|p| format!("echo {} >/proc/sys/kernel/ns_last_pid || exit {}\n", p - 1, rc::SETUP))
        .unwrap_or_default();
    format!(
        "{prelude}D={dir}; OUT={out}\nmkdir -p \"$D\" \"$OUT\" && cd \"$D\" || exit {setup}\n{bump}\
env -i PATH=/usr/bin:/bin CRTEST_STEP_MS={step_ms} {env} setsid {prog} {args} </dev/null >{stdout} 2>/run/crtest/{id}.stdout &\n\
echo $! >\"$OUT/pid\"\n",
        prelude = prelude(),
        dir = op.dir(),
        out = op.out(),
        setup = rc::SETUP,
        env = env.join(" "),
        prog = quote(&format!("{WORKLOAD_BIN_DIR}/{}", w.program())),
        id = op.id,
        args = match &w.path {
            Some(_) => w.args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
            None => format!("\"$D\" {steps}"),
        },
        stdout = if w.path.is_some() && w.transcript_file() == "transcript" {
            "\"$D/transcript\"".to_string()
        } else {
            format!("/run/crtest/{}.stdout", op.id)
        },
    )
}

/// Shell defining how a workload in `$D` shows progress: `$T` its
/// transcript, `$PAT` what counts as a step line, `finished` when it is done.
/// Library workloads end with `done`; a user's program ends when it exits.
fn workload_sh(w: &Workload) -> String {
    match &w.path {
        Some(_) => format!("T=\"$D\"/{}; PAT=''\nfinished() {{ ! alive \"$PID\"; }}\n", quote(w.transcript_file())),
        None => {
            "T=\"$D/transcript\"; PAT='^step '\nfinished() { [ -f \"$T\" ] && [ \"$(tail -n 1 \"$T\")\" = done ]; }\n"
                .to_string()
        }
    }
}

/// Shell that waits until the workload in `$D` (process `$PID`) has written
/// `after` step lines.
fn wait_steps_sh(after: impl std::fmt::Display, timeout_s: u32) -> String {
    format!(
        r#"n=0
while :; do
    c=$(grep -c "$PAT" "$T" 2>/dev/null)
    [ "${{c:-0}}" -ge {after} ] && break
    alive "$PID" || {{ echo "workload exited before step {after}"; exit {early}; }}
    n=$((n + 1)); [ $n -gt {ticks} ] && {{ echo "workload did not reach step {after} in {timeout_s}s"; exit {tmo}; }}
    sleep 0.1
done
"#,
        ticks = timeout_s * 10,
        early = rc::EXITED_BEFORE_DUMP,
        tmo = rc::DUMP_POINT_TIMEOUT,
    )
}

/// Shell that dumps tree `$PID` into `/tmp/img-ID`, recording the frozen
/// state into `$OUT/SNAP` and the log into `$OUT/dump.log`.
fn criu_dump_sh(id: &str, w: &Workload, snap: &str) -> String {
    format!(
        r#"mkdir -p /tmp/img-{id}
{hook}criu dump -t "$PID" -D /tmp/img-{id} -o dump.log -v4 --action-script /tmp/snap-{id}.sh {opts}
rc=$?
cp /tmp/img-{id}/dump.log "$OUT/dump.log"
[ $rc = 0 ] || {{ dmesg | tail -n 30 >"$OUT/dmesg"; exit {failed}; }}
"#,
        hook = snapshot_hook(&format!("/tmp/snap-{id}.sh"), &format!("\"$OUT/{snap}\""), &mem_file(snap), "$PID"),
        opts = options(&w.dump_opts),
        failed = rc::DUMP_FAILED,
    )
}

/// Shell that restores `/tmp/img-ID` detached, recording the state just
/// before the tree resumes into `$OUT/SNAP`.
/// `images` is where the image set is: the share (read in place, sparing the
/// guest's memory) or a local dump.
/// The restored root task's host pid goes to `root_pid_file(dir_op)`: a pid
/// namespace's init comes back with another one.
fn criu_restore_sh(id: &str, images: &str, w: &Workload, snap: &str, pid: &str, dir_id: &str) -> String {
    format!(
        r#"mkdir -p /tmp/work-{id}
{hook}criu restore -D {images} -W /tmp/work-{id} -d -o restore.log -v4 --action-script /tmp/snap-{id}.sh --pidfile /tmp/work-{id}/root.pid {opts}
rc=$?
cp /tmp/work-{id}/restore.log "$OUT/restore.log"; cp /tmp/work-{id}/root.pid {root} 2>/dev/null; rm -rf /tmp/work-{id} /tmp/img-{id}
[ $rc = 0 ] || {{ dmesg | tail -n 30 >"$OUT/dmesg"; exit {failed}; }}
"#,
        root = root_pid_file(dir_id),
        hook = snapshot_hook(&format!("/tmp/snap-{id}.sh"), &format!("\"$OUT/{snap}\""), &mem_file(snap), pid),
        opts = options(&w.restore_opts),
        failed = rc::RESTORE_FAILED,
    )
}

/// The share path of the page digests taken beside snapshot `snap`
/// (`before.snap` -> `"$OUT/before.mem"`).
fn mem_file(snap: &str) -> String {
    format!("\"$OUT/{}.mem\"", snap.trim_end_matches(".snap"))
}

/// Engine options, one shell word each; `{dir}` stands for the workload's
/// directory (`$D` in the scripts), e.g. `--root={dir}`. Only `$D` is
/// spliced in: the rest of each option stays single-quoted.
fn options(opts: &[String]) -> String {
    opts.iter().map(|o| crate::util::shell::quote_with_var(o, "{dir}", "D")).collect::<Vec<_>>().join(" ")
}

/// Shell that points `$PID` at the process to dump: the started program,
/// or the one whose pid the workload wrote into `$D/<dump_root>` (a
/// namespace's init, which CRIU must dump from); recorded for the restore.
fn dump_root_sh(w: &Workload) -> String {
    match &w.dump_root {
        None => String::new(),
        Some(file) => format!(
            "PID=$(cat \"$D\"/{q}) || {{ echo no {q}; exit {setup}; }}\necho \"$PID\" >\"$OUT/pid\"\n",
            q = quote(file),
            setup = rc::SETUP
        ),
    }
}

/// Waits until `after` step lines exist, dumps the tree with CRIU and leaves
/// the images and the workload's files in the share.
pub fn dump_script(op: &OpPaths, w: &Workload, after: u32, timeout_s: u32) -> String {
    format!(
        r#"{prelude}D={dir}; OUT={out}; PID=$(cat "$OUT/pid")
{wl}{wait}{root}{dump}cp -a /tmp/img-{id} "$OUT/img" && tar -cf "$OUT/files.tar" -C / "${{D#/}}" "run/crtest/{id}.stdout" || exit {copy}
rm -rf /tmp/img-{id}
"#,
        prelude = prelude(),
        dir = op.dir(),
        out = op.out(),
        id = op.id,
        wl = workload_sh(w),
        wait = wait_steps_sh(after, timeout_s),
        root = dump_root_sh(w),
        dump = criu_dump_sh(&op.id, w, "before.snap"),
        copy = rc::COPY_FAILED,
    )
}

/// Puts the dumped workload's files back at their paths and restores the
/// tree detached; its PIDs are those of the dump (`pid` is the root).
pub fn restore_script(op: &OpPaths, dir_op: &OpPaths, w: &Workload, pid: u32) -> String {
    format!(
        r#"{prelude}IN=/mnt/xfer/in/{id}; OUT={out}; D={dir}
mkdir -p "$OUT" && cd / && tar -xf "$IN/files.tar" || exit {copy}
{restore}"#,
        prelude = prelude(),
        id = op.id,
        out = op.out(),
        dir = dir_op.dir(),
        restore = criu_restore_sh(&op.id, "\"$IN/img\"", w, "after.snap", &pid.to_string(), &dir_op.id),
        copy = rc::COPY_FAILED,
    )
}

/// One more C/R iteration in place (like zdtm's `--iters`): `apart` steps
/// after where the restored workload in `dir_op`'s directory is now, dump it
/// again and restore it on the same kernel, recording both states. Exits
/// NO_ROOM when the workload is too near its last step for another round.
pub fn iterate_script(
    op: &OpPaths,
    dir_op: &OpPaths,
    w: &Workload,
    pid: u32,
    apart: u32,
    steps: u32,
    timeout_s: u32,
) -> String {
    format!(
        "{prelude}D={dir}; OUT={out}; PID=$(cat {root} 2>/dev/null || echo {pid})\nmkdir -p \"$OUT\"\n\
{wl}AFTER=$(( $(grep -c \"$PAT\" \"$T\") + {apart} ))\n\
[ $AFTER -le {last} ] && alive \"$PID\" || exit {no_room}\n{wait}{dump}{restore}",
        prelude = prelude(),
        dir = dir_op.dir(),
        out = op.out(),
        root = root_pid_file(&dir_op.id),
        last = steps.saturating_sub(2),
        wl = workload_sh(w),
        no_room = rc::NO_ROOM,
        wait = wait_steps_sh("$AFTER", timeout_s),
        dump = criu_dump_sh(&op.id, w, "before.snap"),
        restore = criu_restore_sh(&op.id, &format!("/tmp/img-{}", op.id), w, "after.snap", "$PID", &dir_op.id),
    )
}

/// Where restores of `dir_id`'s workload leave the restored root's host pid.
fn root_pid_file(dir_id: &str) -> String {
    format!("/run/crtest/{dir_id}.root")
}

/// Waits for the workload in `dir_op`'s directory (process `pid`) to write
/// `done`, then copies its transcript to `op`'s share dir.
pub fn wait_script(op: &OpPaths, dir_op: &OpPaths, w: &Workload, pid: u32, timeout_s: u32) -> String {
    format!(
        r#"{prelude}D={dir}; OUT={out}; PID=$(cat {root} 2>/dev/null || echo {pid})
{wl}mkdir -p "$OUT"
n=0; code=0
while ! finished; do
    if ! alive $PID; then sleep 0.2; finished && break; code={died}; break; fi
    n=$((n + 1)); [ $n -gt {ticks} ] && {{ code={tmo}; break; }}
    sleep 0.1
done
cp "$T" "$OUT/transcript" 2>/dev/null
cp "/run/crtest/{dir_id}.stdout" "$OUT/stdout" 2>/dev/null
[ $code = {died} ] && dmesg | tail -n 30 >"$OUT/dmesg"
exit $code
"#,
        prelude = prelude(),
        dir = dir_op.dir(),
        dir_id = dir_op.id,
        root = root_pid_file(&dir_op.id),
        out = op.out(),
        wl = workload_sh(w),
        ticks = timeout_s * 10,
        died = rc::DIED,
        tmo = rc::FINISH_TIMEOUT,
    )
}

/// Asks the engine which of `features` this kernel supports, one
/// `NAME RC` line each.
pub fn feature_script(features: &[&str]) -> String {
    let names: Vec<String> = features.iter().map(|f| quote(f)).collect();
    format!(
        "{CRIU_FN}for f in {}; do criu check --feature \"$f\" >/dev/null 2>&1; echo \"$f $?\"; done\n",
        names.join(" ")
    )
}

/// Reads the answer of [`feature_script`]: feature -> supported.
pub fn parse_features(output: &str) -> std::collections::BTreeMap<String, bool> {
    output.lines().filter_map(|l| l.rsplit_once(' ')).map(|(f, rc)| (f.to_string(), rc.trim() == "0")).collect()
}

/// The engine's own words for why it failed: the first `Error (...)` line of
/// a CRIU log, without the timestamp. Passed over: errors CRIU logs while
/// probing the kernel and then carries on from (a helper command that exited
/// non-zero, a missing diag module), and the closing "Dumping FAILED."
/// summary, unless nothing else is there.
pub fn error_line(log: &str) -> Option<String> {
    const NOISE: &[&str] = &["): exited, status=", "Diag module missing", "FAILED."];
    let lines = error_lines(log);
    lines.iter().find(|l| !NOISE.iter().any(|n| l.contains(n))).or(lines.last()).cloned()
}

/// Every `Error (...)` line of a CRIU log, without timestamps.
pub fn error_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let at = l.find("Error (")?;
            Some(l[at..].trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> Workload {
        serde_yaml_ng::from_str(
            "name: counter\nsummary: s\nsteps: 40\ndump_after: 10\ndump_opts: [\"--tcp-established\"]\n",
        )
        .unwrap()
    }

    #[test]
    fn criu_error_lines_lose_timestamps() {
        let log = "(00.001) Warn (criu/kerndat.c:1): x\n(00.100) Error (criu/cr-dump.c:1314): 1 has rseq but kernel lacks get_rseq_conf feature\n(00.2) Error (criu/cr-dump.c:1700): Dumping FAILED.\n";
        assert_eq!(
            error_line(log).as_deref(),
            Some("Error (criu/cr-dump.c:1314): 1 has rseq but kernel lacks get_rseq_conf feature")
        );
        assert_eq!(error_lines(log).len(), 2);
        assert_eq!(error_line("all good"), None);
        let summary_first = "(0.1) Error (criu/cr-dump.c:1): Dumping FAILED.\n(0.2) Error (criu/x.c:2): real\n";
        assert_eq!(error_line(summary_first).as_deref(), Some("Error (criu/x.c:2): real"));
        assert_eq!(error_line("(0.1) Error (a): Restoring FAILED.").as_deref(), Some("Error (a): Restoring FAILED."));
        let probe_noise = "(0.03) Error (criu/util.c:642): exited, status=1\n(0.4) Error (criu/cr-dump.c:203): 200000 has rseq but kernel lacks get_rseq_conf feature\n(0.5) Error (criu/cr-dump.c:1674): Dump core (pid: 200000) failed with -1\n";
        assert!(error_line(probe_noise).unwrap().ends_with("has rseq but kernel lacks get_rseq_conf feature"));
    }

    #[test]
    fn scripts_carry_pid_base_env_and_options() {
        let op = OpPaths::new("d3");
        let s = start_script(&op, &w(), 40, 100, Some(103000));
        assert!(s.contains("echo 102999 >/proc/sys/kernel/ns_last_pid"), "{s}");
        assert!(s.contains("'GLIBC_TUNABLES=glibc.pthread.rseq=0'"), "{s}");
        assert!(s.contains("setsid '/opt/crtest/bin/counter' \"$D\" 40"), "{s}");
        let d = dump_script(&op, &w(), 10, 60);
        assert!(
            d.contains("criu dump -t \"$PID\" -D /tmp/img-d3 -o dump.log -v4 --action-script /tmp/snap-d3.sh '--tcp-established'"),
            "{d}"
        );
        assert!(d.contains("-ge 10 ]"), "{d}");
        // The page digests go beside the snapshot; a failing helper leaves its words, not a failed dump.
        assert!(d.contains("SNAPFILE=\"$OUT/before.snap\" MEMFILE=\"$OUT/before.mem\""), "{d}");
        assert!(d.contains("/opt/crtest/libexec/memdigest $tree >\"$MEMFILE.tmp\" 2>\"$MEMFILE.err\" && mv"), "{d}");
        assert!(restore_script(&OpPaths::new("x5"), &op, &w(), 103000).contains("MEMFILE=\"$OUT/after.mem\""));
        let i = iterate_script(&OpPaths::new("i4"), &op, &w(), 103000, 3, 40, 60);
        let pid = "PID=$(cat /run/crtest/d3.root 2>/dev/null || echo 103000)";
        assert!(
            i.contains(&format!("D=/run/crtest/d3; OUT=/mnt/xfer/out/i4; {pid}")) && i.contains("-ge $AFTER ]"),
            "{i}"
        );
        assert!(
            i.contains("--pidfile /tmp/work-i4/root.pid") && i.contains("/tmp/work-i4/root.pid /run/crtest/d3.root")
        );
        assert!(i.contains("+ 3 ))") && i.contains("[ $AFTER -le 38 ]"), "{i}");
        assert!(i.find("criu dump").unwrap() < i.find("criu restore -D /tmp/img-i4").unwrap(), "{i}");
    }

    /// Every script parses as shell, with the fields a user controls set
    /// to what validation lets through.
    #[test]
    fn scripts_parse_with_user_fields() {
        let w: Workload = serde_yaml_ng::from_str(
            "name: app\nsummary: s\nsteps: 40\ndump_after: 10\npath: /p\nargs: [\"a'b\", \"$(x)\"]\n\
             transcript: out.txt\ndump_root: root.pid\nenv: {A_B: \"it's $HOME\"}\n\
             dump_opts: [\"--x={dir}/'`y`\"]\nrestore_opts: [\"--root\", \"{dir}\"]\n",
        )
        .unwrap();
        let (op, d) = (OpPaths::new("r5"), OpPaths::new("d3"));
        for script in [
            start_script(&d, &w, 40, 100, Some(1000)),
            dump_script(&d, &w, 10, 60),
            restore_script(&op, &d, &w, 1000),
            iterate_script(&op, &d, &w, 1000, 3, 40, 60),
            wait_script(&op, &d, &w, 1000, 60),
        ] {
            let out = Command::new("sh").arg("-n").arg("-c").arg(&script).output().unwrap();
            assert!(out.status.success(), "{}\n{script}", String::from_utf8_lossy(&out.stderr));
        }
    }

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
        let e = catalog("engines:\n  - {id: x, local: criu, format: criu-4.1, crit: c}\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `crit`"), "{e}");
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
        let Some(host) = image::which("criu") else { return };
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

    #[test]
    fn dir_placeholder_expands_in_the_guest() {
        assert_eq!(options(&["--root".into(), "{dir}".into()]), "'--root' ''\"$D\"''");
        // The rest of an option with `{dir}` stays inert.
        assert_eq!(options(&["--x={dir}/$(id)".into()]), "'--x='\"$D\"'/$(id)'");
    }
}

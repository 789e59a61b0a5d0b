//! QEMU guests: command lines built from small pure functions, a guard that
//! owns the QEMU process, and a console protocol with timeouts everywhere.
//!
//! Protocol (see assets/init.sh): the guest prints `CRTEST-STEP name rc` for
//! each boot step, then `CRTEST-PAUSE` and waits for the host's `go EPOCH
//! SEED` line (the point where a guest's state can be saved, and where
//! resumed guests carry on), then `CRTEST-READY release`; the host writes a
//! script into the 9p share and sends `run ID`; the guest answers
//! `CRTEST-END ID rc`.

use crate::vm::qmp::{Qmp, QmpError};
use crate::vm::reaper;
use rexpect::error::Error as ExpectError;
use rexpect::session::PtySession;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const SHARE_TAG: &str = "xfer";
const POLL_MS: u64 = 500;
const TAIL_LINES: usize = 40;
/// QEMU's QMP socket (inside the share dir, like the pidfile).
const QMP_SOCKET: &str = "qmp.sock";
/// How long a saved state may take to load or be written.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often migration progress is polled.
const MIGRATE_POLL: Duration = Duration::from_millis(20);

/// How a guest came up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// Booted from the kernel.
    Cold,
    /// Booted from the kernel, and its state was saved for later guests.
    Saved,
    /// Started from a saved state.
    Resumed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

/// Everything that shapes a VM besides its kernel and image.
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub accel: Accel,
    pub memory_mb: u32,
    /// QEMU CPU model (`-cpu`).
    pub cpu: String,
    pub boot_timeout: Duration,
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct BootSpec {
    pub kernel_id: String,
    pub kernel_image: PathBuf,
    pub initrd: PathBuf,
    /// Host directory shared with the guest as 9p tag `xfer`.
    pub share: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("QEMU could not be started: {0}")]
    Spawn(String),
    #[error("guest {kernel} did not boot: {why}\n--- console tail ---\n{tail}")]
    Boot { kernel: String, why: String, tail: String },
    #[error("guest {kernel}: {what} timed out after {secs}s\n--- console tail ---\n{tail}")]
    Timeout { kernel: String, what: String, secs: u64, tail: String },
    #[error("guest {kernel}: QEMU exited during {what}\n--- console tail ---\n{tail}")]
    Exited { kernel: String, what: String, tail: String },
    #[error("guest {kernel}: {0}", kernel = .1)]
    Io(String, String),
}

pub fn accel_args(accel: Accel, cpu: &str) -> Vec<String> {
    let accel = match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    };
    vec!["-accel".into(), accel.into(), "-cpu".into(), cpu.into()]
}

pub fn machine_args(memory_mb: u32) -> Vec<String> {
    ["-m", &memory_mb.to_string(), "-smp", "1", "-nodefaults", "-no-reboot", "-display", "none"]
        .map(String::from)
        .to_vec()
}

/// A VM generation ID device: QEMU gives it a new random value in every
/// guest resumed from a saved state, and Linux (>= 5.18, `CONFIG_VMGENID`)
/// reseeds its RNG at once when it changes, so resumed guests don't share
/// random numbers (ASLR, `/dev/urandom`).
pub fn vmgenid_args() -> Vec<String> {
    ["-device", "vmgenid,guid=auto"].map(String::from).to_vec()
}

/// The serial console on stdio, which rexpect drives through a pty, and a
/// QMP socket (saving and resuming guests); no human monitor.
pub fn console_args(dir: &Path) -> Vec<String> {
    vec![
        "-serial".into(),
        "stdio".into(),
        "-monitor".into(),
        "none".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", dir.join(QMP_SOCKET).display()),
    ]
}

/// Starts the guest from a saved state instead of from its kernel.
pub fn incoming_args(state: &Path) -> Vec<String> {
    vec!["-incoming".into(), format!("exec:cat {}", crate::util::shell::quote(&state.display().to_string()))]
}

/// The migration URI that writes a guest's state to `path`.
pub fn outgoing_uri(path: &Path) -> String {
    format!("exec:cat > {}", crate::util::shell::quote(&path.display().to_string()))
}

/// The line that lets a paused guest go on: the host's clock and fresh
/// randomness, as guests resumed from one state share both otherwise, and
/// whether it was resumed (then it waits for its RNG's reseed).
pub fn go_line(epoch_secs: u64, seed: &[u8], start: Start) -> String {
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let how = if start == Start::Resumed { "resumed" } else { "booted" };
    format!("go {epoch_secs} {hex} {how}")
}

pub fn kernel_args(kernel: &Path, initrd: &Path) -> Vec<String> {
    vec![
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        "console=ttyS0 quiet panic=-1 rdinit=/init".into(),
    ]
}

pub fn share_args(dir: &Path) -> Vec<String> {
    vec![
        "-fsdev".into(),
        format!("local,id={SHARE_TAG},path={},security_model=none", dir.display()),
        "-device".into(),
        format!("virtio-9p-pci,fsdev={SHARE_TAG},mount_tag={SHARE_TAG}"),
    ]
}

/// The whole QEMU command line for `spec`.
pub fn qemu_args(spec: &BootSpec, cfg: &VmConfig) -> Vec<String> {
    [
        accel_args(cfg.accel, &cfg.cpu),
        machine_args(cfg.memory_mb),
        vmgenid_args(),
        console_args(&spec.share),
        kernel_args(&spec.kernel_image, &spec.initrd),
        share_args(&spec.share),
        pidfile_args(&spec.share),
    ]
    .concat()
}

/// QEMU writes its PID here (inside the share dir), for the reaper.
const PIDFILE: &str = "qemu.pid";

pub fn pidfile_args(dir: &Path) -> Vec<String> {
    vec!["-pidfile".into(), dir.join(PIDFILE).display().to_string()]
}

fn read_pidfile(path: &Path) -> Result<i32, VmError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()) {
            return Ok(pid);
        }
        if Instant::now() > deadline {
            return Err(VmError::Spawn(format!("QEMU wrote no pid to {}", path.display())));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The result of one command run in the guest.
#[derive(Debug, Clone)]
pub struct CmdResult {
    pub rc: i32,
    pub output: String,
    pub secs: f64,
}

/// A running guest. Dropping it kills QEMU.
pub struct Vm {
    pub kernel_id: String,
    pub release: String,
    pub boot_secs: f64,
    pub start: Start,
    /// The guest's kernel reseeds its RNG when resumed (it has vmgenid), so
    /// its state may be saved (from the pause line).
    pub reseeds_on_resume: bool,
    started: Instant,
    session: Option<PtySession>,
    pid: i32,
    share: PathBuf,
    console: String,
    next: u32,
}

impl Vm {
    /// Boots the guest from its kernel and waits for its ready line.
    pub fn boot(spec: &BootSpec, cfg: &VmConfig) -> Result<Vm, VmError> {
        let mut vm = Vm::launch(spec, cfg)?;
        vm.go(cfg.boot_timeout)?;
        Ok(vm)
    }

    /// Boots the guest from its kernel up to the point where it waits for the
    /// host's go line (its state can be saved there).
    pub fn launch(spec: &BootSpec, cfg: &VmConfig) -> Result<Vm, VmError> {
        let mut vm = Vm::spawn(spec, cfg, &[])?;
        let deadline = vm.started + cfg.boot_timeout;
        let line = vm.wait_marker("CRTEST-PAUSE", deadline)?;
        vm.reseeds_on_resume = line.split_whitespace().nth(1) == Some("reseeds");
        Ok(vm)
    }

    /// Starts QEMU from the saved `state` and waits until the guest runs
    /// again (still waiting for its go line).
    pub fn resume(spec: &BootSpec, cfg: &VmConfig, state: &Path, timeout: Duration) -> Result<Vm, VmError> {
        let mut vm = Vm::spawn(spec, cfg, &incoming_args(state))?;
        vm.start = Start::Resumed;
        let deadline = vm.started + timeout;
        let mut qmp = vm.qmp(deadline)?;
        loop {
            let status = match qmp.execute("query-status", None) {
                Ok(s) => s,
                Err(e) => return Err(vm.qemu_error(format!("loading the state: {e}"))),
            };
            match status["status"].as_str() {
                Some("inmigrate") if Instant::now() < deadline => std::thread::sleep(MIGRATE_POLL),
                Some("paused") | Some("postmigrate") | Some("prelaunch") => break,
                Some("running") => return Ok(vm),
                other => return Err(vm.boot_error(format!("guest state after loading: {other:?}"))),
            }
        }
        qmp.execute("cont", None).map_err(|e| vm.boot_error(e.to_string()))?;
        Ok(vm)
    }

    /// Saves the state of a guest paused at its go point into `path`, then
    /// lets it run on.
    pub fn save_state(&mut self, path: &Path) -> Result<(), VmError> {
        let deadline = Instant::now() + MIGRATE_TIMEOUT;
        let mut qmp = self.qmp(deadline)?;
        let fail = |vm: &Vm, e: QmpError| vm.boot_error(format!("saving the guest state: {e}"));
        qmp.execute("stop", None).map_err(|e| fail(self, e))?;
        let saved = qmp.migrate(&outgoing_uri(path), deadline, MIGRATE_POLL, MIGRATE_TIMEOUT);
        // Run on either way: a failed save must not cost this guest.
        qmp.execute("cont", None).map_err(|e| fail(self, e))?;
        saved.map_err(|e| fail(self, e))?;
        self.start = Start::Saved;
        Ok(())
    }

    /// Sends the go line and waits for the ready line.
    pub fn go(&mut self, timeout: Duration) -> Result<(), VmError> {
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
            .map_err(|e| VmError::Io(format!("reading host randomness: {e}"), self.kernel_id.clone()))?;
        let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.send(&go_line(epoch, &seed, self.start))?;
        let line = self.wait_marker(r"CRTEST-READY", Instant::now() + timeout)?;
        self.release = line.trim().trim_start_matches("CRTEST-READY").trim().to_string();
        self.boot_secs = self.started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Starts QEMU with `extra` arguments; does not wait for the guest.
    fn spawn(spec: &BootSpec, cfg: &VmConfig, extra: &[String]) -> Result<Vm, VmError> {
        reaper::install();
        for sub in ["cmd", "out", "in"] {
            std::fs::create_dir_all(spec.share.join(sub)).map_err(|e| VmError::Spawn(e.to_string()))?;
        }
        let _ = std::fs::remove_file(spec.share.join(PIDFILE));
        let _ = std::fs::remove_file(spec.share.join(QMP_SOCKET));
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--", "qemu-system-x86_64"]).args(qemu_args(spec, cfg)).args(extra);
        let started = Instant::now();
        let opts = rexpect::reader::Options::default().timeout_ms(Some(POLL_MS)).strip_ansi_escape_codes(false);
        let mut session = rexpect::session::spawn_with_options(cmd, opts).map_err(|e| VmError::Spawn(e.to_string()))?;
        session.process_mut().set_kill_timeout(Some(2000));
        let pid = read_pidfile(&spec.share.join(PIDFILE))?;
        reaper::register(pid);
        Ok(Vm {
            kernel_id: spec.kernel_id.clone(),
            release: String::new(),
            boot_secs: 0.0,
            start: Start::Cold,
            reseeds_on_resume: false,
            started,
            session: Some(session),
            pid,
            share: spec.share.clone(),
            console: String::new(),
            next: 0,
        })
    }

    /// Waits for a line starting with `marker`, failing on the init's
    /// `CRTEST-FATAL` line, a timeout or QEMU's exit.
    fn wait_marker(&mut self, marker: &str, deadline: Instant) -> Result<String, VmError> {
        let line = match self.expect(&format!(r"({marker}|CRTEST-FATAL)[^\r\n]*[\r\n]"), deadline, "boot") {
            Ok(l) => l,
            Err(VmError::Timeout { secs, .. }) => {
                return Err(self.boot_error(format!("no {marker} line within {secs}s")))
            }
            Err(VmError::Exited { .. }) => {
                return Err(self.boot_error(format!("QEMU exited before the guest printed {marker}")))
            }
            Err(e) => return Err(e),
        };
        match line.trim().strip_prefix("CRTEST-FATAL ") {
            Some(step) => Err(self.boot_error(format!("guest init step `{step}` failed"))),
            None => Ok(line),
        }
    }

    /// A boot error naming QEMU's own last complaint, when it has exited.
    fn qemu_error(&mut self, fallback: String) -> VmError {
        let _ = self.expect("\u{0}NEVER", Instant::now() + Duration::from_secs(2), "exit");
        let said = self.console.lines().rev().find(|l| l.starts_with("qemu-system-x86_64:")).map(str::trim);
        self.boot_error(said.map_or(fallback, |s| format!("loading the state: {s}")))
    }

    fn boot_error(&self, why: String) -> VmError {
        VmError::Boot { kernel: self.kernel_id.clone(), why, tail: self.console_tail() }
    }

    fn qmp(&self, deadline: Instant) -> Result<Qmp, VmError> {
        Qmp::connect(&self.share.join(QMP_SOCKET), deadline).map_err(|e| self.boot_error(e.to_string()))
    }

    fn send(&mut self, line: &str) -> Result<(), VmError> {
        let session = self.session.as_mut().expect("session present while VM alive");
        session.send_line(line).map(|_| ()).map_err(|e| VmError::Io(e.to_string(), self.kernel_id.clone()))
    }

    /// Reads console output until `regex` matches or `deadline` passes;
    /// returns the matched text. Everything read is kept in the console log.
    fn expect(&mut self, regex: &str, deadline: Instant, what: &str) -> Result<String, VmError> {
        let start = Instant::now();
        loop {
            let session = self.session.as_mut().expect("session present while VM alive");
            match session.exp_regex(regex) {
                Ok((before, matched)) => {
                    self.console.push_str(&before);
                    self.console.push_str(&matched);
                    return Ok(matched);
                }
                Err(ExpectError::Timeout { .. }) if Instant::now() < deadline => continue,
                Err(ExpectError::Timeout { got, .. }) => {
                    self.console.push_str(&got);
                    return Err(VmError::Timeout {
                        kernel: self.kernel_id.clone(),
                        what: what.into(),
                        secs: start.elapsed().as_secs(),
                        tail: self.console_tail(),
                    });
                }
                Err(ExpectError::EOF { got, .. }) => {
                    self.console.push_str(&got);
                    return Err(VmError::Exited {
                        kernel: self.kernel_id.clone(),
                        what: what.into(),
                        tail: self.console_tail(),
                    });
                }
                Err(e) => return Err(VmError::Io(e.to_string(), self.kernel_id.clone())),
            }
        }
    }

    /// Runs `script` in the guest and waits for its end marker.
    pub fn run(&mut self, label: &str, script: &str, timeout: Duration) -> Result<CmdResult, VmError> {
        self.next += 1;
        let id = format!("c{}", self.next);
        let io = |e: std::io::Error| VmError::Io(format!("{label}: {e}"), self.kernel_id.clone());
        let script_path = self.share.join("cmd").join(format!("{id}.sh"));
        std::fs::write(&script_path, script).map_err(io)?;
        let started = Instant::now();
        self.session
            .as_mut()
            .expect("session present while VM alive")
            .send_line(&format!("run {id}"))
            .map_err(|e| VmError::Io(format!("{label}: {e}"), self.kernel_id.clone()))?;
        let matched = self.expect(&format!(r"CRTEST-END {id} -?\d+[\r\n]"), started + timeout, label)?;
        let rc = matched.rsplit(' ').next().and_then(|n| n.trim().parse().ok()).unwrap_or(-1);
        let output = std::fs::read_to_string(self.share.join("cmd").join(format!("{id}.out"))).unwrap_or_default();
        Ok(CmdResult { rc, output, secs: started.elapsed().as_secs_f64() })
    }

    /// QEMU's QMP socket (one client at a time: connect, use, drop).
    pub fn qmp_socket(&self) -> PathBuf {
        self.share.join(QMP_SOCKET)
    }

    /// The host side of the guest's `/mnt/xfer`.
    pub fn share(&self) -> &Path {
        &self.share
    }

    pub fn console_log(&self) -> &str {
        &self.console
    }

    pub fn console_tail(&self) -> String {
        let lines: Vec<&str> = self.console.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }

    /// Asks the guest to power off, then makes sure QEMU is gone.
    pub fn shutdown(mut self) -> String {
        if let Some(session) = self.session.as_mut() {
            let _ = session.send_line("poweroff");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let _ = self.expect("\u{0}NEVER", deadline, "poweroff");
        std::mem::take(&mut self.console)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Dropping the session SIGTERMs QEMU and SIGKILLs it after the kill timeout.
        if let Some(session) = self.session.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGKILL);
            drop(session);
        }
        reaper::unregister(self.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_has_every_part() {
        let spec = BootSpec {
            kernel_id: "6.1".into(),
            kernel_image: "/k/vmlinuz".into(),
            initrd: "/k/initrd".into(),
            share: "/s".into(),
        };
        let cfg =
            VmConfig { accel: Accel::Tcg, memory_mb: 768, cpu: "max".into(), boot_timeout: Duration::from_secs(1) };
        let args = qemu_args(&spec, &cfg).join(" ");
        assert!(args.starts_with("-accel tcg -cpu max -m 768 -smp 1 -nodefaults -no-reboot"), "{args}");
        assert!(args.contains("-kernel /k/vmlinuz -initrd /k/initrd"), "{args}");
        assert!(args.contains("local,id=xfer,path=/s,security_model=none"), "{args}");
        assert!(args.contains("virtio-9p-pci,fsdev=xfer,mount_tag=xfer"), "{args}");
        assert!(args.contains("panic=-1"), "{args}");
        assert!(args.contains("-qmp unix:/s/qmp.sock,server=on,wait=off"), "{args}");
        assert!(!args.contains("-incoming"), "{args}");
        assert!(args.contains("-device vmgenid,guid=auto"), "{args}");
    }

    #[test]
    fn saved_states_go_through_quoted_exec_uris() {
        assert_eq!(incoming_args(Path::new("/c/6.1 x.state")), ["-incoming", "exec:cat '/c/6.1 x.state'"]);
        assert_eq!(outgoing_uri(Path::new("/c/a.tmp")), "exec:cat > '/c/a.tmp'");
        assert_eq!(outgoing_uri(Path::new("/c/it's")), r"exec:cat > '/c/it'\''s'");
    }

    #[test]
    fn go_line_carries_time_and_seed() {
        assert_eq!(go_line(1700000000, &[0, 0xab, 0x10], Start::Cold), "go 1700000000 00ab10 booted");
        assert_eq!(go_line(1, &[1], Start::Resumed), "go 1 01 resumed");
    }
}

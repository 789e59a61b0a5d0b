//! QEMU guests: command lines built from small pure functions, a guard that
//! owns the QEMU process, and a console protocol with timeouts everywhere.
//!
//! Protocol (see assets/init.sh): the guest prints `CRTEST-STEP name rc` for
//! each boot step and `CRTEST-READY release`; the host writes a script into
//! the 9p share and sends `run ID`; the guest answers `CRTEST-END ID rc`.

use crate::reaper;
use rexpect::error::Error as ExpectError;
use rexpect::session::PtySession;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const SHARE_TAG: &str = "xfer";
const POLL_MS: u64 = 500;
const TAIL_LINES: usize = 40;

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

/// The serial console on stdio, which rexpect drives through a pty.
pub fn console_args() -> Vec<String> {
    ["-serial", "stdio", "-monitor", "none"].map(String::from).to_vec()
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
        console_args(),
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

fn read_pidfile(path: &Path) -> Result<i32, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()) {
            return Ok(pid);
        }
        if Instant::now() > deadline {
            return Err(format!("QEMU wrote no pid to {}", path.display()));
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
    session: Option<PtySession>,
    pid: i32,
    share: PathBuf,
    console: String,
    next: u32,
}

impl Vm {
    /// Starts QEMU and waits for the guest's ready line.
    pub fn boot(spec: &BootSpec, cfg: &VmConfig) -> Result<Vm, VmError> {
        reaper::install();
        for sub in ["cmd", "out", "in"] {
            std::fs::create_dir_all(spec.share.join(sub)).map_err(|e| VmError::Spawn(e.to_string()))?;
        }
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--", "qemu-system-x86_64"]).args(qemu_args(spec, cfg));
        let started = Instant::now();
        let opts = rexpect::reader::Options::default().timeout_ms(Some(POLL_MS)).strip_ansi_escape_codes(false);
        let mut session = rexpect::session::spawn_with_options(cmd, opts).map_err(|e| VmError::Spawn(e.to_string()))?;
        session.process_mut().set_kill_timeout(Some(2000));
        let pid = read_pidfile(&spec.share.join(PIDFILE)).map_err(VmError::Spawn)?;
        reaper::register(pid);
        let mut vm = Vm {
            kernel_id: spec.kernel_id.clone(),
            release: String::new(),
            boot_secs: 0.0,
            session: Some(session),
            pid,
            share: spec.share.clone(),
            console: String::new(),
            next: 0,
        };
        let deadline = started + cfg.boot_timeout;
        let boot_err =
            |vm: &Vm, why: String| VmError::Boot { kernel: vm.kernel_id.clone(), why, tail: vm.console_tail() };
        loop {
            let line = match vm.expect(r"CRTEST-(READY|FATAL)[^\r\n]*[\r\n]", deadline, "boot") {
                Ok(l) => l,
                Err(VmError::Timeout { secs, .. }) => {
                    return Err(boot_err(&vm, format!("no ready line within {secs}s")))
                }
                Err(VmError::Exited { .. }) => {
                    return Err(boot_err(&vm, "QEMU exited before the guest was ready".into()))
                }
                Err(e) => return Err(e),
            };
            if let Some(rest) = line.trim().strip_prefix("CRTEST-FATAL ") {
                return Err(boot_err(&vm, format!("guest init step `{rest}` failed")));
            }
            if let Some(release) = line.trim().strip_prefix("CRTEST-READY ") {
                vm.release = release.to_string();
                vm.boot_secs = started.elapsed().as_secs_f64();
                return Ok(vm);
            }
        }
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
    }
}

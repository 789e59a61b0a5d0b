//! virtme-ng, the yardstick for crtest's boot times: `crtest bench
//! --vs-virtme` boots the same Debian kernel with it, the way its users do.
//! It comes from PyPI into a venv in the cache unless `virtme-run` is on PATH.
//!
//! `--mods=auto` looks for `lib/modules/RELEASE` above the kernel image (the
//! layout of an installed system), so the kernel gets a small tree of its
//! own: `boot/vmlinuz-RELEASE` and `lib/modules/RELEASE/*` as symlinks into
//! crtest's kernel cache (virtme's depmod then writes into that tree only).

use crate::kernel::Kernel;
use crate::util::error::{io_at, IoAt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const PACKAGE: &str = "virtme-ng";
/// A boot that takes longer than this is broken, not slow.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Why virtme-ng could not be installed or timed.
#[derive(Debug, thiserror::Error)]
pub enum VirtmeError {
    /// `what` is the step, with the package that provides it when useful.
    #[error("running {what}")]
    Run {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status})")]
    Failed { what: &'static str, status: ExitStatus },
    #[error("{PACKAGE} installed no {}", .0.display())]
    NotInstalled(PathBuf),
    #[error("starting virtme-run")]
    Start(#[source] std::io::Error),
    /// The guest did not print the kernel's release: its output, trimmed.
    #[error("virtme-run failed ({status}): stdout `{stdout}`, stderr `{stderr}`")]
    Boot { status: ExitStatus, stdout: String, stderr: String },
    #[error("virtme-run did not finish within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error(transparent)]
    File(#[from] IoAt),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `virtme-run` from PATH, else from the cache's venv (created on first use).
pub fn ensure_installed(cache: &Path) -> Result<PathBuf, VirtmeError> {
    if let Some(found) = crate::guest::hostlib::which("virtme-run") {
        return Ok(found);
    }
    let venv = cache.join("virtme");
    let bin = venv.join("bin/virtme-run");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!("crtest: installing {PACKAGE} from PyPI into {}", venv.display());
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv (package python3-venv)")?;
    run_ok(Command::new(venv.join("bin/pip")).args(["install", "--quiet", PACKAGE]), "pip install virtme-ng")?;
    match bin.is_file() {
        true => Ok(bin),
        false => Err(VirtmeError::NotInstalled(bin)),
    }
}

fn run_ok(cmd: &mut Command, what: &'static str) -> Result<(), VirtmeError> {
    let status = cmd.status().map_err(|source| VirtmeError::Run { what, source })?;
    match status.success() {
        true => Ok(()),
        false => Err(VirtmeError::Failed { what, status }),
    }
}

/// The kernel image path to give virtme, inside a tree where `--mods=auto`
/// finds the kernel's modules.
pub fn kernel_tree(cache: &Path, kernel: &Kernel) -> Result<PathBuf, VirtmeError> {
    let root = cache.join("virtme/kernels").join(&kernel.id);
    let image = root.join("boot").join(format!("vmlinuz-{}", kernel.release));
    let moddir = root.join("lib/modules").join(&kernel.release);
    std::fs::create_dir_all(image.parent().expect("has parent"))?;
    std::fs::create_dir_all(&moddir)?;
    link(&kernel.vmlinuz, &image)?;
    if let Some(modules) = &kernel.modules {
        for entry in std::fs::read_dir(modules).map_err(io_at("reading", modules))? {
            let entry = entry?;
            link(&entry.path(), &moddir.join(entry.file_name()))?;
        }
    }
    Ok(image)
}

fn link(target: &Path, at: &Path) -> Result<(), IoAt> {
    if std::fs::read_link(at).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let _ = std::fs::remove_file(at);
    std::os::unix::fs::symlink(target, at).map_err(io_at("linking", at))
}

/// The command line DESIGN.md measured: boot, run `uname -r`, power off.
pub fn command(virtme_run: &Path, image: &Path) -> Command {
    let mut cmd = Command::new(virtme_run);
    cmd.arg("--kimg").arg(image).args(["--mods=auto", "--disable-kvm", "--force-9p", "--script-sh", "uname -r"]);
    cmd
}

/// Wall seconds of one virtme-ng run, checking that the guest printed
/// the kernel's release.
pub fn time_once(virtme_run: &Path, image: &Path, release: &str) -> Result<f64, VirtmeError> {
    // Output goes to files: a pipe nobody reads could stall the run.
    let (mut stdout, mut stderr) = (tempfile::tempfile()?, tempfile::tempfile()?);
    let started = Instant::now();
    let child = command(virtme_run, image)
        .stdin(Stdio::null())
        .stdout(stdout.try_clone()?)
        .stderr(stderr.try_clone()?)
        .spawn()
        .map_err(VirtmeError::Start)?;
    let pid = child.id() as i32;
    crate::vm::reaper::register(pid);
    let status = wait_with_timeout(child, RUN_TIMEOUT);
    crate::vm::reaper::unregister(pid);
    let secs = started.elapsed().as_secs_f64();
    let status = status?;
    let (out, err) = (read_all(&mut stdout)?, read_all(&mut stderr)?);
    if !status.success() || !out.contains(release) {
        let (stdout, stderr) = (out.trim().to_string(), err.trim().to_string());
        return Err(VirtmeError::Boot { status, stdout, stderr });
    }
    Ok(secs)
}

fn read_all(file: &mut std::fs::File) -> std::io::Result<String> {
    use std::io::{Read, Seek};
    let mut text = String::new();
    file.rewind()?;
    file.read_to_string(&mut text)?;
    Ok(text)
}

fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> Result<ExitStatus, VirtmeError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(VirtmeError::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_matches_the_measured_recipe() {
        let cmd = command(Path::new("/v/virtme-run"), Path::new("/k/boot/vmlinuz-6.1.0-50-amd64"));
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args.join(" "),
            "--kimg /k/boot/vmlinuz-6.1.0-50-amd64 --mods=auto --disable-kvm --force-9p --script-sh uname -r"
        );
    }
}

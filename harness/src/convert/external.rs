//! A user's converter command: `CMD IN_DIR OUT_DIR` in a process group of
//! its own, with a timeout and the tail of its stderr in the error.

use super::{crit, ConvertError, Converter};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// A converter command following the contract in the `convert` module docs.
pub struct External {
    pub command: std::path::PathBuf,
    /// How long it may run before it is killed (a FAIL of the step).
    pub timeout: Duration,
}

/// Default time a converter command may take.
pub const CONVERTER_TIMEOUT: Duration = Duration::from_secs(300);
/// How much of a failing converter's stderr a message keeps (its end).
const STDERR_TAIL_BYTES: usize = 4096;
const STDERR_TAIL_LINES: usize = 20;

/// How a converter command failed; `tail` is the end of its stderr.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("running converter {}", command.display())]
    Spawn {
        command: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("converter {} did not finish within {secs}s and was killed{}", command.display(), colon(tail))]
    Timeout { command: PathBuf, secs: u64, tail: String },
    #[error("converter {} exited with {status}: {tail}", command.display())]
    Exit { command: PathBuf, status: ExitStatus, tail: String },
    #[error("converter {} exited 0 but removed its output directory", command.display())]
    RemovedOutput { command: PathBuf },
    #[error(
        "converter {} exited 0 but did not write {} of the input's images: {}",
        command.display(),
        missing.len(),
        missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
    )]
    MissingImages { command: PathBuf, missing: Vec<String> },
}

/// `: TEXT`, or nothing for no text.
fn colon(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

impl External {
    pub fn new(command: PathBuf) -> Self {
        External { command, timeout: CONVERTER_TIMEOUT }
    }

    /// Runs the command in a process group of its own (so a timeout kills
    /// whatever it started), dying with crtest; its exit status and the
    /// tail of its stderr in the error when it fails.
    fn run(&self, input: &Path, output: &Path, from: &str, to: &str) -> Result<(), ConvertError> {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(&self.command);
        cmd.arg(input)
            .arg(output)
            .env("CRTEST_FROM", from)
            .env("CRTEST_TO", to)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL);
                Ok(())
            });
        }
        let mut child =
            spawn(&mut cmd).map_err(|source| ExternalError::Spawn { command: self.command.clone(), source })?;
        crate::vm::reaper::register(child.id() as i32);
        let stderr = child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || tail_of(stderr));
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Whatever it left running in its group (a background job holding
        // stderr open) goes with it: the step is over.
        let _ =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
        crate::vm::reaper::unregister(child.id() as i32);
        // A grandchild may keep stderr open after a kill; the group kill
        // above closes it, so the reader ends.
        let tail = reader.join().unwrap_or_default();
        let command = self.command.clone();
        match status {
            None => Err(ExternalError::Timeout { command, secs: self.timeout.as_secs(), tail }.into()),
            Some(s) if s.success() => Ok(()),
            Some(status) => Err(ExternalError::Exit { command, status, tail }.into()),
        }
    }
}

/// The last lines of a stream, bounded in bytes and lines, read to its end.
fn tail_of(mut stream: impl std::io::Read) -> String {
    let mut keep: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    let mut dropped = false;
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        keep.extend_from_slice(&buf[..n]);
        if keep.len() > 2 * STDERR_TAIL_BYTES {
            keep.drain(..keep.len() - STDERR_TAIL_BYTES);
            dropped = true;
        }
    }
    let text = String::from_utf8_lossy(&keep).into_owned();
    let lines: Vec<&str> = text.trim().lines().collect();
    let mut from = lines.len().saturating_sub(STDERR_TAIL_LINES);
    let mut out = lines[from..].join("\n");
    while out.len() > STDERR_TAIL_BYTES && from < lines.len() {
        from += 1;
        out = lines[from..].join("\n");
    }
    if out.len() > STDERR_TAIL_BYTES {
        let cut = out.len() - STDERR_TAIL_BYTES;
        let cut = (cut..out.len()).find(|&i| out.is_char_boundary(i)).unwrap_or(out.len());
        out = out[cut..].to_string();
    }
    if dropped || from > 0 {
        out = format!("[...] {out}");
    }
    out
}

/// Image files (`*.img`) of `input` missing from `output`: a converter
/// must produce every image it was given.
fn missing_images(input: &Path, output: &Path) -> Result<Vec<String>, crate::util::error::IoAt> {
    let have = crit::file_names(output).unwrap_or_default();
    Ok(crit::file_names(input)?.into_iter().filter(|n| n.ends_with(".img") && !have.contains(n)).collect())
}

impl Converter for External {
    fn name(&self) -> &str {
        self.command.to_str().unwrap_or("external converter")
    }
    fn convert(&self, input: &Path, output: &Path, from: &str, to: &str) -> Result<(), ConvertError> {
        std::fs::create_dir_all(output)?;
        self.run(input, output, from, to)?;
        let command = self.command.clone();
        if !output.is_dir() {
            return Err(ExternalError::RemovedOutput { command }.into());
        }
        let missing = missing_images(input, output)?;
        if !missing.is_empty() {
            return Err(ExternalError::MissingImages { command, missing }.into());
        }
        Ok(())
    }
    fn under_test(&self) -> bool {
        true
    }
}

/// Spawns `cmd`, retrying briefly while Linux refuses to exec a file that is
/// still open for writing somewhere (ETXTBSY): a converter written a moment
/// ago can stay open in a child another thread forked meanwhile.
fn spawn(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::run_step;
    use super::*;

    #[test]
    fn external_converter_contract() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("x.img"), "1").unwrap();
        let script = dir.path().join("conv.sh");
        std::fs::write(&script, "#!/bin/sh\ncp \"$1\"/* \"$2\"/ && echo \"$CRTEST_FROM>$CRTEST_TO\" >\"$2/note\"\n")
            .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let conv = External::new(script.clone());
        let rec = run_step(&conv, "4.2", "4.1", &a, &b);
        assert!(rec.ok, "{rec:?}");
        assert_eq!(std::fs::read_to_string(b.join("note")).unwrap(), "4.2>4.1\n");
        std::fs::write(&script, "#!/bin/sh\necho 'pagemap: no nr_pages' >&2; exit 3\n").unwrap();
        let rec = run_step(&conv, "4.2", "4.1", &a, &dir.path().join("c"));
        assert!(!rec.ok && rec.message.as_deref().unwrap().contains("pagemap: no nr_pages"), "{rec:?}");
    }

    /// A converter script in a temp dir, and an input dir with one image.
    fn hostile(body: &str) -> (tempfile::TempDir, External, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("inventory.img"), "1").unwrap();
        let script = dir.path().join("conv.sh");
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        (dir, External::new(script), a)
    }

    #[test]
    fn converters_that_write_nothing_or_remove_their_output_fail() {
        let (dir, conv, a) = hostile("exit 0");
        let rec = run_step(&conv, "x", "y", &a, &dir.path().join("b"));
        assert!(!rec.ok && !rec.broken, "{rec:?}");
        assert!(rec.message.unwrap().contains("did not write 1 of the input's images: inventory.img"));
        let (dir, conv, a) = hostile("rm -rf \"$2\"");
        let rec = run_step(&conv, "x", "y", &a, &dir.path().join("b"));
        assert!(!rec.ok && !rec.broken && rec.message.unwrap().contains("removed its output directory"));
    }

    #[test]
    fn hanging_converter_is_killed_and_stderr_is_bounded() {
        let (dir, mut conv, a) = hostile("echo started >&2; sleep 600 & sleep 600");
        conv.timeout = Duration::from_millis(300);
        let t = Instant::now();
        let rec = run_step(&conv, "x", "y", &a, &dir.path().join("b"));
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let m = rec.message.unwrap();
        assert!(!rec.ok && m.contains("did not finish within 0s and was killed: started"), "{m}");
        let (dir, conv, a) = hostile("yes 'noise line' | head -c 5000000 >&2; echo last words >&2; exit 1");
        let m = run_step(&conv, "x", "y", &a, &dir.path().join("b")).message.unwrap();
        assert!(m.len() < 4096 + 300 && m.ends_with("last words") && m.contains("[...]"), "{}", m.len());
    }

    #[test]
    fn background_jobs_of_a_converter_do_not_hold_it_up() {
        let (dir, conv, a) = hostile("cp \"$1\"/* \"$2\"/; sleep 600 & exit 0");
        let t = Instant::now();
        let rec = run_step(&conv, "x", "y", &a, &dir.path().join("b"));
        assert!(rec.ok, "{rec:?}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }
}

//! Image conversion between format versions: a step of its own in every cell,
//! between the dump and the restore.
//!
//! Built in: `identity`, `crit-recode` and `pagemap-nr-pages` (see
//! `formats.rs` for how steps chain). A user converter is any command following the
//! contract `CMD IN_DIR OUT_DIR`, with `CRTEST_FROM` and `CRTEST_TO` naming
//! the format versions, exit status 0 on success and messages on stderr.

pub mod crit;
pub mod images;

use crate::config::formats::{StepSpec, Using};
use crate::util::fsutil;
use anyhow::{Context, Result};
use crit::Crit;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Converts an image directory from one format version to another.
pub trait Converter: Send + Sync {
    fn name(&self) -> &str;
    /// Converts `input` into the (not yet existing) directory `output`.
    fn convert(&self, input: &Path, output: &Path, from: &str, to: &str) -> Result<()>;
    /// Whether a failure of this converter is a result (it is part of what
    /// is tested) rather than a fault of crtest.
    fn under_test(&self) -> bool;
    /// What the converter observed beyond success (e.g. byte equality).
    fn note(&self, _input: &Path, _output: &Path) -> Option<String> {
        None
    }
}

/// A converter command following the contract above.
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

impl External {
    pub fn new(command: PathBuf) -> Self {
        External { command, timeout: CONVERTER_TIMEOUT }
    }

    /// Runs the command in a process group of its own (so a timeout kills
    /// whatever it started), dying with crtest; its exit status and the
    /// tail of its stderr in the error when it fails.
    fn run(&self, input: &Path, output: &Path, from: &str, to: &str) -> Result<()> {
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
        let mut child = cmd.spawn().with_context(|| format!("running converter {}", self.command.display()))?;
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
        match status {
            None => anyhow::bail!(
                "converter {} did not finish within {}s and was killed{}",
                self.command.display(),
                self.timeout.as_secs(),
                if tail.is_empty() { String::new() } else { format!(": {tail}") }
            ),
            Some(s) if s.success() => Ok(()),
            Some(s) => {
                anyhow::bail!("converter {} exited with {s}: {tail}", self.command.display())
            }
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
fn missing_images(input: &Path, output: &Path) -> Result<Vec<String>> {
    let have = crit::file_names(output).unwrap_or_default();
    Ok(crit::file_names(input)?.into_iter().filter(|n| n.ends_with(".img") && !have.contains(n)).collect())
}

impl Converter for External {
    fn name(&self) -> &str {
        self.command.to_str().unwrap_or("external converter")
    }
    fn convert(&self, input: &Path, output: &Path, from: &str, to: &str) -> Result<()> {
        std::fs::create_dir_all(output)?;
        self.run(input, output, from, to)?;
        anyhow::ensure!(
            output.is_dir(),
            "converter {} exited 0 but removed its output directory",
            self.command.display()
        );
        let missing = missing_images(input, output)?;
        anyhow::ensure!(
            missing.is_empty(),
            "converter {} exited 0 but did not write {} of the input's images: {}",
            self.command.display(),
            missing.len(),
            missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
        Ok(())
    }
    fn under_test(&self) -> bool {
        true
    }
}

/// Copies the images unchanged (same format on both sides).
pub struct Identity;

impl Converter for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn convert(&self, input: &Path, output: &Path, _from: &str, _to: &str) -> Result<()> {
        fsutil::copy_dir(input, output).with_context(|| format!("identity conversion of {}", input.display()))
    }
    fn under_test(&self) -> bool {
        false
    }
}

/// Decodes every image with the sender's crit and encodes it back with the
/// receiver's; raw files (pages, tarballs) are copied. How many images came
/// out byte-for-byte identical is reported with the step.
pub struct CritRecode {
    pub sender: Crit,
    pub receiver: Crit,
}

impl Converter for CritRecode {
    fn name(&self) -> &str {
        "crit-recode"
    }
    fn convert(&self, input: &Path, output: &Path, _from: &str, _to: &str) -> Result<()> {
        std::fs::create_dir_all(output)?;
        let json = tempfile::tempdir().context("creating the JSON scratch dir")?;
        self.sender.decode(input, json.path())?;
        self.receiver.encode(json.path(), output)?;
        copy_raw(input, output)
    }
    fn under_test(&self) -> bool {
        true
    }
    fn note(&self, input: &Path, output: &Path) -> Option<String> {
        let (mut same, mut differ) = (0, Vec::new());
        for name in crit::file_names(input).ok()?.into_iter().filter(|n| !crit::is_raw(n)) {
            match std::fs::read(input.join(&name)).ok()? == std::fs::read(output.join(&name)).ok()? {
                true => same += 1,
                false => differ.push(name),
            }
        }
        Some(match differ.len() {
            0 => format!("all {same} images byte-identical after recoding"),
            n => format!("{same} images byte-identical, {n} differ: {}", differ.join(", ")),
        })
    }
}

/// CRIU 4.2 -> 4.1: puts `pagemap_entry.nr_pages` back where 4.1 reads it
/// (see `images::pagemap_to_4_1`); every other file is copied unchanged.
pub struct PagemapNrPages;

impl Converter for PagemapNrPages {
    fn name(&self) -> &str {
        "pagemap-nr-pages"
    }
    fn convert(&self, input: &Path, output: &Path, _from: &str, _to: &str) -> Result<()> {
        fsutil::copy_dir(input, output)?;
        for name in crit::file_names(output)?.into_iter().filter(|n| n.starts_with("pagemap-")) {
            let path = output.join(&name);
            // Never write through a link: it may point out of the image dir.
            let kind = std::fs::symlink_metadata(&path)?.file_type();
            anyhow::ensure!(kind.is_file(), "{name}: expected a regular file, found a link or special file");
            let data = fsutil::read_bounded(&path, 1 << 30).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            let mut img = crate::convert::images::ImageFile::parse(&data).with_context(|| name.clone())?;
            crate::convert::images::pagemap_to_4_1(&mut img).with_context(|| name.clone())?;
            // A new file renamed over the copy, never the copy's target.
            fsutil::write_atomic(&path, &img.to_bytes())?;
        }
        Ok(())
    }
    fn under_test(&self) -> bool {
        true
    }
}

/// Copies the files crit does not decode (pages, tarballs, anything else).
fn copy_raw(input: &Path, output: &Path) -> Result<()> {
    for name in crit::file_names(input)?.into_iter().filter(|n| crit::is_raw(n)) {
        std::fs::copy(input.join(&name), output.join(&name)).with_context(|| format!("copying {name}"))?;
    }
    Ok(())
}

/// Checks that `dir` is a directory of regular files (and directories of
/// them), as a CRIU image directory is: a link could make a converter read
/// or write outside it, and a FIFO or device would block or never end.
pub fn check_input_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).with_context(|| format!("{}: cannot read", dir.display()))?;
    anyhow::ensure!(meta.is_dir(), "{}: expected an image directory (not a link or a file)", dir.display());
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let kind = e.file_type()?;
        if kind.is_dir() {
            check_input_dir(&e.path())?;
            continue;
        }
        anyhow::ensure!(
            kind.is_file(),
            "{}: expected only regular files in an image directory, found {}, a link or special file",
            dir.display(),
            e.file_name().to_string_lossy()
        );
    }
    Ok(())
}

/// What one conversion step did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    pub converter: String,
    pub from: String,
    pub to: String,
    pub ok: bool,
    pub message: Option<String>,
    pub secs: f64,
    /// How many images of the output decode with the receiving version's
    /// crit (None when not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The step could not be judged: crtest or a tool it runs broke.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broken: bool,
}

impl StepRecord {
    /// `criu-4.2 -> criu-4.1 (pagemap-nr-pages)`.
    pub fn label(&self) -> String {
        format!("{} -> {} ({})", self.from, self.to, self.converter)
    }

    /// `ok`, `FAIL` (the converter or its output) or `ERROR` (crtest's fault).
    pub fn status(&self) -> &'static str {
        match (self.ok, self.broken) {
            (true, _) => "ok",
            (false, true) => "ERROR",
            (false, false) => "FAIL",
        }
    }

    /// `step 1/2 criu-4.2 -> criu-4.1 (...): ok in 0.01s, 11 images decode
    /// with criu-4.1's crit`, for step `i` (from 1) of `n`.
    pub fn summary(&self, i: usize, n: usize) -> String {
        let checked = self.checked.map(|k| format!(", {k} images decode with {}'s crit", self.to)).unwrap_or_default();
        format!("step {i}/{n} {}: {} in {:.2}s{checked}", self.label(), self.status(), self.secs)
    }
}

/// Runs `conv` from `input` into `output` and records the step.
pub fn run_step(conv: &dyn Converter, from: &str, to: &str, input: &Path, output: &Path) -> StepRecord {
    let started = Instant::now();
    let result = conv.convert(input, output, from, to);
    let note = result.as_ref().ok().and_then(|_| conv.note(input, output));
    StepRecord {
        converter: conv.name().to_string(),
        from: from.to_string(),
        to: to.to_string(),
        ok: result.is_ok(),
        message: result.err().map(|e| format!("{e:#}")),
        secs: started.elapsed().as_secs_f64(),
        checked: None,
        note,
        broken: false,
    }
}

/// A step ready to run: its converter and the crit that must decode its output.
pub struct Step {
    pub from: String,
    pub to: String,
    pub converter: Box<dyn Converter>,
    pub check: Option<Crit>,
}

/// The steps of the chain `specs` from format `from` to `to`, each checked
/// with the receiving version's crit. Within one format (no specs) it is one
/// step with `within`, checked only when that converter is under test.
pub fn steps(
    specs: &[StepSpec],
    (from, to): (&str, &str),
    within: Box<dyn Converter>,
    crits: &std::collections::BTreeMap<String, Crit>,
) -> Result<Vec<Step>> {
    if specs.is_empty() {
        let check = crits.get(from).cloned().filter(|_| within.under_test());
        return Ok(vec![Step { from: from.into(), to: to.into(), converter: within, check }]);
    }
    specs
        .iter()
        .map(|s| {
            let converter = build(s, crits)?;
            Ok(Step { from: s.from.clone(), to: s.to.clone(), converter, check: crits.get(&s.to).cloned() })
        })
        .collect()
}

/// Builds the converter a declared step uses; `crits` has every format's crit.
pub fn build(spec: &StepSpec, crits: &std::collections::BTreeMap<String, Crit>) -> Result<Box<dyn Converter>> {
    let crit = |f: &str| crits.get(f).cloned().with_context(|| format!("no crit prepared for format {f}"));
    Ok(match &spec.using {
        Using::Identity => Box::new(Identity),
        Using::CritRecode => Box::new(CritRecode { sender: crit(&spec.from)?, receiver: crit(&spec.to)? }),
        Using::PagemapNrPages => Box::new(PagemapNrPages),
        Using::Command(p) => Box::new(External::new(p.clone())),
    })
}

/// Runs `steps` in order from `input`, each into a directory of its own
/// under `scratch`, the last into `output`; checks each output with the
/// receiving version's crit. Stops at the first step that fails.
pub fn run_chain(steps: &[Step], input: &Path, scratch: &Path, output: &Path) -> Vec<StepRecord> {
    let mut records = Vec::new();
    let mut from: PathBuf = input.to_path_buf();
    for (i, step) in steps.iter().enumerate() {
        let to = if i + 1 == steps.len() { output.to_path_buf() } else { scratch.join(format!("step{}", i + 1)) };
        let mut rec = run_step(step.converter.as_ref(), &step.from, &step.to, &from, &to);
        if let (true, Some(crit)) = (rec.ok, &step.check) {
            match crit.check(&to) {
                Ok(n) => rec.checked = Some(n),
                Err(crit::CritError::Rejected(e)) => {
                    rec.ok = false;
                    rec.message = Some(format!("output does not decode: {e}"));
                }
                Err(crit::CritError::Tool(e)) => {
                    rec.ok = false;
                    rec.broken = true;
                    rec.message = Some(format!("could not check the output: {e}"));
                }
            }
        }
        let ok = rec.ok;
        records.push(rec);
        if !ok {
            break;
        }
        from = to;
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_copies_every_image() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("pagemap-1.img"), [1, 2, 3]).unwrap();
        let rec = run_step(&Identity, "criu-3.17.1", "criu-3.17.1", &a, &b);
        assert!(rec.ok, "{rec:?}");
        assert_eq!(std::fs::read(b.join("pagemap-1.img")).unwrap(), [1, 2, 3]);
        let rec = run_step(&Identity, "x", "x", &dir.path().join("missing"), &dir.path().join("c"));
        assert!(!rec.ok);
        assert!(rec.message.unwrap().contains("identity conversion of"));
    }

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

    #[test]
    fn pagemap_converter_never_writes_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let (a, outside) = (dir.path().join("a"), dir.path().join("outside.img"));
        std::fs::create_dir(&a).unwrap();
        std::fs::write(&outside, "precious").unwrap();
        std::os::unix::fs::symlink(&outside, a.join("pagemap-1.img")).unwrap();
        let rec = run_step(&PagemapNrPages, "criu-4.2", "criu-4.1", &a, &dir.path().join("b"));
        assert!(!rec.ok && rec.message.unwrap().contains("expected a regular file"));
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    }
}

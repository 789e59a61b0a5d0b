//! No QEMU outlives crtest: Ctrl-C (SIGINT) in the middle of a run kills
//! every guest and leaves no half-written results.

mod common;
use common::{processes_mentioning, Root};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn interrupt_kills_every_qemu() {
    let root = Root::new("kernels: [\"6.1\", \"6.12\"]\nworkloads: [counter]\npairs: all\nvm: { accel: tcg }\n");
    let scratch = root.path().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let mut child = root
        .command(&["run", "--matrix", "--out", "out", "-j", "2"])
        .env("TMPDIR", &scratch)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until a guest is up, so QEMU processes exist.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let line = lines.next().expect("crtest ended before any guest was ready").unwrap();
        eprintln!("{line}");
        if line.contains("] ready ") {
            break;
        }
        assert!(Instant::now() < deadline, "no guest became ready");
    }
    let marker = scratch.to_string_lossy().into_owned();
    assert!(!processes_mentioning(&marker).is_empty(), "expected running QEMUs mentioning {marker}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(500));
    let left = processes_mentioning(&marker);
    assert!(left.is_empty(), "QEMU survived crtest: {left:?}");
    assert!(!root.out().join("results.json").exists(), "an interrupted run must not leave results");
    // Nor its scratch (the guests' shares) or a staging dir of half-written results.
    let stray: Vec<_> = std::fs::read_dir(&scratch).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(stray.is_empty(), "left in TMPDIR: {stray:?}");
    if let Ok(out) = std::fs::read_dir(root.out()) {
        let staged: Vec<_> = out.map(|e| e.unwrap().file_name()).collect();
        assert!(staged.is_empty(), "left in the output dir: {staged:?}");
    }
}

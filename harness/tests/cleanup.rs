//! No QEMU outlives crtest: Ctrl-C (SIGINT) in the middle of a run kills
//! every guest and leaves no half-written results; the cells judged before
//! it are written, marked interrupted.

mod common;
use common::{processes_mentioning, Root, SERIAL};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn interrupt_kills_every_qemu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

/// Ctrl-C after some cells were judged: their results are written, marked
/// interrupted, with the rest of the plan listed as not run; still no QEMU,
/// scratch or staging left behind, and exit 130.
#[test]
fn interrupt_keeps_the_cells_already_judged() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(
        "kernels: [\"6.1\", \"6.12\"]\nworkloads: [counter, bigmem]\npairs: all\nvm: { accel: tcg, memory_mb: 1024 }\n",
    );
    let scratch = root.path().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let mut child = root
        .command(&["run", "--matrix", "--out", "out", "-j", "2", "--seed", "3"])
        .env("TMPDIR", &scratch)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let line = lines.next().expect("crtest ended before any cell was judged").unwrap();
        eprintln!("{line}");
        if line.contains("[1/") {
            break;
        }
        assert!(Instant::now() < deadline, "no cell was judged");
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    for line in lines.map_while(Result::ok) {
        eprintln!("{line}");
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let r = root.results();
    assert_eq!(r["interrupted"], true, "{r}");
    let cells = r["cells"].as_array().unwrap();
    let not_run = r["not_run"].as_array().unwrap();
    assert!(!cells.is_empty() && !not_run.is_empty(), "some cells judged, some not: {r}");
    assert_eq!(cells.len() + not_run.len(), 8, "every planned cell is either judged or not run");
    for c in cells {
        let reason = c["reason"].as_str().unwrap_or("");
        assert!(!reason.contains("interrupted"), "a cell cut short was written as a result: {c}");
    }
    assert!(processes_mentioning(&scratch.to_string_lossy()).is_empty(), "QEMU survived crtest");
    let stray: Vec<_> = std::fs::read_dir(&scratch).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(stray.is_empty(), "left in TMPDIR: {stray:?}");
    let staged: Vec<String> = std::fs::read_dir(root.out())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(staged.is_empty(), "staging left in the output dir: {staged:?}");
}

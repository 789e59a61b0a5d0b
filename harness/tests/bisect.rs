//! Bisection for real: CRIU 3.17.1 runs on 6.12 and cannot even dump on the
//! next kernels of the catalog ("Unexpected rt vDSO area bounds").

mod common;
use common::{Root, SERIAL};
use std::process::Command;

#[test]
fn bisect_finds_the_criu_3_17_vdso_boundary() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new("");
    let out = root.run(&[
        "bisect",
        "--good",
        "6.12",
        "--bad",
        "7.3",
        "--workload",
        "counter",
        "--repeat",
        "1",
        "--accel",
        "tcg",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bisect: 7.3: bad: counter/7.3->7.3: dump: Error (criu/vdso.c"), "{text}");
    assert!(text.contains("bisect: 6.12: good"), "{text}");
    assert!(text.contains("first bad: 6.16\n"), "{text}");
    assert!(
        text.contains(
            "evidence: counter/6.16->6.16: dump: Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds"
        ),
        "{text}"
    );
    assert!(text.contains("last good: 6.12\n"), "{text}");
}

/// `git bisect run` drives `crtest cell` over a toy history whose commits
/// name kernels; the first bad commit is the one that moved to 6.16.
#[test]
fn git_bisect_run_with_crtest_cell() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new("");
    let repo = root.path().join("history");
    std::fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(out.status.success() || args[0] == "bisect", "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["init", "-q"]);
    let mut commits = Vec::new();
    for (kernel, subject) in
        [("6.1", "start on 6.1"), ("6.12", "move to 6.12"), ("6.16", "move to 6.16"), ("6.17", "move to 6.17")]
    {
        std::fs::write(repo.join("kernel"), kernel).unwrap();
        git(&["add", "kernel"]);
        git(&["commit", "-q", "-m", subject]);
        commits.push(git(&["rev-parse", "HEAD"]).trim().to_string());
    }
    git(&["bisect", "start", &commits[3], &commits[0]]);
    let cmd = format!(
        "k=$(cat kernel); CRTEST_ROOT={} {} cell --src-kernel $k --dst-kernel $k --workload counter --accel tcg --out {}",
        root.path().display(),
        env!("CARGO_BIN_EXE_crtest"),
        root.path().join("cell-out").display()
    );
    let log = git(&["bisect", "run", "sh", "-c", &cmd]);
    eprintln!("{log}");
    assert!(log.contains(&format!("{} is the first bad commit", commits[2])), "{log}");
    assert!(log.contains("move to 6.16"), "{log}");
    // A revision naming no usable kernel is skipped (125), never bad.
    let out = root.run(&["cell", "--src-kernel", "9.9", "--dst-kernel", "9.9", "--workload", "counter"]);
    assert_eq!(out.status.code(), Some(125));
}

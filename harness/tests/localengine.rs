//! A CRIU you built, given by path (`--engine ./criu/criu`): a real cell
//! with a copy of the host's CRIU, and `git bisect run` over a toy CRIU
//! history whose commits "build" a good CRIU, a broken one, or nothing.

mod common;
use common::{Root, SERIAL};
use std::path::Path;
use std::process::Command;

/// Copies `from` to `to` as an executable (the guest gets its content).
fn install(from: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// The host's CRIU copied elsewhere is an engine of its own: the cell runs
/// with it, results name its version and path, and its version's env (3.17:
/// rseq off) comes from the catalog. As a `local:` entry it runs too, and
/// `crtest run --engine PATH` runs every kernel with it.
#[test]
fn a_criu_binary_given_by_path_runs_the_cell() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new("");
    let criu = root.path().join("build/criu");
    install("/usr/sbin/criu", &criu);
    let engine = criu.to_str().unwrap();
    let out = root.run(&[
        "cell",
        "--engine",
        engine,
        "--src-kernel",
        "6.1",
        "--dst-kernel",
        "6.12",
        "--workload",
        "counter",
        "--accel",
        "tcg",
        "--out",
        "out",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS counter/6.1->6.12"), "{text}");
    let r = root.results();
    let expected = format!("criu-3.17.1 ({engine})");
    for kind in ["6.1", "6.12"] {
        assert_eq!(r["kernels"][kind]["engine"], expected.as_str(), "{}", r["kernels"]);
        assert_eq!(r["kernels"][kind]["engine_env"]["GLIBC_TUNABLES"], "glibc.pthread.rseq=0");
    }
    assert_eq!(r["engine"], expected.as_str());

    // The same binary as a `local:` entry of kernels/engines.yaml, by its id.
    let catalog = root.path().join("kernels/engines.yaml");
    let mut text = std::fs::read_to_string(&catalog).unwrap();
    text.push_str(&format!("  - {{id: mine, local: {engine}, format: criu-3.17}}\n"));
    std::fs::write(&catalog, text).unwrap();
    let args = ["cell", "--engine", "mine", "--src-kernel", "6.1", "--dst-kernel", "6.1", "--workload", "counter"];
    let out = root.run(&[&args[..], &["--accel", "tcg", "--out", "out"]].concat());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(root.results()["kernels"]["6.1"]["engine"], expected.as_str());

    // `crtest run --engine PATH` gives every kernel of the matrix that engine.
    std::fs::write(
        root.path().join("one.yaml"),
        "kernels: [\"6.1\"]\nworkloads: [counter]\npairs: diagonal\nengine: criu-4.2\nvm: { accel: tcg }\n",
    )
    .unwrap();
    let out = root.run(&["run", "--matrix", "one.yaml", "--engine", engine, "--out", "out-run"]);
    assert_eq!(out.status.code(), Some(0));
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.path().join("out-run/results.json")).unwrap()).unwrap();
    assert_eq!(run["kernels"]["6.1"]["engine"], expected.as_str(), "{}", run["kernels"]);
    let unknown = root.run(&["run", "--matrix", "one.yaml", "--engine", "criu-9", "--out", "out-run"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("--engine criu-9: unknown engine"));

    // Usage errors are exit 2; a binary that is not there is a revision
    // that cannot be judged (125); one that cannot say its version FAILs.
    let cell = |engine: &str| {
        let args = ["cell", "--engine", engine, "--src-kernel", "6.1", "--dst-kernel", "6.12", "--workload", "counter"];
        root.run(&[&args[..], &["--out", "out2"]].concat())
    };
    std::fs::write(root.path().join("script"), "#!/bin/sh\necho Version: 3.17.1\n").unwrap();
    std::fs::set_permissions(root.path().join("script"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = cell(root.path().join("script").to_str().unwrap());
    assert_eq!(script.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&script.stderr).contains("not an ELF file"));
    assert_eq!(cell(root.path().to_str().unwrap()).status.code(), Some(2));
    let missing = cell(root.path().join("nothing/criu").to_str().unwrap());
    assert_eq!(missing.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("the build produced no criu binary"));
    let broken = root.path().join("broken/criu");
    install("/bin/false", &broken);
    let f = cell(broken.to_str().unwrap());
    assert_eq!(f.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&f.stdout).contains("FAIL counter/6.1->6.12: --engine "));
}

/// `git bisect run` over a toy CRIU tree: each commit's `build.sh` puts a
/// criu at `criu/criu` (the host's: good; `/bin/false`: bad) or fails (no
/// binary: exit 125, skipped). The first bad commit is found.
#[test]
fn git_bisect_run_over_a_criu_tree() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new("");
    let repo = root.path().join("criu-tree");
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
    std::fs::write(repo.join(".gitignore"), "/criu/\n").unwrap();
    let good = "mkdir -p criu && cp /usr/sbin/criu criu/criu\n";
    let bad = "mkdir -p criu && cp /bin/false criu/criu\n";
    let no_build = "echo 'criu/cr-dump.c:1: error: expected ;' >&2; exit 2\n";
    let mut commits = Vec::new();
    for (build, subject) in [
        (good, "start"),
        (good, "refactor"),
        (no_build, "break the build"),
        (good, "fix the build"),
        (bad, "the regression"),
        (bad, "later work"),
    ] {
        std::fs::write(repo.join("build.sh"), format!("# {subject}\n{build}")).unwrap();
        git(&["add", "build.sh", ".gitignore"]);
        git(&["commit", "-q", "-m", subject]);
        commits.push(git(&["rev-parse", "HEAD"]).trim().to_string());
    }
    git(&["bisect", "start", &commits[5], &commits[0]]);
    // The README's recipe, with `sh build.sh` for `make -j criu`.
    let cmd = format!(
        "rm -rf criu; sh build.sh >/dev/null || exit 125; CRTEST_ROOT={} {} cell --engine ./criu/criu \
--src-kernel 6.1 --dst-kernel 6.12 --workload counter --accel tcg --out {}",
        root.path().display(),
        env!("CARGO_BIN_EXE_crtest"),
        root.path().join("cell-out").display()
    );
    let log = git(&["bisect", "run", "sh", "-c", &cmd]);
    let steps = git(&["bisect", "log"]);
    eprintln!("{log}\n{steps}");
    // The commit that does not build was tried and skipped, never judged.
    assert!(steps.contains(&format!("# skip: [{}] break the build", commits[2])), "{steps}");
    assert!(log.contains(&format!("{} is the first bad commit", commits[4])), "{log}");
    assert!(log.contains("the regression"), "{log}");
}

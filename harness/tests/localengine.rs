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

/// A local engine's own crit (`crit: DIR`, the pycriu package of its build
/// run by the host's python3) checks the images converted to its format:
/// 4.1.1 dumps, the local engine restores through the 4.1 -> 3.17 step, whose
/// output its crit decodes; a crit that cannot run makes the cell an ERROR
/// naming it, which shows it is the one used.
#[test]
fn a_local_engines_crit_checks_images_of_its_format() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cell = |root: &Root, restore: &str| {
        root.run(&[
            "cell",
            "--engine",
            "criu-4.1",
            "--restore-engine",
            restore,
            "--src-kernel",
            "6.1",
            "--dst-kernel",
            "6.1",
            "--workload",
            "counter",
            "--accel",
            "tcg",
            "--out",
            "out",
        ])
    };
    // The Debian-built 3.17's crit first (this fetches its tools tree), for a pycriu to build on.
    let plain = Root::new("");
    assert_eq!(cell(&plain, "host").status.code(), Some(0));
    let tree =
        crtest::util::fsutil::cache_dir().join("engines/criu-3.17-tools/root/usr/lib/python3/dist-packages/pycriu");
    assert!(tree.join("__init__.py").is_file(), "no pycriu in {}", tree.display());

    let root = Root::new("");
    let lib = root.path().join("build/lib");
    copy_dir(&tree, &lib.join("pycriu"));
    let engines = root.path().join("kernels/engines.yaml");
    let mut text = std::fs::read_to_string(&engines).unwrap();
    text.push_str("  - {id: mine, local: /usr/sbin/criu, format: criu-3.17, crit: ../build/lib}\n");
    std::fs::write(&engines, text).unwrap();
    assert_eq!(cell(&root, "mine").status.code(), Some(0));
    let r = root.results();
    let c = r["cells"].as_array().unwrap().iter().find(|c| c["id"] == "counter/6.1->6.1@mine").unwrap();
    let step = &c["conversion"][0];
    assert!(step["checked"].as_u64().unwrap() > 5, "images decoded with the local crit: {c}");

    std::fs::write(lib.join("pycriu/__init__.py"), "raise ImportError('this pycriu is broken on purpose')\n").unwrap();
    let out = cell(&root, "mine");
    assert_eq!(out.status.code(), Some(125), "a crit that cannot run is crtest's ERROR (125 for git bisect: skip)");
    let r = root.results();
    let c = r["cells"].as_array().unwrap().iter().find(|c| c["id"] == "counter/6.1->6.1@mine").unwrap();
    assert_eq!(c["status"], "ERROR", "{c}");
    let reason = c["reason"].as_str().unwrap();
    assert!(reason.contains("crit of criu-3.17 could not run") && reason.contains("broken on purpose"), "{reason}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        match e.file_type().unwrap().is_dir() {
            true => copy_dir(&e.path(), &to.join(e.file_name())),
            false => drop(std::fs::copy(e.path(), to.join(e.file_name())).unwrap()),
        }
    }
}

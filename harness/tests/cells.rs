//! Real cells: Debian kernels booted in QEMU, CRIU dumping in one guest and
//! restoring in another, verdicts from the transcripts.

mod common;
use common::{cell, Root, SERIAL};

const BASE: &str = "step_ms: 100\ntimeouts: { boot: 240, operation: 240 }\nvm: { accel: tcg, memory_mb: 1024 }\n";

/// 5.10 <-> 6.1 restores and continues identically with the host's CRIU
/// 3.17.1 once its own rseq is off (kernels/engines.yaml `env`); unix
/// sockets dumped on 6.1 are a real incompatibility with 5.10 (SO_BUF_LOCK,
/// new in 5.14): FAIL with CRIU's own line, while their control (the same
/// dump restored in another 6.1 guest) passes.
#[test]
fn cross_kernel_pass_and_known_failure() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(&format!(
        "kernels: [\"5.10\", \"6.1\"]\nworkloads: [counter, unix_stream]\npairs: [[\"5.10\", \"6.1\"], [\"6.1\", \"5.10\"]]\n{BASE}"
    ));
    let out = root.run(&["run", "--matrix", "--out", "out"]);
    assert_eq!(out.status.code(), Some(1), "a FAIL cell makes the exit status 1");
    let r = root.results();
    assert_eq!(r["schema"], "crtest-results/1");
    assert_eq!(r["kernels"]["5.10"]["engine_env"]["GLIBC_TUNABLES"], "glibc.pthread.rseq=0");
    for id in ["counter/5.10->6.1", "counter/6.1->5.10", "unix_stream/5.10->6.1"] {
        let c = cell(&r, id);
        assert_eq!((c["status"].as_str(), c["control_status"].as_str()), (Some("PASS"), Some("PASS")), "{c}");
    }
    // The controls the plan added (the matrix names no diagonal) ran in a second guest.
    for id in ["counter/5.10->5.10", "unix_stream/6.1->6.1"] {
        assert_eq!(cell(&r, id)["status"], "PASS", "{}", cell(&r, id));
        assert_eq!(cell(&r, id)["control_only"], true);
    }
    assert!(r["vms"]["5.10~restore"].is_object() && r["vms"]["6.1"].is_object(), "{}", r["vms"]);
    let pass = cell(&r, "counter/5.10->6.1");
    let stages: Vec<&str> = pass["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        ["boot_src", "reference", "dump", "transfer", "convert", "boot_dst", "restore", "finish", "compare"]
    );
    let fail = cell(&r, "unix_stream/6.1->5.10");
    assert_eq!((fail["status"].as_str(), fail["control_status"].as_str()), (Some("FAIL"), Some("PASS")), "{fail}");
    assert_eq!(fail["known"], "so-buf-lock", "{fail}");
    let reason = fail["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("restore: Error (criu/sockets.c")
            && reason.contains("Can't set 1:72 (len 4): Protocol not available"),
        "engine's own error line expected, got {reason}"
    );
    // Artifacts: the failing cell keeps its images and logs; transcripts match for the pass.
    let dir = root.out().join(fail["artifacts"].as_str().unwrap());
    assert!(dir.join("restore.log").is_file() && dir.join("images").is_dir());
    let pdir = root.out().join(pass["artifacts"].as_str().unwrap());
    let (a, b) = (
        std::fs::read(pdir.join("reference.transcript")).unwrap(),
        std::fs::read(pdir.join("restored.transcript")).unwrap(),
    );
    assert_eq!(a, b);
    assert!(String::from_utf8_lossy(&a).ends_with("verify ok\ndone\n"));
    let junit = std::fs::read_to_string(root.out().join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 8, "{junit}");
    assert!(junit.contains(r#"failures="1""#), "{junit}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("5.10->") && stdout.contains("FAIL  unix_stream/6.1->5.10: restore: Error (criu/"),
        "{stdout}"
    );
}

/// glibc registers rseq; CRIU cannot dump such a task on 5.10. Undeclared,
/// that is a FAIL at the dump with CRIU's words, a known incompatibility;
/// declared, it is a SKIP. A cross cell from such a dump fails along with
/// its control: CONTROL-FAIL, never a FAIL of the pair, and `crtest cell`
/// then exits 125 (cannot judge) for `git bisect run`.
#[test]
fn rseq_on_5_10_fails_at_dump_or_skips_when_declared() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(&format!(
        "kernels: [\"5.10\", \"6.1\"]\nworkloads: [rseq_raw, rseq_declared]\npairs: [[\"5.10\", \"5.10\"], [\"5.10\", \"6.1\"]]\n{BASE}"
    ));
    root.add_workload(
        "- name: rseq_raw\n  program: counter\n  summary: counter with glibc's rseq registration left on\n  steps: 30\n  dump_after: 5\n  env: { GLIBC_TUNABLES: \"\" }\n\
- name: rseq_declared\n  program: counter\n  summary: same, declaring its need\n  steps: 30\n  dump_after: 5\n  env: { GLIBC_TUNABLES: \"\" }\n  min_kernel: \"5.13\"\n  skip_reason: rseq\n",
    );
    let out = root.run(&["run", "--matrix", "--out", "out"]);
    assert_eq!(out.status.code(), Some(1));
    let r = root.results();
    let raw = cell(&r, "rseq_raw/5.10->5.10");
    assert_eq!(raw["status"], "FAIL", "{raw}");
    let reason = raw["reason"].as_str().unwrap();
    assert!(reason.starts_with("dump: Error (criu/") && reason.contains("rseq"), "{reason}");
    assert_eq!(raw["known"], "rseq-no-get-rseq-conf", "{raw}");
    let cross = cell(&r, "rseq_raw/5.10->6.1");
    assert_eq!((cross["status"].as_str(), cross["control_status"].as_str()), (Some("CONTROL-FAIL"), Some("FAIL")));
    let why = cross["reason"].as_str().unwrap();
    assert!(why.starts_with("control rseq_raw/5.10->5.10 is FAIL too; this cell: dump: Error (criu/"), "{why}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CTRL") && stdout.contains("Known incompatibility rseq-no-get-rseq-conf"), "{stdout}");
    let declared = cell(&r, "rseq_declared/5.10->5.10");
    assert_eq!(declared["status"], "SKIP");
    assert!(declared["reason"].as_str().unwrap().contains("needs kernel >= 5.13: rseq"), "{declared}");
    let args = ["cell", "--src-kernel", "5.10", "--dst-kernel", "6.1", "--workload", "rseq_raw", "--out", "cell"];
    let one = root.run(&args);
    assert_eq!(one.status.code(), Some(125), "a cell whose control fails cannot judge the kernel");
    assert!(String::from_utf8_lossy(&one.stdout).starts_with("CONTROL-FAIL rseq_raw/5.10->6.1"));
}

/// Bad input names the file, the line and what was expected; nothing starts.
#[test]
fn bad_matrix_is_reported_with_file_and_line() {
    let root = Root::new("kernels: [\"6.1\"]\nworkloads: [counter]\npairs: sideways\n");
    let out = root.run(&["run", "--matrix", "--out", "out"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("matrix.yaml:3: unknown pairs `sideways`: expected all, diagonal, upgrade, downgrade"),
        "{err}"
    );
    assert!(!root.out().join("results.json").exists());
}

/// An engine built from Debian packages (CRIU 4.1 from trixie, with its own
/// libc) runs in the guests: 6.1 -> 7.3, where the host's CRIU 3.17 cannot
/// even start, restores and continues identically.
#[test]
fn debian_built_criu_4_1_restores_onto_7_3() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new("");
    let out = root.run(&[
        "cell",
        "--src-kernel",
        "6.1",
        "--dst-kernel",
        "7.3",
        "--workload",
        "counter",
        "--engine",
        "criu-4.1",
        "--accel",
        "tcg",
        "--out",
        "out",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let r = root.results();
    assert!(r["engine"].as_str().unwrap().starts_with("criu-4.1."), "{}", r["engine"]);
    assert_eq!(r["kernels"]["7.3"]["engine"], r["engine"]);
    assert_eq!(cell(&r, "counter/6.1->7.3")["status"], "PASS");
}

//! Real cells that check what the harness observes: a user's own program,
//! repeated C/R rounds, and a converter that corrupts images.

mod common;
use common::{cell, Root, SERIAL};
use std::process::Command;

const BASE: &str = "step_ms: 100\ntimeouts: { boot: 240, operation: 240 }\nvm: { accel: tcg }\n";

/// A user's static program, described in the matrix, is checkpointed on 6.1,
/// restored on 6.12 and checked twice more in place (`--iters 3`), next to a
/// library workload.
#[test]
fn user_program_and_iterations_pass() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new("");
    let src = root.path().join("ticker.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <time.h>\nint main(int c, char **v) { unsigned long x = 1;\n\
         for (int i = 1; i <= 40; i++) { x = x * 6364136223846793005UL + 1442695040888963407UL;\n\
         printf(\"tick %d %016lx\\n\", i, x); fflush(stdout);\n\
         struct timespec t = {0, 100000000}; while (nanosleep(&t, &t)) ; }\n return 0; }\n",
    )
    .unwrap();
    let bin = root.path().join("ticker");
    assert!(Command::new("cc").args(["-static", "-O2", "-o"]).arg(&bin).arg(&src).status().unwrap().success());
    std::fs::write(
        root.path().join("matrix.yaml"),
        format!(
            "kernels: [\"6.1\", \"6.12\"]\nworkloads: [counter, ticker]\npairs: [[\"6.1\", \"6.12\"]]\n{BASE}\
programs:\n  - name: ticker\n    summary: a user's program writing to stdout\n    path: {}\n    steps: 40\n    dump_after: 8\n",
            bin.display()
        ),
    )
    .unwrap();
    let out = root.run(&["run", "--matrix", "--out", "out", "--iters", "3", "--seed", "42"]);
    assert_eq!(out.status.code(), Some(0));
    let r = root.results();
    assert_eq!(r["seed"], 42);
    for id in ["counter/6.1->6.12", "ticker/6.1->6.12"] {
        let c = cell(&r, id);
        assert_eq!(c["status"], "PASS", "{c}");
        assert!(c["stages"].as_array().unwrap().iter().any(|s| s["stage"] == "iterate" && s["status"] == "ok"), "{c}");
    }
    let t = cell(&r, "ticker/6.1->6.12");
    let dir = root.out().join(t["artifacts"].as_str().unwrap());
    let restored = std::fs::read_to_string(dir.join("restored.transcript")).unwrap();
    assert_eq!(restored.lines().count(), 40);
    assert!(restored.starts_with("tick 1 ") && restored.contains("\ntick 40 "));
    // The recorded fds/mappings are kept with the cell.
    assert!(std::fs::read_to_string(dir.join("dump.state")).unwrap().contains(" map "));
}

/// A converter that damages the memory image must turn the cell into a FAIL
/// that says what differs, never a PASS and never an ERROR.
#[test]
fn corrupting_converter_fails_the_cell() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root =
        Root::new(&format!("kernels: [\"6.1\"]\nworkloads: [counter]\npairs: diagonal\nconverter: corrupt.sh\n{BASE}"));
    let script = root.path().join("corrupt.sh");
    // Copy the images, then overwrite 4 KiB in the middle of the largest pages image.
    std::fs::write(
        &script,
        "#!/bin/sh\nset -e\ncp -a \"$1\"/. \"$2\"/\nimg=$(ls -S \"$2\"/pages-*.img | head -n 1)\n\
         size=$(stat -c %s \"$img\")\nhead -c 4096 /dev/zero | tr '\\0' '\\125' | dd of=\"$img\" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = root.run(&["run", "--matrix", "--out", "out"]);
    assert_eq!(out.status.code(), Some(1));
    let r = root.results();
    let c = cell(&r, "counter/6.1->6.1");
    assert_eq!(c["status"], "FAIL", "{c}");
    let reason = c["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("compare: line ") || reason.starts_with("finish: ") || reason.starts_with("restore: "),
        "{reason}"
    );
    assert_eq!(c["conversion"][0]["ok"], true, "the converter itself reported success: {c}");
}

/// A workload's declared known gap of an engine is a SKIP with the reason;
/// `--run-known-gaps` runs it and shows the real failure with CRIU's words.
#[test]
fn known_gaps_skip_unless_asked() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(&format!("kernels: [\"6.1\"]\nworkloads: [posix_mqueue]\npairs: diagonal\n{BASE}"));
    let out = root.run(&["run", "--matrix", "--out", "out"]);
    assert_eq!(out.status.code(), Some(0));
    let r = root.results();
    let c = cell(&r, "posix_mqueue/6.1->6.1");
    assert_eq!(c["status"], "SKIP", "{c}");
    assert!(c["reason"].as_str().unwrap().contains("known gap of criu-3.17"), "{c}");
    let out = root.run(&["run", "--matrix", "--out", "out", "--run-known-gaps"]);
    assert_eq!(out.status.code(), Some(1));
    let r = root.results();
    let c = cell(&r, "posix_mqueue/6.1->6.1");
    assert_eq!(c["status"], "FAIL", "{c}");
    let reason = c["reason"].as_str().unwrap();
    assert!(reason.starts_with("dump: Error (") && reason.contains("Can't lookup mount"), "{reason}");
}

//! Bisection over a conversion chain, for real: CRIU 4.2.1 dumps on 6.1,
//! the chain 4.2 -> 4.1 -> 3.17 has a second step that damages its output,
//! and `crtest bisect --axis chain` names that step.

mod common;
use common::{Root, SERIAL};

#[test]
fn bisect_names_the_step_that_breaks_the_chain() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new("");
    // The project's own formats: the real first step, then one that cuts
    // the last byte off every pagemap image.
    let conv = root.path().join("converters");
    std::fs::write(
        conv.join("formats.yaml"),
        "versions: [criu-3.17, criu-4.1, criu-4.2]\nconverters:\n  - {from: criu-4.2, to: criu-4.1, use: pagemap-nr-pages}\n  - {from: criu-4.1, to: criu-3.17, use: corrupt.sh}\n",
    )
    .unwrap();
    std::fs::write(
        conv.join("corrupt.sh"),
        "#!/bin/sh\nset -e\ncp -a \"$1\"/. \"$2\"/\nfor f in \"$2\"/pagemap-*.img; do truncate -s -1 \"$f\"; done\n",
    )
    .unwrap();
    std::fs::set_permissions(conv.join("corrupt.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = root.run(&[
        "bisect",
        "--axis",
        "chain",
        "--engine",
        "criu-4.2",
        "--to",
        "criu-3.17",
        "--fixed",
        "6.1",
        "--workload",
        "counter",
        "--repeat",
        "1",
        "--accel",
        "tcg",
        "--out",
        "bisect-out",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // The whole chain fails, the dump restored as it is passes, the first step's output restores.
    assert!(text.contains("bisect: criu-3.17: bad: counter/6.1->6.1@host: convert: step 2/2"), "{text}");
    assert!(text.contains("bisect: criu-4.2: good"), "{text}");
    assert!(text.contains("bisect: criu-4.1: good"), "{text}");
    assert!(text.contains("first bad step: step 2/2 criu-4.1 -> criu-3.17 ("), "{text}");
    assert!(text.contains("corrupt.sh)\n  evidence: counter/6.1->6.1@host: convert: step 2/2"), "{text}");
    assert!(text.contains("output does not decode: criu-3.17's crit: pagemap-"), "{text}");
    assert!(text.contains("last good: criu-4.1 (after step 1/2 criu-4.2 -> criu-4.1 (pagemap-nr-pages))"), "{text}");

    // A chain with no step, and a chain bisection without its kernel, are usage errors.
    let none = root.run(&[
        "bisect",
        "--axis",
        "chain",
        "--from",
        "criu-4.1",
        "--to",
        "criu-4.1",
        "--fixed",
        "6.1",
        "--workload",
        "counter",
    ]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("has no step to bisect"));
    let no_fixed =
        root.run(&["bisect", "--axis", "chain", "--from", "criu-4.2", "--to", "criu-3.17", "--workload", "counter"]);
    assert_eq!(no_fixed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_fixed.stderr).contains("--axis chain needs --fixed KERNEL"));
}

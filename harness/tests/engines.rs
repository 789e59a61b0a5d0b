//! Real cross-engine cells: CRIU 4.2.1 dumps on kernel 6.1 and CRIU 4.1.1
//! or the host's CRIU 3.17.1 restores, with the images going through the
//! chain of converters between the engines' formats. Each engine runs from
//! its own Debian suite in the guest; crit of each format checks every step.

mod common;
use common::{cell, Root, SERIAL};

const BASE: &str = "step_ms: 100\ntimeouts: { boot: 240, operation: 240 }\nvm: { accel: tcg }\n\
kernels: [\"6.1\"]\nworkloads: [counter]\nengine: criu-4.2\n";

/// 4.2 -> 4.1 needs `pagemap-nr-pages`; 4.2 -> 3.17 is a chain of two steps
/// (that converter, then crit-recode, which reports byte equality). Both
/// restore and pass.
#[test]
fn chains_carry_4_2_images_to_older_engines() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(&format!(
        "{BASE}formats: recode.yaml\npairs:\n  - {{src: \"6.1\", dst: \"6.1\", dump_engine: criu-4.2, restore_engine: criu-4.1}}\n  - {{src: \"6.1\", dst: \"6.1\", dump_engine: criu-4.2, restore_engine: host}}\n"
    ));
    std::fs::write(
        root.path().join("recode.yaml"),
        "versions: [criu-3.17, criu-4.1, criu-4.2]\nconverters:\n  - {from: criu-4.2, to: criu-4.1, use: pagemap-nr-pages}\n  - {from: criu-4.1, to: criu-3.17, use: crit-recode}\n",
    )
    .unwrap();
    let out = root.command(&["run", "--matrix", "--out", "out"]).env("CRTEST_KEEP_WORK", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(0));
    let r = root.results();
    let one = cell(&r, "counter/6.1->6.1@criu-4.1");
    assert_eq!(one["status"], "PASS", "{one}");
    let steps = one["conversion"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{one}");
    assert_eq!(steps[0]["converter"], "pagemap-nr-pages");
    assert!(steps[0]["checked"].as_u64().unwrap() > 5, "images decoded with 4.1's crit: {one}");
    let two = cell(&r, "counter/6.1->6.1@host");
    assert_eq!(two["status"], "PASS", "{two}");
    let steps: Vec<(&str, &str)> = two["conversion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["to"].as_str().unwrap(), s["converter"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("criu-4.1", "pagemap-nr-pages"), ("criu-3.17", "crit-recode")]);
    let note = two["conversion"][1]["note"].as_str().unwrap();
    assert!(note.contains("byte-identical"), "{note}");

    // `crtest convert` runs the project's chain (identity to 3.17) by hand on the kept dump.
    let work = stderr.lines().find_map(|l| l.strip_prefix("crtest: keeping the run's scratch dir ")).unwrap();
    let dump = std::fs::read_dir(std::path::Path::new(work).join("vm-6.1/out"))
        .unwrap()
        .map(|e| e.unwrap().path().join("img"))
        .find(|p| p.join("inventory.img").is_file())
        .expect("a dump image dir");
    let converted = root.path().join("converted");
    let conv = root.run(&[
        "convert",
        "--from",
        "criu-4.2",
        "--to",
        "criu-3.17",
        dump.to_str().unwrap(),
        converted.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&conv.stdout);
    assert_eq!(conv.status.code(), Some(0), "{text}");
    assert!(text.contains("step 1/2 criu-4.2 -> criu-4.1 (pagemap-nr-pages): ok"), "{text}");
    assert!(text.contains("step 2/2 criu-4.1 -> criu-3.17 (identity): ok"), "{text}");
    assert!(converted.join("inventory.img").is_file());
    // Asking for a step nobody declared names it.
    let none = root.run(&["convert", "--from", "criu-4.2", "--to", "criu-9", dump.to_str().unwrap(), "x"]);
    assert_ne!(none.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&none.stderr).contains("format criu-9 is not in"));
    let _ = std::fs::remove_dir_all(work);
}

/// With no converter (identity in place of pagemap-nr-pages) 4.1 reads the
/// 4.2 images with zero pages per entry: a real FAIL with CRIU's own words.
#[test]
fn without_the_converter_4_1_cannot_restore_4_2_images() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(&format!(
        "{BASE}formats: identity.yaml\npairs:\n  - {{src: \"6.1\", dst: \"6.1\", dump_engine: criu-4.2, restore_engine: criu-4.1}}\n"
    ));
    std::fs::write(
        root.path().join("identity.yaml"),
        "versions: [criu-3.17, criu-4.1, criu-4.2]\nconverters:\n  - {from: criu-4.2, to: criu-4.1, use: identity}\n",
    )
    .unwrap();
    let out = root.run(&["run", "--matrix", "--out", "out"]);
    assert_eq!(out.status.code(), Some(1));
    let r = root.results();
    let c = cell(&r, "counter/6.1->6.1@criu-4.1");
    assert_eq!(c["status"], "FAIL", "{c}");
    let reason = c["reason"].as_str().unwrap();
    assert!(reason.starts_with("restore: ") && reason.contains("Error ("), "{reason}");
    assert_eq!(c["conversion"][0]["converter"], "identity");
}

/// A converter that damages its output fails its cell and the step that
/// broke is named: here the second step of a two-step chain.
#[test]
fn a_corrupting_step_fails_and_is_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(&format!(
        "{BASE}formats: corrupt.yaml\npairs:\n  - {{src: \"6.1\", dst: \"6.1\", dump_engine: criu-4.2, restore_engine: host}}\n"
    ));
    std::fs::write(
        root.path().join("corrupt.yaml"),
        "versions: [criu-3.17, criu-4.1, criu-4.2]\nconverters:\n  - {from: criu-4.2, to: criu-4.1, use: pagemap-nr-pages}\n  - {from: criu-4.1, to: criu-3.17, use: corrupt.sh}\n",
    )
    .unwrap();
    let script = root.path().join("corrupt.sh");
    // Copies the images, then cuts the last byte off every pagemap image.
    std::fs::write(
        &script,
        "#!/bin/sh\nset -e\ncp -a \"$1\"/. \"$2\"/\nfor f in \"$2\"/pagemap-*.img; do truncate -s -1 \"$f\"; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = root.run(&["run", "--matrix", "--out", "out"]);
    assert_eq!(out.status.code(), Some(1));
    let r = root.results();
    let c = cell(&r, "counter/6.1->6.1@host");
    assert_eq!(c["status"], "FAIL", "{c}");
    let reason = c["reason"].as_str().unwrap();
    assert!(reason.starts_with("convert: step 2/2 criu-4.1 -> criu-3.17 ("), "{reason}");
    assert!(reason.contains("corrupt.sh): output does not decode: criu-3.17's crit: pagemap-"), "{reason}");
    let steps = c["conversion"].as_array().unwrap();
    assert_eq!((steps[0]["ok"].as_bool(), steps[1]["ok"].as_bool()), (Some(true), Some(false)), "{c}");
    // The restore never ran on images that did not decode.
    assert!(!c["stages"].as_array().unwrap().iter().any(|s| s["stage"] == "restore"), "{c}");
    let junit = std::fs::read_to_string(root.out().join("junit.xml")).unwrap();
    assert!(junit.contains("step 2/2 criu-4.1 -&gt; criu-3.17"), "{junit}");
}

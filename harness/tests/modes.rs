//! Real cells in C/R modes other than a plain dump, across kernels and
//! across engines: iterative pre-dumps (memory tracking while the workload
//! runs, the final dump on top of the last round, every image dir of the
//! chain converted), a page server on the target guest receiving the dump's
//! pages over a link between the guests, and lazy restores fetching memory
//! from the source on demand. The memory of every restored program is
//! checked page by page against the dump.

mod common;
use common::{cell, Root, SERIAL};

const BASE: &str = "step_ms: 100\ntimeouts: { boot: 240, operation: 240 }\nvm: { accel: tcg }\n\
kernels: [\"6.1\", \"6.12\"]\nworkloads: [counter]\nmodes: [predump, page-server, lazy]\n";

#[test]
fn predump_chains_restore_across_kernels_and_engines() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Root::new(&format!(
        "{BASE}pairs:\n  - [\"6.1\", \"6.12\"]\n  - {{src: \"6.12\", dst: \"6.12\", dump_engine: criu-4.2, restore_engine: criu-4.1}}\n"
    ));
    let out = root.run(&["run", "--matrix", "--out", "out", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(1), "two cross-engine cells FAIL (below)");
    let r = root.results();
    for id in ["counter+predump/6.1->6.12", "counter+predump/6.12@criu-4.2->6.12@criu-4.1"] {
        let c = cell(&r, id);
        assert_eq!((c["status"].as_str(), c["mode"].as_str()), (Some("PASS"), Some("predump")), "{c}");
        // Two pre-dump dirs and the final one, each through the chain.
        assert_eq!(c["conversion"].as_array().unwrap().len(), 3, "{c}");
        let dir = root.out().join(c["artifacts"].as_str().unwrap());
        for log in ["pre-dump1.log", "pre-dump2.log", "dump.log"] {
            assert!(dir.join(log).is_file(), "{id}: no {log} in {}", dir.display());
        }
        // The final dump stood on the pre-dump rounds: CRIU opened their pages as parents.
        let dump_log = std::fs::read_to_string(dir.join("dump.log")).unwrap();
        assert!(
            dump_log.lines().any(|l| l.contains("Opened local page read") && l.contains("(parent ")),
            "{id}: the dump never read a parent round"
        );
    }
    // The cross-engine chain converts every dir 4.2 -> 4.1.
    let x = cell(&r, "counter+predump/6.12@criu-4.2->6.12@criu-4.1");
    let converters: Vec<&str> =
        x["conversion"].as_array().unwrap().iter().map(|s| s["converter"].as_str().unwrap()).collect();
    assert_eq!(converters, ["pagemap-nr-pages"; 3], "{x}");
    // Its control is the same mode's diagonal.
    assert_eq!(cell(&r, "counter+predump/6.12@criu-4.2->6.12@criu-4.2")["status"], "PASS");
    // Page server and lazy pages between kernels with one engine: the pages cross the link.
    let ps = "counter+page-server/6.1->6.12";
    assert_eq!(cell(&r, ps)["status"], "PASS", "{}", cell(&r, ps));
    let dir = root.out().join(cell(&r, ps)["artifacts"].as_str().unwrap());
    let dump_log = std::fs::read_to_string(dir.join("dump.log")).unwrap();
    assert!(dump_log.contains("Connecting to server 10.77.0.2:"), "the dump never reached the page server");
    assert!(dir.join("page-server.log").is_file());
    let lazy = "counter+lazy/6.1->6.12";
    assert_eq!(cell(&r, lazy)["status"], "PASS", "{}", cell(&r, lazy));
    let dir = root.out().join(cell(&r, lazy)["artifacts"].as_str().unwrap());
    let restore_log = std::fs::read_to_string(dir.join("restore.log")).unwrap();
    assert!(restore_log.contains("Lazy restore skips"), "nothing was left for the lazy pages");
    let dump_log = std::fs::read_to_string(dir.join("dump.log")).unwrap();
    assert!(dump_log.contains("Lazy pages transfer finished successfully"), "{dump_log}");
    // Across engines the page-server protocol changed (CRIU 4.2 widened its
    // request header): a real FAIL with the engine's line, its control a PASS.
    for (mode, known, line) in [
        ("page-server", "page-server-iov-u64", "The page server doesn't answer"),
        ("lazy", "lazy-pages-iov-u64", "Error reading data from page server"),
    ] {
        let x = cell(&r, &format!("counter+{mode}/6.12@criu-4.2->6.12@criu-4.1"));
        assert_eq!((x["status"].as_str(), x["known"].as_str()), (Some("FAIL"), Some(known)), "{x}");
        assert!(x["reason"].as_str().unwrap().contains(line), "{x}");
        assert_eq!(cell(&r, &format!("counter+{mode}/6.12@criu-4.2->6.12@criu-4.2"))["status"], "PASS");
    }
    // The grid names workload and mode.
    let grid = std::fs::read_to_string(root.out().join("grid.txt")).unwrap();
    assert!(grid.contains("counter+predump"), "{grid}");
}
